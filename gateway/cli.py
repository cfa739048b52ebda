"""The `ussdsim` command: serve, dial, sms, menus check."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import event_loop
from gateway.config import (
    ENV_KEYS,
    Config,
    ConfigError,
    development_smpp_account,
    load_config,
    with_handset_token,
)
from gateway.runtime import StartupError
from gateway.terminal import event_line, screen_box
from ussdsim.client import ApiError, Client, ServerUnreachable

URL_VARIABLE = "USSDSIM_URL"
FALLBACK_URL = "http://127.0.0.1:8080"
DEFAULT_URL = os.environ.get(URL_VARIABLE, FALLBACK_URL)
URL_HELP = f"the running server (default: ${URL_VARIABLE}, else {FALLBACK_URL})"

SERVE_DESCRIPTION = """\
Run the simulator: the HTTP API and the web phone, the SMPP SMSC and, unless --redis names one,
an embedded Redis keeping its files in --data. Flags beat the USSDSIM_* environment variables,
which beat the configuration file, which beats the built-in defaults. Once it listens it prints
the addresses, the web phone URL and the credentials it generated (an `export TOKEN=...` line for
the operator token; the SMPP development account when no smpp.accounts are configured). A start
that fails prints one line naming the cause and exits with status 2."""


class _Help(argparse.RawDescriptionHelpFormatter):
    """Every flag's help ends with its default, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        quiet = (None, False, "", argparse.SUPPRESS)
        if action.option_strings and action.default not in quiet and "default" not in text:
            text += f" (default: {action.default})"
        return text


def _serve_flag(text: str, key_path: tuple[str, ...]) -> str:
    """`text` with the built-in default and the environment variable of config key `key_path`."""
    value: Any = Config()
    for key in key_path:
        value = getattr(value, key)
    variable = next((v for v, path in ENV_KEYS.items() if path == key_path), None)
    env = f"; env {variable}" if variable else ""
    return f"{text} (default: {value}{env}; config {'.'.join(key_path)})"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ussdsim", description="USSD and SMS gateway simulator", formatter_class=_Help
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the simulator", description=SERVE_DESCRIPTION)
    s.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (default: ./config.yaml if there is one, else built-in values)",
    )
    s.add_argument(
        "--http",
        metavar="HOST:PORT",
        help=_serve_flag("HTTP API and web phone", ("http", "listen")),
    )
    s.add_argument("--smpp", metavar="HOST:PORT", help=_serve_flag("SMPP SMSC", ("smpp", "listen")))
    s.add_argument(
        "--redis",
        metavar="URL|embedded",
        help=_serve_flag("the store: redis://, rediss://, redis+cluster://", ("redis", "url")),
    )
    s.add_argument(
        "--data",
        metavar="DIR",
        help=_serve_flag("where the embedded Redis keeps its files", ("redis", "data_dir")),
    )
    s.add_argument(
        "--maxmemory",
        metavar="SIZE",
        help=_serve_flag(
            "the embedded store's bound on its data (bytes, or e.g. 512MiB)",
            ("redis", "maxmemory"),
        ),
    )
    s.add_argument(
        "--clock",
        choices=["real", "virtual"],
        help=_serve_flag("virtual: moved by POST /v1/clock", ("clock", "mode")),
    )
    s.add_argument(
        "--durability",
        choices=["default", "strict"],
        help=_serve_flag(
            "strict: every acknowledged write is fsynced before the answer",
            ("redis", "durability"),
        ),
    )
    s.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help=_serve_flag("server processes sharing the ports (1..64)", ("workers",)),
    )

    d = sub.add_parser("dial", help="an interactive USSD session against a running server")
    d.add_argument("msisdn", metavar="MSISDN", help="the subscriber, e.g. 9161234567")
    d.add_argument("code", metavar="CODE", help="the USSD string, e.g. '*111#' (quote it)")
    d.add_argument("--url", default=DEFAULT_URL, help=URL_HELP)

    m = sub.add_parser("sms", help="send an SMS from a subscriber and print the replies")
    m.add_argument("sender", metavar="FROM", help="the subscriber sending, e.g. 9161234567")
    m.add_argument("to", metavar="TO", help="the short number or subscriber, e.g. 3339")
    m.add_argument("text", metavar="TEXT", help="the message (quote it if it has spaces)")
    m.add_argument("--url", default=DEFAULT_URL, help=URL_HELP)
    m.add_argument("--wait", type=float, default=3.0, help="seconds to wait for replies")

    w = sub.add_parser("watch", help="tail the event stream (needs USSDSIM_ADMIN_TOKEN)")
    w.add_argument("msisdn", nargs="?", metavar="MSISDN", help="only this number (default: all)")
    w.add_argument("--kind", help="comma-separated kind prefixes, e.g. ussd,sms (default: all)")
    w.add_argument("--url", default=DEFAULT_URL, help=URL_HELP)

    from gateway.smpp_send import add_parser as add_smpp_send_parser

    add_smpp_send_parser(sub)

    menus = sub.add_parser("menus", help="menu files")
    msub = menus.add_subparsers(dest="menus_command", required=True, metavar="COMMAND")
    chk = msub.add_parser("check", help="validate menu files; one line per problem")
    chk.add_argument("paths", nargs="*", help="files or folders (default: the shipped profile)")

    from gateway.harness.scenario.cli import add_parser as add_scenario_parser

    add_scenario_parser(sub)

    from gateway.harness.load import add_parser as add_load_parser

    add_load_parser(sub)
    _finish_help(p)
    return p


def _finish_help(parser: argparse.ArgumentParser) -> None:
    """Every command's `--help` gets the same formatter, its one-line help as the description if
    it has none, and `$USSDSIM_URL` named wherever a `--url` defaults to it."""
    parser.formatter_class = _Help
    for action in parser._actions:
        if "--url" in action.option_strings and action.default == DEFAULT_URL:
            action.help = URL_HELP
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                child.description = child.description or helps.get(name)
                _finish_help(child)


def _version() -> str:
    try:
        return importlib.metadata.version("ussdsim")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


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
        ("redis", "maxmemory"): args.maxmemory,
        ("clock", "mode"): args.clock,
        ("redis", "durability"): args.durability,
        ("workers",): args.workers,
    }
    account = development_smpp_account()
    try:
        config = load_config(path, overrides=overrides, default_smpp_account=account)
        # Printed with the addresses once the server listens, not before: a start that fails
        # shows no password.
        dev_account = account if account in config.smpp.accounts else None
        # Beyond loopback every handset call needs a token: one is made up when none is chosen,
        # and printed with the addresses once the server listens.
        config, handset_token_generated = with_handset_token(config)
        if config.workers > 1:
            from gateway.workers import supervise

            return supervise(
                config,
                dev_account=dev_account,
                handset_token_generated=handset_token_generated,
            )
        event_loop.run(
            serve(
                config,
                dev_account=dev_account,
                handset_token_generated=handset_token_generated,
            )
        )
    except (ConfigError, StartupError) as e:
        print(f"ussdsim: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


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
