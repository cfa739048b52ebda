"""The `ussdsim` command: serve, dial, sms, menus check."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import event_loop
from gateway.config import (
    ConfigError,
    SmppAccount,
    development_smpp_account,
    load_config,
    with_handset_token,
)
from gateway.runtime import StartupError
from gateway.terminal import event_line, screen_box
from ussdsim.client import ApiError, Client, ServerUnreachable

DEFAULT_URL = os.environ.get("USSDSIM_URL", "http://127.0.0.1:8080")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ussdsim", description="USSD and SMS gateway simulator")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the simulator")
    s.add_argument("--config", help="configuration file (default: ./config.yaml if present)")
    s.add_argument("--http", metavar="HOST:PORT")
    s.add_argument("--smpp", metavar="HOST:PORT")
    s.add_argument("--redis", metavar="URL|embedded")
    s.add_argument("--data", metavar="DIR", help="where the embedded Redis keeps its files")
    s.add_argument("--clock", choices=["real", "virtual"])
    s.add_argument(
        "--durability",
        choices=["default", "strict"],
        help="strict: every acknowledged write is fsynced before the answer",
    )
    s.add_argument(
        "--workers", type=int, metavar="N", help="server processes sharing the ports (1..64)"
    )

    d = sub.add_parser("dial", help="an interactive USSD session against a running server")
    d.add_argument("msisdn")
    d.add_argument("code")
    d.add_argument("--url", default=DEFAULT_URL)

    m = sub.add_parser("sms", help="send an SMS from a subscriber and print the replies")
    m.add_argument("sender", metavar="FROM")
    m.add_argument("to", metavar="TO")
    m.add_argument("text")
    m.add_argument("--url", default=DEFAULT_URL)
    m.add_argument("--wait", type=float, default=3.0, help="seconds to wait for replies")

    w = sub.add_parser("watch", help="tail the event stream (needs USSDSIM_ADMIN_TOKEN)")
    w.add_argument("msisdn", nargs="?", help="only this number")
    w.add_argument("--kind", help="comma-separated kind prefixes, e.g. ussd,sms")
    w.add_argument("--url", default=DEFAULT_URL)

    from gateway.smpp_send import add_parser as add_smpp_send_parser

    add_smpp_send_parser(sub)

    menus = sub.add_parser("menus", help="menu files")
    msub = menus.add_subparsers(dest="menus_command", required=True)
    chk = msub.add_parser("check", help="validate menu files; one line per problem")
    chk.add_argument("paths", nargs="*", help="files or folders (default: the shipped profile)")

    from gateway.harness.scenario.cli import add_parser as add_scenario_parser

    add_scenario_parser(sub)

    from gateway.harness.load import add_parser as add_load_parser

    add_load_parser(sub)
    return p


def _error_text(e: ApiError) -> str:
    return f"error {e.status}: {e.code}: {e.message}"


def cmd_dial(url: str, msisdn: str, code: str) -> int:
    with Client(url) as client:
        try:
            dialog = client.dial(msisdn, code)
            while True:
                print(screen_box(dialog.screen))
                if dialog.end:
                    print("(session ended by the network)")
                    return 0
                try:
                    answer = input("> ")
                except (EOFError, KeyboardInterrupt):
                    with contextlib.suppress(ApiError):
                        dialog.cancel()
                    print("\n(session cancelled)")
                    return 0
                dialog.reply(answer)
        except ApiError as e:
            error = e.body.get("error") if isinstance(e.body, dict) else None
            if e.status == 404 and isinstance(error, dict) and error.get("reason") == "timed_out":
                print("(the network released the session: no answer in time)", file=sys.stderr)
            else:
                print(_error_text(e), file=sys.stderr)
            return 1


def cmd_watch(url: str, msisdn: str | None, kinds: str | None, token: str | None) -> int:
    """Tail the event stream until interrupted, one readable line per event."""
    if not token:
        print("ussdsim: watch needs the operator token: set USSDSIM_ADMIN_TOKEN", file=sys.stderr)
        return 2

    def opened() -> None:
        print(f"watching {url} (Ctrl-C stops)", file=sys.stderr, flush=True)

    with Client(url, token) as client:
        try:
            for event in client.stream(msisdn, kinds, on_open=opened):
                print(event_line(event), flush=True)
        except ApiError as e:
            print(_error_text(e), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            pass
    return 0


def cmd_sms(url: str, sender: str, to: str, text: str, wait: float) -> int:
    with Client(url) as client:
        try:
            inbox = client.inbox(sender).skip()  # what is there already is not a reply
            accepted = client.sms(sender, to, text)
            print(
                f"sent {accepted['message_id']} "
                f"({accepted['segments']} segment(s), {accepted['encoding']})"
            )
            for message in inbox.poll(wait):
                print(f"<- {message['from']}: {message['text']}")
        except ApiError as e:
            print(_error_text(e), file=sys.stderr)
            return 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.server import serve

    path = args.config
    if path is None and Path("config.yaml").is_file():
        path = "config.yaml"
    overrides: dict[tuple[str, ...], Any] = {
        ("http", "listen"): args.http,
        ("smpp", "listen"): args.smpp,
        ("redis", "url"): args.redis,
        ("redis", "data_dir"): args.data,
        ("clock", "mode"): args.clock,
        ("redis", "durability"): args.durability,
        ("workers",): args.workers,
    }
    dev_account = development_smpp_account()
    try:
        config = load_config(path, overrides=overrides, default_smpp_account=dev_account)
        if dev_account in config.smpp.accounts:
            _announce_dev_account(dev_account)
        config, generated = with_handset_token(config)
        if generated:
            # Printed like the operator token: beyond loopback every handset call needs it.
            print(
                f"ussdsim: handset token (set USSDSIM_HANDSET_TOKEN to choose one): "
                f"{config.http.handset_token}",
                flush=True,
            )
        if config.workers > 1:
            from gateway.workers import supervise

            return supervise(config)
        event_loop.run(serve(config))
    except (ConfigError, StartupError) as e:
        print(f"ussdsim: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _announce_dev_account(account: SmppAccount) -> None:
    # Printed like the operator token, and for the same reason: a person needs it to bind.
    chosen = "" if os.environ.get("USSDSIM_SMPP_PASSWORD") else f" password {account.password}"
    print(
        f"ussdsim: SMPP development account (no smpp.accounts configured; "
        f"USSDSIM_SMPP_SYSTEM_ID / USSDSIM_SMPP_PASSWORD choose it): "
        f"system_id {account.system_id}{chosen}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # httpx logs every request at INFO: the client commands' output is their own lines
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "dial":
            return cmd_dial(args.url, args.msisdn, args.code)
        if args.command == "watch":
            return cmd_watch(
                args.url, args.msisdn, args.kind, os.environ.get("USSDSIM_ADMIN_TOKEN")
            )
        if args.command == "sms":
            return cmd_sms(args.url, args.sender, args.to, args.text, args.wait)
        if args.command == "smpp-send":
            from gateway.smpp_send import run_command as smpp_send

            return smpp_send(args)
        if args.command == "menus":
            from menus.loader import check_command

            return check_command(args.paths)
        if args.command == "load":
            from gateway.harness.load import run_command as run_load

            return run_load(args)
        if args.command == "scenario":
            from gateway.harness.scenario.cli import run_command

            return run_command(args)
    except ServerUnreachable as e:
        print(f"ussdsim: {e}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
