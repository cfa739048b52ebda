"""What `serve` prints once it listens, for each way its credentials came about."""

from __future__ import annotations

from gateway.banner import Listening, banner
from gateway.config import Config, SmppAccount, development_smpp_account, load_config

ON = Listening(
    http="0.0.0.0:8080", smpp="0.0.0.0:2775", store="redis://x (embedded)", loop="uvloop"
)


def lines_for(config: Config, account: SmppAccount | None, env: dict[str, str]) -> str:
    return "\n".join(banner(config, ON, admin_token="tok-123", dev_account=account, env=env))


def test_a_first_start_prints_the_web_phone_the_generated_password_and_a_token_line() -> None:
    account = development_smpp_account({})
    text = lines_for(load_config(None, env={}, default_smpp_account=account), account, {})
    assert "ussdsim: web phone on http://127.0.0.1:8080/" in text
    assert f"system_id ussdsim password {account.password}" in text
    assert text.splitlines()[-1].startswith("export TOKEN=tok-123  # ")


def test_chosen_credentials_are_not_printed() -> None:
    env = {"USSDSIM_SMPP_PASSWORD": "chosen1", "USSDSIM_ADMIN_TOKEN": "mine"}
    account = development_smpp_account(env)
    text = lines_for(load_config(None, env=env, default_smpp_account=account), account, env)
    assert "chosen1" not in text and "TOKEN" not in text and "tok-123" not in text
    assert "system_id ussdsim" in text


def test_smpp_off_names_its_cause() -> None:
    config = Config.model_validate({"smpp": {"accounts": []}})
    off = Listening(http="127.0.0.1:8080", smpp=None, store="s", loop="asyncio")
    text = "\n".join(banner(config, off, admin_token="t", dev_account=None, env={}))
    assert "ussdsim: SMPP off (smpp.accounts is an empty list in the configuration)" in text
