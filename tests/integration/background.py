"""A test's companion that works in the background while the test does something else."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self


class Background:
    """`async with` runs `_run` as a task for the duration of the block, then cancels it."""

    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
