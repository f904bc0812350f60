"""Live refresh: the browser is told, through Server-Sent Events, that memories changed.

One task per process follows the database's change feed (``HierarchicalMemory.watch``) while at
least one browser listens, so writes by any process on the database (an MCP server, a script, an
import) reach every open page a fraction of a second later. Each page's stream carries only the
changes of the users its viewer may see; the page then fetches its changed parts again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from ..memory import HierarchicalMemory, MemoryChange

log = logging.getLogger("memory_mcp")
_QUEUED = 100  # batches kept for a slow browser; beyond that it only needs to know "changed"


class ChangeBroadcast:
    def __init__(self, engine: Callable[[], HierarchicalMemory], interval_s: float) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._queues: set[asyncio.Queue[list[MemoryChange]]] = set()
        self._task: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[list[MemoryChange]]]:
        queue: asyncio.Queue[list[MemoryChange]] = asyncio.Queue(_QUEUED)
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow())
        try:
            yield queue
        finally:
            self._queues.discard(queue)
            if not self._queues:
                await self.stop()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _follow(self) -> None:
        after: int | None = None
        while True:
            try:
                engine = self._engine()
                after = await engine.last_change() if after is None else after
                async for batch in engine.watch(after, interval_s=self._interval_s):
                    after = batch[-1].seq
                    for queue in list(self._queues):
                        if queue.full():
                            queue.get_nowait()
                        queue.put_nowait(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database that went away for a moment: keep following
                log.warning("browser live refresh: reading the change feed failed (%s); retrying", exc)
                await asyncio.sleep(1.0)


def event(changes: list[MemoryChange]) -> str:
    """The data of one event: the users and memories that changed."""
    return json.dumps({
        "users": sorted({c.user_id for c in changes}),
        "memories": sorted({c.memory_id for c in changes}),
    })
