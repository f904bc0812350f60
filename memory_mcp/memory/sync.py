"""A synchronous facade over HierarchicalMemory, for scripts and synchronous clients.

The engine runs on its own event loop in a daemon thread, so the facade works the same whether or
not the calling thread already runs an event loop (a notebook, an async web app).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from .config import MemoryConfig
from .engine import HierarchicalMemory

T = TypeVar("T")
log = logging.getLogger("memory_mcp")


class SyncHierarchicalMemory:
    """``HierarchicalMemory`` with blocking methods: ``SyncHierarchicalMemory(config).add(...)``."""

    def __init__(self, config: MemoryConfig | None = None, **adapters: Any):
        self._loop = asyncio.new_event_loop()
        self._background: set[concurrent.futures.Future[Any]] = set()
        self._background_lock = threading.Lock()  # added by callers' threads, removed by the loop's
        self._thread = threading.Thread(target=self._loop.run_forever, name="memory_mcp", daemon=True)
        self._thread.start()
        try:
            self.engine: HierarchicalMemory = self.run(HierarchicalMemory.create(config, **adapters))
        except BaseException:
            self._stop()
            raise

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of ``self.engine`` on the engine's loop and wait for its result.

        It runs after every write started with :meth:`spawn`, so it sees what they stored."""
        return asyncio.run_coroutine_threadsafe(self._after_background(coroutine), self._loop).result()

    async def arun(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """The same, awaited from another event loop (an async caller) without blocking it."""
        future = asyncio.run_coroutine_threadsafe(self._after_background(coroutine), self._loop)
        return await asyncio.wrap_future(future)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Start a write without waiting for it; the next ``run``/``arun``/``close`` waits for it.

        This keeps storage off a caller's critical path while every later read stays consistent.
        The coroutine should handle its own errors; one that escapes is logged."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        with self._background_lock:
            self._background.add(future)
        future.add_done_callback(self._finished)

    def _finished(self, future: concurrent.futures.Future[Any]) -> None:
        with self._background_lock:
            self._background.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("a background memory write failed", exc_info=future.exception())

    async def _after_background(self, coroutine: Coroutine[Any, Any, T]) -> T:
        with self._background_lock:
            pending = [asyncio.wrap_future(f) for f in self._background]
        if pending:
            await asyncio.wait(pending)
        return await coroutine

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.engine, name)
        if not asyncio.iscoroutinefunction(attribute):
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            return self.run(attribute(*args, **kwargs))

        return call

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self.run(self.engine.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncHierarchicalMemory:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
