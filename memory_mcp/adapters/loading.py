"""Loading a model once, in a worker thread, whoever asks first (for the local embedders)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from ..errors import EmbedderError

T = TypeVar("T")


class LoadOnce(Generic[T]):
    """``build`` runs in a worker thread on the first ``get()``; callers that arrive meanwhile wait
    for that same load, and one that is cancelled does not cancel it. A load that fails with
    :class:`EmbedderError` is tried again by the next caller."""

    def __init__(self, build: Callable[[], T]):
        self._build = build
        self.value: T | None = None
        self._loading: asyncio.Future[T] | None = None

    async def get(self) -> T:
        if self.value is not None:
            return self.value
        if self._loading is None:
            self._loading = asyncio.ensure_future(asyncio.to_thread(self._build))
        try:
            self.value = await asyncio.shield(self._loading)
        except EmbedderError:
            self._loading = None
            raise
        return self.value

    def reset(self) -> None:
        self.value = None
        self._loading = None
