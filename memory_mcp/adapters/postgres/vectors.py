"""PgvectorIndex: nearest memory vectors with pgvector, one user at a time.

The vectors are the store's own column, so there is nothing to load, save or catch up: a vector
any server writes is found by the next search of every other. One HNSW index (cosine) covers
every user, built for the model's dimension on first use; a search never ranks across users:

- a user with few vectors (``EXACT_BELOW``) is searched exactly, through the index on
  ``user_key``: cheap at that size, and it never misses;
- a larger one through HNSW, asking it for enough neighbours that the user's share of them holds
  the ``count`` wanted (pgvector 0.6 cannot filter inside the index, so the candidate list is
  widened here, as ``hnsw.ef_search`` allows up to 1000); if the user's share is too small for
  that, or HNSW returns fewer of the user's vectors than asked, the user is searched exactly.

Similarities are cosine (1 − pgvector's cosine distance), computed in full precision.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np

from ...memory.ports import Vector, VectorFilter
from .store import PostgresMemoryStore

INDEX_LOCK = 0x6D656D6F72790003  # held while a server builds the HNSW index

EXACT_BELOW = 2048
MAX_EF_SEARCH = 1000  # pgvector's limit


class PgvectorIndex:
    def __init__(
        self, store: PostgresMemoryStore, *, ndim: int, connectivity: int = 16, expansion_add: int = 64,
        expansion_search: int = 40, exact_below: int = EXACT_BELOW,
    ):
        self._store = store
        self.ndim = ndim
        self._m = connectivity
        self._ef_construction = expansion_add
        self._ef_search = expansion_search
        self._exact_below = exact_below
        self._ready = False
        self._lock = asyncio.Lock()
        self.index_name = f"memories_embedding_hnsw_{ndim}"
        self._cast = f"embedding::vector({ndim})"

    async def _ensure_index(self) -> None:
        """Make the HNSW index for this dimension if no server has yet (checked once per process).

        It is built CONCURRENTLY, outside any transaction, so that other servers keep reading and
        writing meanwhile (over many vectors a build takes a while); a session advisory lock keeps
        two servers from building it at once (polled: waiting for it inside a statement would
        deadlock with the build), and a build that was interrupted (an invalid index) is dropped
        and made again."""
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            async with self._store.pool.acquire() as conn:
                # Polled, not waited for: a statement waiting for the lock would be a transaction
                # that the build under way waits for in turn (a deadlock).
                while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", INDEX_LOCK):
                    await asyncio.sleep(0.1)
                try:
                    valid = await conn.fetchval(
                        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                        "WHERE c.relname = $1",
                        self.index_name,
                    )
                    if valid is False:
                        await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {self.index_name}")
                    if not valid:
                        await conn.execute(
                            f"CREATE INDEX CONCURRENTLY {self.index_name} ON memories USING hnsw "
                            f"(({self._cast}) vector_cosine_ops) WITH (m = {int(self._m)}, "
                            f"ef_construction = {int(self._ef_construction)})"
                        )
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", INDEX_LOCK)
            self._ready = True

    async def search(self, query: Vector, count: int, flt: VectorFilter) -> list[tuple[int, float]]:
        if count <= 0:
            return []
        await self._ensure_index()
        q = np.asarray(query, dtype=np.float32)
        async with self._store.reading() as db:
            mine, _ = await db.user_counts(flt.user_key)
            if mine == 0:
                return []
            if mine > self._exact_below:
                everyone = max(int(await db.scalar(
                    "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE relname = 'memories'"
                ) or 0), mine)
                wanted = math.ceil(count * everyone / mine * 1.5) + 10
                if wanted <= MAX_EF_SEARCH:
                    candidates = max(wanted, self._ef_search)
                    await db.run(f"SET LOCAL hnsw.ef_search = {candidates}")
                    found = await db.rows(
                        f"SELECT key, 1 - ({self._cast} <=> ?) FROM ("
                        f"SELECT key, user_key, embedding FROM memories WHERE embedding IS NOT NULL "
                        f"ORDER BY {self._cast} <=> ? LIMIT ?) c WHERE user_key = ? ORDER BY 2 DESC LIMIT ?",
                        (q, q, candidates, flt.user_key, count),
                    )
                    if len(found) >= min(count, mine):
                        return [(int(k), float(s)) for k, s in found]
            found = await db.rows(
                "SELECT key, 1 - (embedding <=> ?) AS similarity FROM memories "
                "WHERE user_key = ? AND embedding IS NOT NULL ORDER BY similarity DESC, key LIMIT ?",
                (q, flt.user_key, count),
            )
        return [(int(k), float(s)) for k, s in found]

    async def search_many(self, queries: Vector, count: int, flt: VectorFilter) -> list[list[tuple[int, float]]]:
        return [await self.search(query, count, flt) for query in np.asarray(queries, dtype=np.float32)]

    async def sync(self, user_key: int) -> None:
        """Nothing to do: the index is the database's."""

    async def keys(self, user_key: int) -> set[int]:
        async with self._store.reading() as db:
            return await db.embedded_keys(user_key)

    async def rebuild(self, user_key: int | None = None) -> int:
        """REINDEX the HNSW index (every user's: there is one); for one user there is nothing of
        its own to rebuild, and the count of its vectors is returned."""
        await self._ensure_index()
        async with self._store.transaction() as db:
            if user_key is None:
                await db.run(f"REINDEX INDEX {self.index_name}")
                return int(await db.scalar("SELECT count(*) FROM memories WHERE embedding IS NOT NULL"))
            return await db.embedded_count(user_key)

    async def save(self) -> None:
        """Nothing to do: the database keeps the index."""

    async def close(self) -> None:
        """Nothing to do: the store owns the connections."""
