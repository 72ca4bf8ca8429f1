"""Counting the event loop's turns, to see whether long work lets other tasks run."""

from __future__ import annotations

import asyncio
from types import TracebackType


class LoopTurns:
    """`async with LoopTurns() as turns:` a task counts the loop's turns in `turns.count`."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def _count(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> LoopTurns:
        self._task = asyncio.create_task(self._count())
        await asyncio.sleep(0)  # the counter has started
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._task.cancel()
