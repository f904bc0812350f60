"""What the rules work with: the configuration and the adapters behind the ports, shared by the
modules of :mod:`memory_mcp.memory` (the composition root builds them; see ``compose.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from .config import MemoryConfig
from .ports import Embedder, MemoryCache, MemoryStore, TextIndex, VectorIndex
from .rerank import TokenCache

# Builds the vector index once the embedder's dimension is known: (dimension, model name) -> index.
VectorIndexFactory = Callable[[int, str], VectorIndex]
_USER_KEYS_KEPT = 100_000  # user keys remembered at most (a few MB), then asked again


@dataclass
class Parts:
    config: MemoryConfig
    store: MemoryStore
    text_index: TextIndex
    embedder: Embedder
    cache: MemoryCache | None
    make_vector_index: VectorIndexFactory
    vectors: VectorIndex | None = None  # set once the embedder has been checked against the store
    semantic_ready: asyncio.Event = field(default_factory=asyncio.Event)
    background: asyncio.Task[None] | None = None  # the embedder loading, when it loads in the background
    waiting_for: str | None = None  # why that loading waits (the database cannot be written now)
    reembed: bool = False  # re-embed everything if the embedder differs from the database's
    cache_seq: int = 0  # the last change the cache has seen
    user_keys: dict[str, int] = field(default_factory=dict)  # see user_key
    token_cache: TokenCache | None = None  # reranking's, there when MemoryConfig.rerank is on

    async def user_key(self, user_id: str) -> int | None:
        """The user's key, None while the user has stored nothing. Users are never deleted and a
        key never changes, so each is asked of the store once per process: a recall or an add
        saves a read transaction."""
        key = self.user_keys.get(user_id)
        if key is None:
            async with self.store.reading() as db:
                key = await db.user_key(user_id)
            if key is not None:
                if len(self.user_keys) >= _USER_KEYS_KEPT:
                    self.user_keys.clear()
                self.user_keys[user_id] = key
        return key

    def forget_cached(self, memory_id: str | None) -> None:
        if self.cache is not None and memory_id is not None:
            self.cache.invalidate(memory_id)

    async def refresh_cache(self) -> None:
        """Drop cached memories that any process has changed since we last looked."""
        if self.cache is None:
            return
        async with self.store.reading() as db:
            changes = await db.changes_since(self.cache_seq)
        for change in changes:
            self.cache.invalidate(change.memory_id)
            self.cache_seq = change.seq
