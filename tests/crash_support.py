"""A caller that dies between two steps of a cross-slot move, for the tests of what recovers it,
and two callers of one move held just before step 1, for the tests of who decides its verdict."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ledger.outcomes import Result
from ledger.transfers import StepHook


class Crash(Exception):
    """The caller dies between two steps."""


def crash_at(step: str | None) -> StepHook | None:
    """A `between_steps` hook raising `Crash` on reaching `step`; None (no crash) for None."""
    if step is None:
        return None

    async def hook(reached: str) -> None:
        if reached == step:
            raise Crash(step)

    return hook


async def race_to_step_one(
    call: Callable[[StepHook], Awaitable[Result]],
    between: Callable[[], Awaitable[None]],
    a_first: bool,
) -> tuple[Result, Result]:
    """Two calls of one change, A and B: A runs up to just before step 1 (claimed, books read),
    `between` runs (a top-up), B runs up to the same point, then both take step 1 in the order
    asked (A first or B first) and finish. `call(hook)` starts one call with that step hook."""
    gates = {"a": asyncio.Event(), "b": asyncio.Event()}
    tasks: dict[str, asyncio.Task[Result]] = {}
    for name in ("a", "b"):
        reached = asyncio.Event()

        async def hold_back(step: str, name: str = name, reached: asyncio.Event = reached) -> None:
            if step == "checked":
                reached.set()
                await gates[name].wait()

        tasks[name] = asyncio.ensure_future(call(hold_back))
        waiting = asyncio.ensure_future(reached.wait())
        # A call refused before step 1 answers without reaching it.
        await asyncio.wait({tasks[name], waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if name == "a":
            await between()
    for name in ("a", "b") if a_first else ("b", "a"):
        gates[name].set()
        await asyncio.wait({tasks[name]})
    return tasks["a"].result(), tasks["b"].result()


def assert_one_verdict(a: Result, b: Result) -> None:
    """Two calls of one transfer id answer the same verdict: the same transfer, made by one of
    them at most (the other answers it as a duplicate), or the same refusal."""
    assert a.outcome is b.outcome, (a, b)
    assert {**a.values, "duplicate": None} == {**b.values, "duplicate": None}, (a, b)
    if a.ok:
        assert [a.values["duplicate"], b.values["duplicate"]].count(False) <= 1, (a, b)
