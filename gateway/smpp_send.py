"""`ussdsim smpp-send`: submit one MT through a running SMSC, for quick checks."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from sms.smpp.constants import EsmClass, Status
from sms.smpp.esme import EsmeClient, EsmeError, submit_text


def add_parser(sub: Any) -> None:
    p = sub.add_parser("smpp-send", help="submit an MT through a running SMSC")
    p.add_argument("to", metavar="TO", help="the subscriber, e.g. 79161234567")
    p.add_argument("text", metavar="TEXT", help="the message (quote it if it has spaces)")
    p.add_argument("--from", dest="source", default="", help="source_addr (default: none)")
    p.add_argument(
        "--smpp",
        metavar="HOST:PORT",
        default=os.environ.get("USSDSIM_SMPP", "127.0.0.1:2775"),
        help="the SMSC (default: $USSDSIM_SMPP, else 127.0.0.1:2775)",
    )
    p.add_argument(
        "--system-id",
        default=os.environ.get("USSDSIM_SMPP_SYSTEM_ID", "ussdsim"),
        help="the account (default: $USSDSIM_SMPP_SYSTEM_ID, else ussdsim)",
    )
    # The help never shows the value: it may be a password from the environment.
    p.add_argument(
        "--password",
        default=os.environ.get("USSDSIM_SMPP_PASSWORD", "secret"),
        help="the account's password (default: $USSDSIM_SMPP_PASSWORD, else secret)",
    )
    p.add_argument("--receipt", action="store_true", help="ask for and wait for receipts")
    p.add_argument("--wait", type=float, default=5.0, help="seconds to wait for receipts")


async def _send(args: argparse.Namespace) -> int:
    host, _, port = args.smpp.rpartition(":")
    if not host or not port.isdigit():
        print(f"ussdsim: --smpp expects HOST:PORT, got {args.smpp!r}", file=sys.stderr)
        return 2
    client = EsmeClient(host, int(port), system_id=args.system_id, password=args.password)
    async with client:
        responses = await submit_text(
            client, args.to, args.text, source=args.source, receipt=args.receipt
        )
        failed = False
        for resp in responses:
            if resp.status == Status.ROK:
                print(f"submitted {resp['message_id']}")
            else:
                failed = True
                print(f"refused: {Status(resp.status).name}", file=sys.stderr)
        if args.receipt and not failed:
            for _ in responses:
                try:
                    pdu = await asyncio.wait_for(client.delivered.get(), args.wait)
                except TimeoutError:
                    print("no receipt within the wait", file=sys.stderr)
                    return 1
                if pdu["esm_class"] & EsmClass.DELIVERY_RECEIPT:
                    print(f"receipt: {pdu['short_message'].decode('ascii', 'replace')}")
    return 1 if failed else 0


def run_command(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_send(args))
    except (OSError, EsmeError) as e:
        print(f"ussdsim: smpp-send: {e}", file=sys.stderr)
        return 1
