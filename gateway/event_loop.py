"""The event loop the servers run on: uvloop where it is installed (Linux, macOS), else asyncio's.

uvloop runs the same asyncio programs with its loop, transports and timers in C; on a USSD step
that is most of what is neither our code nor Redis (see README, Benchmarks). `USSDSIM_LOOP=asyncio`
keeps the standard loop, for comparison or to debug with asyncio's own tools.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None for asyncio's default (not installed, or asked)."""
    if os.environ.get("USSDSIM_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def loop_name() -> str:
    """The loop `run` would start: "uvloop" or "asyncio"."""
    return "asyncio" if loop_factory() is None else "uvloop"


def running_loop_name() -> str:
    """The loop this coroutine runs on, by the package that made it."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the loop above."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
