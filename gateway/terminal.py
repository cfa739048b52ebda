"""What the terminal shows: USSD screens drawn as a phone display, events as readable lines.

Pure text functions; the CLI does the I/O.
"""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from typing import Any

SCREEN_WIDTH = 34


def screen_box(reply: dict[str, Any], width: int = SCREEN_WIDTH) -> str:
    """A USSD reply as a boxed screen, with the number on top and the network's wait below."""
    lines: list[str] = []
    for line in str(reply.get("text", "")).splitlines() or [""]:
        lines.extend(textwrap.wrap(line, width, replace_whitespace=False) or [""])
    title = f" {reply.get('msisdn', '')} "
    top = "┌" + title.center(width + 2, "─") + "┐"
    if reply.get("end"):
        footer = " end of session "
    else:
        footer = f" answer within {float(reply.get('timeout_s', 0)):.0f} s "
    encoding = f" {reply.get('encoding', '')} {len(str(reply.get('text', '')))} ch "
    bottom_fill = width + 2 - len(footer) - len(encoding)
    bottom = "└" + footer + "─" * max(bottom_fill, 1) + encoding + "┘"
    body = [f"│ {ln.ljust(width)} │" for ln in lines]
    return "\n".join([top, *body, bottom])


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def event_line(event: dict[str, Any]) -> str:
    """One event as `HH:MM:SS  +7916…  kind  key=value …` (times in UTC)."""
    at = datetime.fromtimestamp(float(event.get("at", 0)), UTC).strftime("%H:%M:%S")
    data = event.get("data") or {}
    details = "  ".join(f"{k}={_short(v)}" for k, v in data.items())
    who = event.get("msisdn") or "-"
    return f"{at}  {who:<13}  {event.get('kind', '?'):<16}  {details}".rstrip()
