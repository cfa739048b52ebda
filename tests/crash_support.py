"""A caller that dies between two steps of a cross-slot move, for the tests of what recovers it."""

from __future__ import annotations

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
