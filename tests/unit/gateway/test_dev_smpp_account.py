"""The SMPP account `serve` offers on its built-in defaults, and what replaces it."""

from __future__ import annotations

from pathlib import Path

from gateway.config import development_smpp_account, load_config


def test_built_in_defaults_offer_a_generated_account_on_loopback() -> None:
    account = development_smpp_account({})
    config = load_config(None, env={}, default_smpp_account=account)
    assert [a.system_id for a in config.smpp.accounts] == ["ussdsim"]
    assert config.smpp.listen.startswith("127.0.0.1:")
    assert len(account.password) == 8  # SMPP 3.4's limit
    assert development_smpp_account({}).password != account.password


def test_the_environment_chooses_the_account() -> None:
    env = {"USSDSIM_SMPP_SYSTEM_ID": "esme1", "USSDSIM_SMPP_PASSWORD": "pw123"}
    config = load_config(None, env=env, default_smpp_account=development_smpp_account(env))
    assert [(a.system_id, a.password) for a in config.smpp.accounts] == [("esme1", "pw123")]


def test_a_configured_account_list_replaces_it_even_when_empty(tmp_path: Path) -> None:
    account = development_smpp_account({})
    listed = tmp_path / "listed.yaml"
    listed.write_text("smpp: {accounts: [{system_id: mine, password: pw}]}\n")
    empty = tmp_path / "empty.yaml"
    empty.write_text("smpp: {accounts: []}\n")
    assert [a.system_id for a in load_config(listed, env={}).smpp.accounts] == ["mine"]
    with_default = load_config(listed, env={}, default_smpp_account=account)
    assert [a.system_id for a in with_default.smpp.accounts] == ["mine"]
    assert load_config(empty, env={}, default_smpp_account=account).smpp.accounts == []


def test_a_reachable_address_gets_the_account_too_with_its_password_generated_or_chosen() -> None:
    # A container listens on 0.0.0.0: SMPP stays on, guarded by the password serve prints.
    account = development_smpp_account({})
    env = {"USSDSIM_SMPP": "0.0.0.0:2775"}
    config = load_config(None, env=env, default_smpp_account=account)
    assert [a.password for a in config.smpp.accounts] == [account.password]
    chosen = {**env, "USSDSIM_SMPP_PASSWORD": "chosen1"}
    config = load_config(None, env=chosen, default_smpp_account=development_smpp_account(chosen))
    assert [a.password for a in config.smpp.accounts] == ["chosen1"]
