"""What `serve` prints once it listens: where to reach it and the credentials it made up.

One text for the single process and for the supervisor of several workers. Credentials come only
after the sockets are bound, so a start that fails never shows a password that protects nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config import Config, SmppAccount
from gateway.healthcheck import browser_url


@dataclass(frozen=True)
class Listening:
    """What is bound: `http` and `smpp` as `host:port` (`smpp` None when the SMSC is off)."""

    http: str
    smpp: str | None
    store: str
    loop: str
    workers: str = ""  # e.g. "workers: 4 (pids 10, 11, 12, 13)"


def banner(
    config: Config,
    listening: Listening,
    *,
    admin_token: str,
    dev_account: SmppAccount | None,
    handset_token_generated: bool = False,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """The lines, in order; `dev_account`: the development account `serve` added (None when
    `smpp.accounts` is configured); `handset_token_generated`: `serve` made up the handset token
    (it listens beyond loopback and none was chosen)."""
    environ = os.environ if env is None else env
    details = [
        f"store: {listening.store}",
        f"clock: {config.clock.mode}",
        f"loop: {listening.loop}",
    ]
    if listening.workers:
        details.append(listening.workers)
    lines = [
        f"ussdsim: HTTP on http://{listening.http}  " + "  ".join(details),
        f"ussdsim: web phone on {browser_url(listening.http)}",
    ]
    if listening.smpp is not None:
        accounts = ", ".join(a.system_id for a in config.smpp.accounts)
        lines.append(f"ussdsim: SMPP on {listening.smpp}  accounts: {accounts}")
    else:
        lines.append("ussdsim: SMPP off (smpp.accounts is an empty list in the configuration)")
    if dev_account is not None and listening.smpp is not None:
        # Printed like the operator token, and for the same reason: a person needs it to bind.
        chosen = environ.get("USSDSIM_SMPP_PASSWORD")
        lines.append(
            "ussdsim: SMPP development account (no smpp.accounts configured; "
            "USSDSIM_SMPP_SYSTEM_ID / USSDSIM_SMPP_PASSWORD choose it): "
            f"system_id {dev_account.system_id}"
            + ("" if chosen else f" password {dev_account.password}")
        )
    if handset_token_generated and config.http.handset_token is not None:
        # Beyond loopback every handset call needs it, as Jupyter's token; printed once, never
        # logged.
        lines.append(
            "ussdsim: handset token (set USSDSIM_HANDSET_TOKEN to choose one): "
            f"{config.http.handset_token}"
        )
    if config.admin_token is None:
        # A line a shell takes as it is (the tour pastes it); printed once, never logged.
        lines.append(
            f"export TOKEN={admin_token}  # ussdsim: the operator token (USSDSIM_ADMIN_TOKEN "
            "chooses one)"
        )
    return lines


def print_banner(lines: list[str]) -> None:
    for line in lines:
        print(line, flush=True)
