"""HierarchicalMemory: the rules of memory, in one place.

Everything a memory server or a client wrapper does goes through this class; the adapters under it
only store, index and embed. The rules (see DESIGN.md):

* Scope. A memory's scope is the narrowest id it carries (user → session → agent → turn). A query
  made from a position sees the memories on its path upward: a memory is visible iff it belongs to
  the same user and each of its session/agent/turn ids is either absent or equal to the position's.
* Time. Nothing is edited in place: ``supersede`` closes the old version and stores the new one in
  one transaction. Current queries skip closed versions; ``as_of`` shows what was current then;
  ``get_history`` returns the whole chain, oldest first.
* TURN memories are working memory: they expire after ``turn_ttl_s`` and as soon as a later turn of
  the same session writes a memory.
* Duplicates. Remembering what is already current on the position's path, or just below it (same
  text, or cosine similarity ≥ ``duplicate_similarity``), reinforces the existing memory.
* Bubbling. A memory climbs one level for each promotion threshold its importance clears, and one
  level when recalled from ``promotion_recall_count`` distinct positions. It moves; it is not copied.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TextIO

import aiosqlite
import numpy as np

from ..errors import (
    AlreadySupersededError,
    ContentTooLongError,
    EmbedderMismatchError,
    EmptyContentError,
    InvalidArgumentError,
    InvalidImportanceError,
    InvalidTimeError,
    MemoryNotFoundError,
    MissingUserError,
    UnknownCategoryError,
)
from . import transfer
from .config import EmbedderBackend, MemoryConfig
from .models import Memory, MemoryCategory, MemoryStats, ScopeLevel, SearchResult
from .ports import (
    Embedder,
    MemoryCache,
    MemoryFilter,
    MemoryStore,
    TextIndex,
    Vector,
    VectorFilter,
    VectorIndex,
)
from .scoring import estimate_tokens, reciprocal_rank_fusion, score_fusion, weigh

log = logging.getLogger(__name__)

SearchMode = Literal["hybrid", "semantic", "text"]
_ID_FIELDS = ("session_id", "agent_id", "turn_id")
_MAX_ID_CHARS = 256
_NEAR = 32  # nearest neighbours a new memory's vector is compared with when looking for duplicates
_CLOCK_SKEW_S = 300  # a valid_from this far ahead of our clock is a mistake, not skew
_MAX_TOP_K = 1000


@dataclass(frozen=True)
class Position:
    """Where a call is made from: a user and, optionally, a session, an agent and a turn."""

    user_id: str
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None

    @property
    def level(self) -> ScopeLevel:
        return ScopeLevel.of(self.session_id, self.agent_id, self.turn_id)

    def key(self) -> str:
        return json.dumps([self.session_id, self.agent_id, self.turn_id])


class HierarchicalMemory:
    """Hierarchical, temporal memory over a store, a vector index, a text index and an embedder.

    Create with ``await HierarchicalMemory.create(config)``; use as ``async with`` or call
    ``close()``. Adapters may be injected in place of the configured defaults.
    """

    def __init__(
        self,
        config: MemoryConfig,
        store: MemoryStore,
        text_index: TextIndex,
        embedder: Embedder,
        cache: MemoryCache | None,
        vector_index: VectorIndex | None = None,
    ):
        self.config = config
        self.store = store
        self.text_index = text_index
        self.embedder = embedder
        self.cache = cache
        self._vector_index = vector_index
        self._injected_vector_index = vector_index is not None
        self._cache_seq = 0
        self._semantic_ready = asyncio.Event()
        self._background: asyncio.Task[None] | None = None
        self._closed = False
        self._reembed = False

    # -- construction -------------------------------------------------------------------------

    @classmethod
    async def create(
        cls,
        config: MemoryConfig | None = None,
        *,
        store: MemoryStore | None = None,
        vector_index: VectorIndex | None = None,
        text_index: TextIndex | None = None,
        embedder: Embedder | None = None,
        cache: MemoryCache | None = None,
        reembed: bool = False,
    ) -> HierarchicalMemory:
        """Open (or create) the memory database of ``config`` and return the engine.

        An embedder other than the one the database was built with is refused, unless ``reembed``
        is true: then every memory is embedded again with the new one (as ``memory-mcp reindex``).
        """
        from ..adapters.fts5_index import Fts5TextIndex
        from ..adapters.lru_cache import LRUMemoryCache
        from ..adapters.sqlite_store import SQLiteMemoryStore

        config = config or MemoryConfig()
        if store is None:
            store = SQLiteMemoryStore(
                config.db_path, synchronous=config.synchronous, busy_timeout_ms=config.busy_timeout_ms
            )
        await store.open()
        try:
            if cache is None and config.cache_enabled:
                cache = LRUMemoryCache(config.cache_max_size)
            memory = cls(
                config,
                store,
                text_index or Fts5TextIndex(store, context_weight=config.context_weight),
                embedder or make_embedder(config),
                cache,
                vector_index,
            )
            memory._reembed = reembed
            async with store.reading() as db:
                memory._cache_seq = await store.last_change(db)
            if config.background_embedding:
                memory._background = asyncio.create_task(memory._prepare_semantic())
            else:
                await memory._prepare_vectors()
        except BaseException:
            await store.close()
            raise
        return memory

    async def __aenter__(self) -> HierarchicalMemory:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Save the vector indexes and close the database. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._background is not None:
            self._background.cancel()
            try:
                await self._background
            except (asyncio.CancelledError, Exception):
                pass
        try:
            if self._vector_index is not None:
                await self._vector_index.close()
        finally:
            await self.embedder.aclose()
            await self.store.close()

    @property
    def semantic_ready(self) -> bool:
        """False while the embedder is still loading (recall then answers from full text alone)."""
        return self._semantic_ready.is_set()

    async def wait_until_ready(self) -> None:
        """Wait until semantic search is available; raises why if the embedder failed to load."""
        if self.semantic_ready:
            return
        if self._background is None:  # the library's default: prepare here, now
            await self._prepare_vectors()
            return
        ready = asyncio.ensure_future(self._semantic_ready.wait())
        try:
            await asyncio.wait({ready, self._background}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if not self.semantic_ready:
            self._background.result()  # re-raises why loading failed

    async def _prepare_semantic(self) -> None:
        try:
            await self.embedder.warm_up()
            await self._prepare_vectors()
        except Exception:
            log.exception("the embedder could not be prepared; recall stays full-text only")
            raise

    async def _prepare_vectors(self) -> None:
        """Check the embedder against the database, open the vector index, embed pending writes."""
        dim = await self.embedder.dimension()
        model = self.embedder.model_name
        if self.config.vector_dimension is not None and self.config.vector_dimension != dim:
            raise EmbedderMismatchError(
                f"vector_dimension={self.config.vector_dimension} is configured but the embedder "
                f"{model!r} produces {dim}-dimensional vectors; set vector_dimension={dim} or leave it unset"
            )
        async with self.store.transaction() as db:
            stored_model = await self.store.get_meta(db, "embedder_model")
            stored_dim = await self.store.get_meta(db, "embedding_dim")
            if stored_model is None:
                await self.store.set_meta(db, "embedder_model", model)
                await self.store.set_meta(db, "embedding_dim", str(dim))
            elif (stored_model != model or int(stored_dim or 0) != dim) and self._reembed:
                log.warning("re-embedding every memory with %s (was %s)", model, stored_model)
                await db.execute("UPDATE memories SET embedding = NULL WHERE embedding IS NOT NULL")
                await db.execute("DELETE FROM vector_index_files")
                await self.store.set_meta(db, "embedder_model", model)
                await self.store.set_meta(db, "embedding_dim", str(dim))
            elif stored_model != model or int(stored_dim or 0) != dim:
                raise EmbedderMismatchError(
                    f"{self.store.db_path} was built with the embedding model {stored_model!r} "
                    f"({stored_dim} dimensions) but this embedder is {model!r} ({dim} dimensions); "
                    f"open it with embedder_model={stored_model!r}, or re-embed every memory with "
                    f"the new model (`memory-mcp reindex --embedder-model {model}`, or "
                    "HierarchicalMemory.create(config, reembed=True)) before using it"
                )
        if self._vector_index is None:
            from ..adapters.usearch_index import UsearchVectorIndex

            self._vector_index = UsearchVectorIndex(
                self.store,
                Path(str(self.store.db_path) + ".vectors"),
                ndim=dim,
                model_name=model,
                connectivity=self.config.hnsw_m,
                expansion_add=self.config.hnsw_ef_construction,
                expansion_search=self.config.hnsw_ef_search,
                save_every=self.config.index_save_every,
            )
        await self._embed_pending()
        self._semantic_ready.set()
        await self._embed_pending()  # writes that raced with the line above

    async def _embed_pending(self, batch: int = 256) -> int:
        done = 0
        while True:
            async with self.store.reading() as db:
                pending = await self.store.pending_embeddings(db, batch)
            if not pending:
                return done
            vectors = await self.embedder.embed([content for _, content in pending])
            async with self.store.transaction() as db:
                for (key, _), vector in zip(pending, vectors, strict=True):
                    await db.execute(
                        "UPDATE memories SET embedding = ? WHERE key = ? AND embedding IS NULL",
                        (vector.astype(np.float32).tobytes(), key),
                    )
            done += len(pending)
            log.info("embedded %d memories stored before the embedder was ready", len(pending))

    async def check(self) -> dict[str, list[str]]:
        """Consistency of the database after anything (a crash, say): every list empty means sound.

        Version links must hold both ways (a closed version's successor exists, a new version's
        predecessor points at it), the full-text index must match the store (FTS5 integrity
        check), and each user's vector index must hold exactly that user's embedded memories.
        """
        await self.wait_until_ready()
        found: dict[str, list[str]] = {"links": [], "text_index": [], "vector_index": []}
        async with self.store.reading() as db:
            rows = await (await db.execute(
                "SELECT m.id, m.superseded_by FROM memories m WHERE m.superseded_by IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM memories n WHERE n.id = m.superseded_by AND n.user_key = m.user_key)"
            )).fetchall()
            found["links"] += [f"{old} is closed by {new}, which is not stored" for old, new in rows]
            rows = await (await db.execute(
                "SELECT n.id, n.supersedes FROM memories n JOIN memories m ON m.id = n.supersedes "
                "WHERE m.superseded_by IS NOT n.id OR m.valid_until IS NULL"
            )).fetchall()
            found["links"] += [f"{new} supersedes {old}, which is not closed by it" for new, old in rows]
            users = [int(k) for (k,) in await (await db.execute("SELECT user_key FROM users")).fetchall()]
            embedded = {}
            for user_key in users:
                cursor = await db.execute(
                    "SELECT key FROM memories WHERE user_key = ? AND embedding IS NOT NULL", (user_key,)
                )
                embedded[user_key] = {int(k) for (k,) in await cursor.fetchall()}
        try:
            await self.text_index.integrity_check()
        except aiosqlite.DatabaseError as exc:
            found["text_index"].append(f"full-text index differs from the store: {exc}")
        assert self._vector_index is not None
        for user_key in users:
            indexed = await self._vector_index.keys(user_key)
            if indexed != embedded[user_key]:
                found["vector_index"].append(
                    f"user {user_key}: {len(embedded[user_key] - indexed)} embedded memories missing from the "
                    f"vector index, {len(indexed - embedded[user_key])} indexed that are not stored"
                )
        return found

    async def export_jsonl(self, out: TextIO, user_id: str | None = None) -> int:
        """Write every version of every memory (of one user, or all) to ``out`` as JSON lines;
        returns how many. See :mod:`memory_mcp.memory.transfer` for the format."""
        count = 0
        async for record in transfer.export_records(self, user_id):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
        return count

    async def import_jsonl(
        self, lines: Iterable[str], progress: Callable[[int], None] | None = None
    ) -> transfer.ImportReport:
        """Import JSON lines written by :meth:`export_jsonl` (ids, chains and scopes restored) or
        lines without an id (remembered through :meth:`add`). Bad lines are reported, not fatal."""
        return await transfer.import_lines(self, lines, progress)

    async def reindex(self) -> dict[str, int]:
        """Rebuild both indexes from the store: FTS5 (then its integrity check) and every user's
        vector index. Returns how many memories and vectors were indexed."""
        await self.wait_until_ready()
        await self._embed_pending()
        await self.text_index.rebuild()
        await self.text_index.integrity_check()
        async with self.store.reading() as db:
            cursor = await db.execute("SELECT user_key FROM users")
            user_keys = [int(k) for (k,) in await cursor.fetchall()]
            memories = int(await self.store.scalar(db, "SELECT count(*) FROM memories"))
        vectors = 0
        assert self._vector_index is not None
        for user_key in user_keys:
            vectors += await self._vector_index.rebuild(user_key)
        return {"memories": memories, "vectors": vectors, "users": len(user_keys)}

    # -- writing ------------------------------------------------------------------------------

    async def add(
        self,
        content: str,
        user_id: str | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        category: MemoryCategory | str = MemoryCategory.FACT,
        importance: float = 0.5,
        entity_refs: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        provenance: Mapping[str, Any] | None = None,
        valid_from: datetime | str | float | None = None,
        context: str | None = None,
        _vector: Vector | None = None,
    ) -> Memory:
        """Remember ``content`` at the position given by the ids; returns the stored memory.

        ``valid_from`` is when the fact became true (say, when it was said in an imported
        conversation); it defaults to now and may not lie in the future.

        ``context`` is text that situates the memory without being part of it, such as the message
        it answers ("What flavour did you make?" for "Chocolate and vanilla swirl."). Full-text
        search finds the memory by its words too (each counting ``context_weight`` of one of the
        memory's own); it is not embedded, and the memory carries it as ``context``.

        If the same fact is already current on the position's path (or just below it), that memory
        is reinforced and returned instead of storing a second one. High importance promotes the
        memory upward at once (see ``MemoryConfig.promote_*``).
        """
        position = self._position(user_id, session_id, agent_id, turn_id)
        content = self._content(content)
        category = _category(category)
        importance = _importance(importance)
        refs = _entity_refs(entity_refs)
        meta = _json_object(metadata, "metadata")
        prov = _json_object(provenance, "provenance")
        since = _valid_from(valid_from)
        situation = self._context(context)
        if idempotency_key is not None:
            _check_id(idempotency_key, "idempotency_key")
            earlier = await self._idempotent(position.user_id, idempotency_key)
            if earlier is not None:
                return earlier
        digest = _hash(content)
        vector = _vector if _vector is not None else await self._embed_now(content)
        target = self._promoted(position, importance)
        similar = await self._similar(position, target, vector, content)
        now = time.time()

        async with self.store.transaction() as db:
            user_key = await self.store.user_key(db, position.user_id, create=True)
            assert user_key is not None
            if idempotency_key is not None:  # again under the write lock: a concurrent retry
                earlier = await self._earlier(db, user_key, idempotency_key)
                if earlier is not None:
                    return earlier
            if position.turn_id is not None and position.session_id is not None:
                await self._expire_other_turns(db, user_key, position, now)
            existing = await self._find_duplicate(db, user_key, position, target, digest, similar, now)
            if existing is not None:
                key, memory = existing
                memory = await self._reinforce(db, key, memory, importance, target, now)
                if await self._absorb(db, user_key, key, memory, digest, similar, now):
                    found = await self.store.get(db, memory.id)  # absorbing counted reinforcements
                    assert found is not None
                    memory = found[2]
            else:
                memory_id = str(uuid.uuid4())
                row = {
                    "id": memory_id, "user_key": user_key,
                    "session_id": target.session_id, "agent_id": target.agent_id, "turn_id": target.turn_id,
                    "scope_level": target.level.value, "category": category.value, "content": content,
                    "content_hash": digest, "importance": importance, "entity_refs": refs, "metadata": meta,
                    "provenance": {**prov, "recorded_at": _iso(now)},
                    "created_at": now, "valid_from": now if since is None else since,
                    "expires_at": now + self.config.turn_ttl_s if target.turn_id is not None else None,
                    **_text_columns(content, refs, now if since is None else since, situation),
                    "embedding": None if vector is None else vector.tobytes(),
                }
                if target != position:
                    row.update(_origin(position), promoted_at=now)
                key = await self.store.insert(db, row)
                if target != position:
                    await self._absorb(db, user_key, key, target, digest, similar, now)
                found = await self.store.get(db, memory_id)
                assert found is not None
                memory = found[2]
            if idempotency_key is not None:
                await db.execute(
                    "INSERT OR IGNORE INTO idempotency_keys(user_key, key, memory_id, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (user_key, idempotency_key, memory.id, now),
                )
        self._forget_cached(memory.id)
        await self._after_write(vector)
        return memory

    async def add_many(self, items: Sequence[Mapping[str, Any]], *, batch_size: int = 256) -> list[Memory]:
        """Add many memories (each a dict of :meth:`add`'s arguments), embedding them in batches.

        The same rules apply as for one ``add`` at a time (duplicates, promotion, expiry); batching
        only makes the embedder do its work in bulk, which is what makes imports fast.
        """
        batches = [[dict(item) for item in items[at : at + batch_size]] for at in range(0, len(items), batch_size)]
        embed = not (self.config.background_embedding and not self.semantic_ready)
        if embed:
            await self.wait_until_ready()

        def embedding(batch: list[dict[str, Any]]) -> asyncio.Future[Any] | None:
            texts = [self._content(item.get("content")) for item in batch]
            return asyncio.ensure_future(self.embedder.embed(texts)) if embed else None

        stored: list[Memory] = []
        pending = embedding(batches[0]) if batches else None
        try:
            for number, batch in enumerate(batches):
                vectors = list(await pending) if pending is not None else [None] * len(batch)
                # The next batch embeds (in the embedder's thread) while this one is stored.
                pending = embedding(batches[number + 1]) if number + 1 < len(batches) else None
                for item, vector in zip(batch, vectors, strict=True):
                    stored.append(await self.add(**item, _vector=vector))
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
        return stored

    async def add_conversation(
        self, turns: Sequence[Mapping[str, Any]], *, window: int = 2, **shared: Any
    ) -> list[Memory]:
        """Store each turn of a conversation (each a dict of :meth:`add`'s arguments, ``shared``
        giving those common to all, such as ``user_id``) as one memory, in order.

        A turn alone often means little ("Yes, twice last year!"), so each turn gets the ``window``
        turns before and after it as its ``context``, unless it brings its own: full-text search
        then finds it by what was being talked about, while it stays the turn as said.
        """
        window = _count(window, "window", 0, 50)
        texts = [self._content(turn.get("content")) for turn in turns]
        items = []
        for i, turn in enumerate(turns):
            item = {**shared, **turn}
            around = texts[max(0, i - window) : i] + texts[i + 1 : i + 1 + window]
            if "context" not in turn and around:
                item["context"] = "\n".join(around)[: self.config.max_content_chars]
            items.append(item)
        return await self.add_many(items)

    remember = add  # the reference's convenience name for add

    async def supersede(
        self,
        old_memory_id: str,
        new_content: str,
        *,
        user_id: str | None = None,
        category: MemoryCategory | str | None = None,
        importance: float | None = None,
        entity_refs: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> Memory:
        """Replace a current memory by a new version, keeping the old one in its history.

        The new memory keeps the old one's scope, category, importance, entity refs and metadata
        unless given. ``user_id``, when given, must own the old memory.
        """
        old_key, user_key, old = await self._owned(old_memory_id, user_id)
        content = self._content(new_content)
        new_category = _category(category) if category is not None else old.category
        new_importance = _importance(importance) if importance is not None else old.importance
        refs = _entity_refs(entity_refs) if entity_refs is not None else list(old.entity_refs)
        meta = _json_object(metadata, "metadata") if metadata is not None else dict(old.metadata)
        prov = _json_object(provenance, "provenance")
        if idempotency_key is not None:
            _check_id(idempotency_key, "idempotency_key")
            earlier = await self._idempotent(old.user_id, idempotency_key)
            if earlier is not None:
                return earlier
        if not old.is_current:
            async with self.store.reading() as db:
                chain_key = await _chain_key(db, self.store, old_key)
                raise _already_superseded(old, await self._current_of(db, chain_key))
        vector = await self._embed_now(content)
        now = time.time()
        new_id = str(uuid.uuid4())
        async with self.store.transaction() as db:
            if idempotency_key is not None:  # again under the write lock: a concurrent retry
                earlier = await self._earlier(db, user_key, idempotency_key)
                if earlier is not None:
                    return earlier
            chain_key = await _chain_key(db, self.store, old_key)
            cursor = await db.execute(
                "UPDATE memories SET valid_until = ?, superseded_by = ? WHERE key = ? AND valid_until IS NULL",
                (now, new_id, old_key),
            )
            if cursor.rowcount != 1:  # closed by another writer since we read it
                raise _already_superseded(old, await self._current_of(db, chain_key))
            await self.store.insert(db, {
                "id": new_id, "user_key": user_key,
                "session_id": old.session_id, "agent_id": old.agent_id, "turn_id": old.turn_id,
                "scope_level": old.scope_level.value, "category": new_category.value, "content": content,
                "content_hash": _hash(content), "importance": new_importance, "entity_refs": refs,
                "metadata": meta, "provenance": {**prov, "recorded_at": _iso(now)},
                "created_at": now, "valid_from": now,
                "expires_at": now + self.config.turn_ttl_s if old.turn_id is not None else None,
                "chain_key": chain_key, "supersedes": old.id,
                "origin_level": old.origin_level.value if old.origin_level else None,
                "origin_session_id": old.origin_session_id, "origin_agent_id": old.origin_agent_id,
                "origin_turn_id": old.origin_turn_id,
                "promoted_at": old.promoted_at.timestamp() if old.promoted_at else None,
                **_text_columns(content, refs, now),
                "embedding": None if vector is None else vector.tobytes(),
            })
            if idempotency_key is not None:
                await db.execute(
                    "INSERT OR IGNORE INTO idempotency_keys(user_key, key, memory_id, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (user_key, idempotency_key, new_id, now),
                )
            found = await self.store.get(db, new_id)
        self._forget_cached(old.id)
        await self._after_write(vector)
        assert found is not None
        return found[2]

    async def delete(self, memory_id: str, *, user_id: str | None = None, whole_chain: bool = False) -> int:
        """Forget a memory: remove it from the store and from both indexes; returns how many went.

        The versions before and after it stay linked to each other. With ``whole_chain=True`` every
        version of the fact is removed.
        """
        key, user_key, memory = await self._owned(memory_id, user_id)
        async with self.store.transaction() as db:
            if whole_chain:
                chain_key = await _chain_key(db, self.store, key)
                cursor = await db.execute(
                    "SELECT key, id FROM memories WHERE key = ? OR chain_key = ?", (chain_key, chain_key)
                )
                rows = list(await cursor.fetchall())
                removed = await self.store.delete(db, [int(k) for k, _ in rows])
                for _, mid in rows:
                    self._forget_cached(str(mid))
            else:
                # Close the gap in the chain: the neighbours now point at each other. A memory
                # absorbed by a promoted one points at another fact's chain: only its predecessor
                # is relinked then, and the other chain is left as it is.
                successor = None
                if memory.superseded_by is not None:
                    successor = await self.store.scalar(
                        db, "SELECT key FROM memories WHERE id = ? AND user_key = ?", (memory.superseded_by, user_key)
                    )
                same_chain = successor is not None and (
                    await _chain_key(db, self.store, int(successor)) == await _chain_key(db, self.store, key)
                )
                if memory.supersedes is not None:
                    await db.execute(
                        "UPDATE memories SET superseded_by = ? WHERE id = ? AND user_key = ?",
                        (memory.superseded_by, memory.supersedes, user_key),
                    )
                    self._forget_cached(memory.supersedes)
                if same_chain:
                    await db.execute(
                        "UPDATE memories SET supersedes = ? WHERE id = ? AND user_key = ?",
                        (memory.supersedes, memory.superseded_by, user_key),
                    )
                    self._forget_cached(memory.superseded_by)
                    if memory.supersedes is None:  # the chain's first version goes: re-root it
                        await db.execute(
                            "UPDATE memories SET chain_key = (SELECT key FROM memories WHERE id = ?) "
                            "WHERE chain_key = ?",
                            (memory.superseded_by, key),
                        )
                        await db.execute(
                            "UPDATE memories SET chain_key = NULL WHERE id = ?", (memory.superseded_by,)
                        )
                removed = await self.store.delete(db, [key])
        self._forget_cached(memory_id)
        return int(removed)

    forget = delete

    async def clear(
        self,
        user_id: str | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
    ) -> int:
        """Delete every memory (every version) at and below a position; returns how many.

        ``clear(user_id)`` empties the user's whole memory; with a ``session_id`` only that
        session's memories (and its agents' and turns') go, and the user's other memories stay.
        """
        position = self._position(user_id, session_id, agent_id, turn_id)
        flt = MemoryFilter(
            user_id=position.user_id, session_id=session_id, agent_id=agent_id, turn_id=turn_id,
            all_levels=True, include_superseded=True, include_expired=True,
        )
        async with self.store.transaction() as db:
            user_key = await self.store.user_key(db, position.user_id)
            if user_key is None:
                return 0
            where, params = self._where(flt, user_key, time.time())
            cursor = await db.execute(f"SELECT m.key FROM memories m WHERE {where}", params)
            keys = [int(k) for (k,) in await cursor.fetchall()]
            removed = await self.store.delete(db, keys)
        if self.cache is not None:
            self.cache.clear()
        return int(removed)

    # -- reading ------------------------------------------------------------------------------

    async def get(self, memory_id: str, *, user_id: str | None = None) -> Memory:
        """The memory with this id (any version). ``user_id``, when given, must own it."""
        _check_id(memory_id, "memory id")
        await self._refresh_cache()
        cached = self.cache.get(memory_id) if self.cache is not None else None
        if cached is not None:
            if user_id is not None and cached.user_id != user_id:
                raise _not_found(memory_id)
            return cached
        _, _, memory = await self._owned(memory_id, user_id)
        if self.cache is not None:
            self.cache.put(memory)
        return memory

    async def get_history(self, memory_id: str, *, user_id: str | None = None) -> list[Memory]:
        """Every version of the fact ``memory_id`` belongs to, oldest first, from any member."""
        key, _, _ = await self._owned(memory_id, user_id)
        async with self.store.reading() as db:
            chain_key = await _chain_key(db, self.store, key)
            rows = await self.store.select(
                db, "m.key = ? OR m.chain_key = ?", (chain_key, chain_key), "ORDER BY m.valid_from, m.key"
            )
        return [memory for _, memory in rows]

    async def query(self, flt: MemoryFilter) -> list[Memory]:
        """Memories matching a filter, newest first (no ranking by relevance)."""
        position = self._position(flt.user_id, flt.session_id, flt.agent_id, flt.turn_id)
        limit = _limit(flt.limit)
        offset = _count(flt.offset, "offset", 0, 10**9)
        self._where(flt, 0, 0.0)  # refuse a bad filter even for a user with no memories
        async with self.store.reading() as db:
            user_key = await self.store.user_key(db, position.user_id)
            if user_key is None:
                return []
            where, params = self._where(flt, user_key, time.time())
            rows = await self.store.select(
                db, where, params, f"ORDER BY m.created_at DESC, m.key DESC LIMIT {limit} OFFSET {offset}"
            )
        return [memory for _, memory in rows]

    async def get_all(
        self,
        user_id: str | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        *,
        include_superseded: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Memory]:
        """Every current memory at and below a position (all sessions of a user by default)."""
        return await self.query(MemoryFilter(
            user_id=user_id, session_id=session_id, agent_id=agent_id, turn_id=turn_id, all_levels=True,
            include_superseded=include_superseded, limit=limit, offset=offset,
        ))

    async def search(
        self,
        query: str,
        user_id: str | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        top_k: int = 10,
        min_similarity: float = 0.0,
        categories: Sequence[MemoryCategory | str] | None = None,
        **filters: Any,
    ) -> list[SearchResult]:
        """Semantic search: memories visible from the position, most similar first."""
        return await self.recall(
            query, user_id, session_id, agent_id, turn_id, top_k=top_k, min_similarity=min_similarity,
            categories=categories, mode="semantic", _record=False, **filters,
        )

    async def text_search(
        self,
        query: str,
        user_id: str | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        top_k: int = 10,
        categories: Sequence[MemoryCategory | str] | None = None,
        **filters: Any,
    ) -> list[SearchResult]:
        """Full-text search (BM25 over this user's memories): best keyword matches first."""
        return await self.recall(
            query, user_id, session_id, agent_id, turn_id, top_k=top_k, categories=categories,
            mode="text", _record=False, **filters,
        )

    async def recall(
        self,
        query: str,
        user_id: str | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        top_k: int = 5,
        *,
        mode: SearchMode | str = "hybrid",
        min_similarity: float = 0.0,
        categories: Sequence[MemoryCategory | str] | None = None,
        scope_levels: Sequence[ScopeLevel | str] | None = None,
        min_importance: float | None = None,
        include_superseded: bool = False,
        as_of: datetime | float | str | None = None,
        entity_refs: Sequence[str] | None = None,
        token_budget: int | None = None,
        _record: bool = True,
    ) -> list[SearchResult]:
        """The memories most relevant to ``query`` visible from the position, best first.

        ``mode`` is ``hybrid`` (semantic and full text fused, see ``scoring``, then weighed by
        importance and recency; the default), ``semantic`` or ``text``. While the embedder is still
        loading, hybrid recall answers from full text alone (``semantic_ready`` is False).
        ``token_budget`` keeps the best results whose contents fit in that many (estimated) tokens.
        """
        position = self._position(user_id, session_id, agent_id, turn_id)
        if not isinstance(query, str):
            raise InvalidArgumentError(f"query must be a string, got {type(query).__name__}")
        # Lone surrogates (broken UTF-16 from a client) cannot be tokenized: replace them.
        query = query.encode("utf-8", "replace").decode("utf-8")
        if mode not in ("hybrid", "semantic", "text"):
            raise InvalidArgumentError(f"unknown search mode {_clip(mode)}; use 'hybrid', 'semantic' or 'text'")
        top_k = _count(top_k, "top_k", 1, _MAX_TOP_K)
        if not isinstance(min_similarity, int | float) or not -1.0 <= float(min_similarity) <= 1.0:
            raise InvalidArgumentError(f"min_similarity must be between -1 and 1, got {_clip(min_similarity)}")
        if token_budget is not None:
            token_budget = _count(token_budget, "token_budget", 1, 10**7)
        flt = MemoryFilter(
            user_id=position.user_id, session_id=position.session_id, agent_id=position.agent_id,
            turn_id=position.turn_id, categories=categories, scope_levels=scope_levels,
            min_importance=min_importance, include_superseded=include_superseded, as_of=as_of,
            entity_refs=entity_refs,
        )
        now = time.time()
        self._where(flt, 0, now)  # validates the filter before any work
        if not query.strip():
            return []
        use_semantic = mode == "semantic" or (mode == "hybrid" and self.semantic_ready)
        if use_semantic and not self.semantic_ready:
            await self.wait_until_ready()
        # The query embeds in a worker thread while the database work below goes on: most of
        # recall's own cost hides behind the embedding it has to wait for anyway.
        embedding = asyncio.ensure_future(self.embedder.embed([query])) if use_semantic else None
        try:
            return await self._recall(
                query, position, flt, now, embedding, mode=mode, top_k=top_k, min_similarity=min_similarity,
                token_budget=token_budget, record=_record and not include_superseded and as_of is None,
            )
        finally:
            if embedding is not None and not embedding.done():
                embedding.cancel()

    async def _recall(
        self, query: str, position: Position, flt: MemoryFilter, now: float, embedding: asyncio.Future[Vector] | None,
        *, mode: str, top_k: int, min_similarity: float, token_budget: int | None, record: bool,
    ) -> list[SearchResult]:
        async with self.store.reading() as db:
            user_key = await self.store.user_key(db, position.user_id)
        if user_key is None:
            return []
        where = self._where(flt, user_key, now)
        semantic: list[tuple[int, float]] = []
        text: list[tuple[int, float]] = []
        depth = max(top_k * 3, 30) if mode == "hybrid" else top_k
        if mode in ("hybrid", "text"):
            text = await self.text_index.search(query, user_key, depth, where)
        use_semantic = embedding is not None
        if embedding is not None:
            vector = (await embedding)[0]
            semantic = await self._vector_candidates(vector, user_key, where, depth)
            if min_similarity > 0:
                semantic = [(k, s) for k, s in semantic if s >= min_similarity]

        similarity = dict(semantic)
        bm25 = dict(text)
        keys = list(dict.fromkeys([k for k, _ in semantic] + [k for k, _ in text]))
        if mode == "hybrid" and use_semantic:
            # What only full text found is scored semantically too, from its stored vector.
            similarity.update(await self._similarities(vector, [k for k in keys if k not in similarity]))
            if min_similarity > 0:  # a memory not embedded yet has no similarity to pass
                keys = [k for k in keys if similarity.get(k, -1.0) >= min_similarity]
        async with self.store.reading() as db:
            rows = dict(await self.store.select(db, "m.key IN (SELECT value FROM json_each(?))", (json.dumps(keys),)))
        if mode == "semantic":
            ranked = [(k, similarity[k]) for k in keys if k in rows]
        elif mode == "text":
            ranked = [(k, bm25[k]) for k in keys if k in rows]
        else:
            if self.config.fusion == "rrf":
                rankings = [[k for k, _ in semantic], [k for k, _ in text]]
                fused = reciprocal_rank_fusion(rankings, self.config.rrf_k)
            else:
                fused = score_fusion(similarity, bm25, self.config.text_weight)
            ranked = []
            for k in keys:
                if k not in rows:
                    continue
                m = rows[k]
                ranked.append((k, weigh(
                    fused[k], importance=m.importance, age_days=(now - m.valid_from.timestamp()) / 86400,
                    importance_weight=self.config.importance_weight, recency_weight=self.config.recency_weight,
                    half_life_days=self.config.recency_half_life_days,
                )))
            ranked.sort(key=lambda kv: -kv[1])
        results: list[SearchResult] = []
        budget = token_budget
        for key, score in ranked:
            memory = rows[key]
            if budget is not None:
                cost = estimate_tokens(memory.content)
                if cost > budget:
                    continue
                budget -= cost
            results.append(SearchResult(
                memory=memory, score=score, similarity=similarity.get(key), text_score=bm25.get(key),
            ))
            if len(results) == top_k:
                break
        if record and results:
            await self._record_recalls(user_key, position, results)
        return results

    async def stats(self, user_id: str | None = None) -> MemoryStats:
        """Counts of one user's memories (of the whole database without ``user_id``).

        ``total`` counts every stored version; ``current``, ``superseded`` and ``expired`` split it;
        ``categories`` and ``scope_levels`` count the current memories, the ones recall can return.
        """
        now = time.time()
        async with self.store.reading() as db:
            if user_id is None:
                scope, params = "1", []
                users = await self.store.scalar(db, "SELECT count(*) FROM users WHERE doc_count > 0")
            else:
                self._position(user_id)
                user_key = await self.store.user_key(db, user_id)
                scope, params = "m.user_key = ?", [user_key if user_key is not None else -1]
                users = 1 if user_key is not None else 0
            current_sql = "m.valid_until IS NULL AND (m.expires_at IS NULL OR m.expires_at > ?)"
            cursor = await db.execute(
                f"SELECT count(*), coalesce(sum(m.valid_until IS NOT NULL), 0), "
                f"coalesce(sum(m.valid_until IS NULL AND m.expires_at <= ?), 0) FROM memories m WHERE {scope}",
                [now, *params],
            )
            total, superseded, expired = await cursor.fetchone()  # type: ignore[misc]
            by: dict[str, dict[str, int]] = {}
            for column in ("category", "scope_level"):
                cursor = await db.execute(
                    f"SELECT m.{column}, count(*) FROM memories m WHERE {scope} AND {current_sql} "
                    f"GROUP BY m.{column}",
                    [*params, now],
                )
                by[column] = {str(name): int(n) for name, n in await cursor.fetchall()}
        return MemoryStats(
            total=int(total), current=int(total) - int(superseded) - int(expired), superseded=int(superseded),
            expired=int(expired), categories=by["category"], scope_levels=by["scope_level"], users=int(users or 0),
        )

    # -- the rules, as SQL ------------------------------------------------------------------------

    def _where(self, flt: MemoryFilter, user_key: int, now: float) -> tuple[str, list[Any]]:
        """The SQL condition (over ``memories m``) selecting what ``flt`` asks for."""
        clauses = ["m.user_key = ?"]
        params: list[Any] = [user_key]
        for name in _ID_FIELDS:
            value = getattr(flt, name)
            if value is not None:
                _check_id(value, name)
            if flt.all_levels:
                if value is not None:  # the subtree below the position
                    clauses.append(f"m.{name} = ?")
                    params.append(value)
            elif value is None:  # visible from the position: absent, or the position's own
                clauses.append(f"m.{name} IS NULL")
            else:
                clauses.append(f"(m.{name} IS NULL OR m.{name} = ?)")
                params.append(value)
        if flt.as_of is not None:
            when = parse_time(flt.as_of)
            clauses.append(
                "m.valid_from <= ? AND (m.valid_until IS NULL OR m.valid_until > ?) "
                "AND (m.expires_at IS NULL OR m.expires_at > ?)"
            )
            params += [when, when, when]
        else:
            if not flt.include_superseded:
                clauses.append("m.valid_until IS NULL")
            if not flt.include_expired:
                clauses.append("(m.expires_at IS NULL OR m.expires_at > ?)")
                params.append(now)
        if flt.categories is not None:
            cats = [_category(c).value for c in _sequence(flt.categories, "categories")]
            clauses.append(f"m.category IN ({', '.join('?' for _ in cats)})" if cats else "0")
            params += cats
        if flt.scope_levels is not None:
            levels = [_scope_level(s).value for s in _sequence(flt.scope_levels, "scope_levels")]
            clauses.append(f"m.scope_level IN ({', '.join('?' for _ in levels)})" if levels else "0")
            params += levels
        if flt.min_importance is not None:
            clauses.append("m.importance >= ?")
            params.append(_importance(flt.min_importance, "min_importance"))
        if flt.entity_refs:
            refs = _entity_refs(flt.entity_refs)
            clauses.append("EXISTS (SELECT 1 FROM json_each(m.entity_refs) e WHERE e.value IN "
                           f"({', '.join('?' for _ in refs)}))")
            params += refs
        return " AND ".join(clauses), params

    async def _vector_candidates(
        self, vector: Vector, user_key: int, where: tuple[str, list[Any]], want: int
    ) -> list[tuple[int, float]]:
        """Nearest vectors that pass the filter: HNSW has no filter, so ask for more until enough."""
        index = self._vector_index
        count = max(want * 4, 64)
        while True:
            found = await index.search(vector, count, VectorFilter(user_key=user_key))
            if not found:
                return []
            allowed = await self._allowed([k for k, _ in found], where)
            passing = [(k, s) for k, s in found if k in allowed]
            if len(passing) >= want or len(found) < count:
                return passing[:want]
            count *= 4

    async def _similarities(self, vector: Vector, keys: list[int]) -> dict[int, float]:
        """Cosine similarity of the query to the stored vectors of these memories (those that have one)."""
        if not keys:
            return {}
        async with self.store.reading() as db:
            blobs = await self.store.embeddings(db, keys)
        if not blobs:
            return {}
        matrix = np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in blobs])
        query = np.asarray(vector, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(query))
        cosines = (matrix @ query) / np.maximum(norms, 1e-12)
        return {key: float(c) for (key, _), c in zip(blobs, cosines, strict=True)}

    def _duplicate_scope(
        self, user_key: int, position: Position, target: Position, now: float
    ) -> tuple[str, list[Any]]:
        """Where a new memory's duplicates may be: on the position's path, or below where it lands."""
        seen, seen_params = self._where(_filter_at(position, all_levels=False), user_key, now)
        below, below_params = self._where(_filter_at(target, all_levels=True), user_key, now)
        # user_key again outside the OR, so that SQLite can use the (user_key, ...) indexes.
        return f"m.user_key = ? AND (({seen}) OR ({below}))", [user_key, *seen_params, *below_params]

    async def _similar(
        self, position: Position, target: Position, vector: Vector | None, content: str
    ) -> list[int]:
        """Keys of current memories in the duplicate scope that say the same as ``content``: near
        enough in meaning, and naming the same numbers and names, nearest first."""
        if vector is None or self._vector_index is None:
            return []
        async with self.store.reading() as db:
            user_key = await self.store.user_key(db, position.user_id)
        if user_key is None:
            return []
        scope = self._duplicate_scope(user_key, position, target, time.time())
        # Most new facts have no near twin among the user's memories at all: then one index
        # lookup answers, and the scope (an SQL query) is only consulted for the near ones.
        found = await self._vector_index.search(vector, _NEAR, VectorFilter(user_key=user_key))
        near = [k for k, s in found if s >= self.config.duplicate_similarity]
        if len(near) == _NEAR:  # a crowd of near twins: search within the scope, widening
            found = await self._vector_candidates(vector, user_key, scope, 8)
            near = [k for k, s in found if s >= self.config.duplicate_similarity]
        elif near:
            allowed = await self._allowed(near, scope)
            near = [k for k in near if k in allowed]
        return await self._saying_the_same(near, content)

    async def _saying_the_same(self, keys: list[int], content: str) -> list[int]:
        """Those of these near twins of ``content`` that name the same numbers and names: "locker
        code 4821" and "locker code 9034" embed almost alike but are different facts."""
        if not keys:
            return []
        async with self.store.reading() as db:
            cursor = await db.execute(
                "SELECT key, content FROM memories WHERE key IN (SELECT value FROM json_each(?))", [json.dumps(keys)]
            )
            contents = {int(k): str(c) for k, c in await cursor.fetchall()}
        mine = _specifics(content)
        return [k for k in keys if k in contents and _specifics(contents[k]) == mine]

    async def _allowed(self, keys: list[int], where: tuple[str, list[Any]]) -> set[int]:
        """Which of these memory keys pass the filter."""
        async with self.store.reading() as db:
            cursor = await db.execute(
                f"SELECT m.key FROM memories m WHERE m.key IN (SELECT value FROM json_each(?)) AND {where[0]}",
                [json.dumps(keys), *where[1]],
            )
            return {int(k) for (k,) in await cursor.fetchall()}

    async def _find_duplicate(
        self, db: aiosqlite.Connection, user_key: int, position: Position, target: Position, digest: str,
        similar: list[int], now: float,
    ) -> tuple[int, Memory] | None:
        """A current memory that says the same thing, on the position's path or below its target."""
        scope, params = self._duplicate_scope(user_key, position, target, now)
        rows = await self.store.select(
            db, f"{scope} AND m.content_hash = ?", [*params, digest], "ORDER BY m.key LIMIT 1"
        )
        if rows:
            return rows[0]
        if not similar:
            return None
        rows = await self.store.select(
            db, f"{scope} AND m.key IN (SELECT value FROM json_each(?))", [*params, json.dumps(similar)]
        )
        by_key = dict(rows)
        for key in similar:  # the most similar first
            if key in by_key:
                return key, by_key[key]
        return None

    async def _absorb(
        self, db: aiosqlite.Connection, user_key: int, keep: int, at: Memory | Position, digest: str,
        similar: list[int], now: float,
    ) -> int:
        """A memory that moved up must not be seen twice: the same fact held below its new place
        is closed, pointing at it (``superseded_by``), and counts as a reinforcement. Returns how
        many were absorbed."""
        where, params = self._where(_filter_at(_position_of(at), all_levels=True), user_key, now)
        cursor = await db.execute(
            f"UPDATE memories AS m SET valid_until = ?, superseded_by = (SELECT id FROM memories WHERE key = ?) "
            f"WHERE {where} AND m.key != ? AND (m.content_hash = ? OR m.key IN (SELECT value FROM json_each(?)))",
            [now, keep, *params, keep, digest, json.dumps(similar)],
        )
        if cursor.rowcount > 0:
            await db.execute(
                "UPDATE memories SET reinforcement_count = reinforcement_count + ? WHERE key = ?",
                (cursor.rowcount, keep),
            )
        return int(cursor.rowcount)

    async def _reinforce(
        self, db: aiosqlite.Connection, key: int, memory: Memory, importance: float, target: Position, now: float
    ) -> Memory:
        """Strengthen an existing memory instead of storing the same fact twice."""
        values: dict[str, Any] = {
            "reinforcement_count": memory.reinforcement_count + 1,
            "importance": max(memory.importance, importance),
        }
        here = Position(memory.user_id, memory.session_id, memory.agent_id, memory.turn_id)
        broader = _broadest_common(here, target)
        if broader != here:
            values.update(self._promotion_values(memory, broader, now))
        await self.store.update(db, key, **values)
        found = await self.store.get(db, memory.id)
        assert found is not None
        return found[2]

    def _promotion_values(self, memory: Memory, to: Position, now: float) -> dict[str, Any]:
        values: dict[str, Any] = {
            "session_id": to.session_id, "agent_id": to.agent_id, "turn_id": to.turn_id,
            "scope_level": to.level.value, "promoted_at": now,
            "expires_at": memory.expires_at.timestamp() if memory.expires_at and to.turn_id else None,
        }
        if memory.origin_level is None:
            values.update(_origin(Position(memory.user_id, memory.session_id, memory.agent_id, memory.turn_id)))
        return values

    def _promoted(self, position: Position, importance: float) -> Position:
        """The position a new memory is stored at: one level up per threshold its importance clears."""
        thresholds = {
            ScopeLevel.TURN: self.config.promote_turn_to_agent,
            ScopeLevel.AGENT: self.config.promote_agent_to_session,
            ScopeLevel.SESSION: self.config.promote_session_to_user,
        }
        while position.level != ScopeLevel.USER and importance >= thresholds[position.level]:
            position = _parent(position)
        return position

    async def _expire_other_turns(
        self, db: aiosqlite.Connection, user_key: int, position: Position, now: float
    ) -> None:
        """A new turn ends the earlier turns of the session: their TURN memories expire now, every
        version of them (an old version must not outlive its turn in a history listing)."""
        await db.execute(
            "UPDATE memories SET expires_at = ? WHERE user_key = ? AND session_id = ? AND turn_id IS NOT NULL "
            "AND turn_id != ? AND (expires_at IS NULL OR expires_at > ?)",
            (now, user_key, position.session_id, position.turn_id, now),
        )

    async def _record_recalls(self, user_key: int, position: Position, results: list[SearchResult]) -> None:
        """Count the distinct positions a memory is recalled from; enough of them promote it."""
        candidates = [r.memory for r in results if r.memory.scope_level != ScopeLevel.USER]
        if not candidates:
            return
        now = time.time()
        promoted = []
        async with self.store.transaction() as db:
            for memory in candidates:
                key = await self.store.scalar(db, "SELECT key FROM memories WHERE id = ?", (memory.id,))
                if key is None:
                    continue
                await db.execute(
                    "INSERT OR IGNORE INTO recalls(memory_key, position) VALUES (?, ?)", (key, position.key())
                )
                seen = await self.store.scalar(db, "SELECT count(*) FROM recalls WHERE memory_key = ?", (key,))
                if seen >= self.config.promotion_recall_count:
                    parent = _parent(_position_of(memory))
                    await self.store.update(db, key, **self._promotion_values(memory, parent, now))
                    await db.execute("DELETE FROM recalls WHERE memory_key = ?", (key,))
                    promoted.append((key, memory.id, parent))
        for key, memory_id, parent in promoted:
            self._forget_cached(memory_id)
            await self._absorb_below(user_key, key, parent)

    async def _absorb_below(self, user_key: int, key: int, at: Position) -> None:
        """After a promotion by use: absorb what the memory's new subtree holds of the same fact."""
        async with self.store.reading() as db:
            row = await (
                await db.execute("SELECT content_hash, content FROM memories WHERE key = ?", (key,))
            ).fetchone()
            blobs = await self.store.embeddings(db, [key])
        if row is None:
            return
        digest, content = row
        similar: list[int] = []
        if blobs and self._vector_index is not None:
            vector = np.frombuffer(blobs[0][1], dtype=np.float32)
            below = self._where(_filter_at(at, all_levels=True), user_key, time.time())
            found = await self._vector_candidates(vector, user_key, below, 8)
            near = [k for k, s in found if k != key and s >= self.config.duplicate_similarity]
            similar = await self._saying_the_same(near, str(content))
        async with self.store.transaction() as db:
            await self._absorb(db, user_key, key, at, str(digest), similar, time.time())

    # -- helpers ----------------------------------------------------------------------------------

    def _position(
        self, user_id: str | None, session_id: str | None = None, agent_id: str | None = None,
        turn_id: str | None = None,
    ) -> Position:
        if user_id is None or (isinstance(user_id, str) and not user_id.strip()):
            raise MissingUserError("user_id is required: every memory belongs to a user")
        _check_id(user_id, "user_id")
        for name, value in zip(_ID_FIELDS, (session_id, agent_id, turn_id), strict=True):
            if value is not None:
                _check_id(value, name)
        return Position(user_id, session_id, agent_id, turn_id)

    def _content(self, content: Any) -> str:
        text = self._text(content, "content")
        if not text:
            raise EmptyContentError("content is empty: there is nothing to remember")
        return text

    def _context(self, context: Any) -> str | None:
        return None if context is None else self._text(context, "context") or None

    def _text(self, value: Any, name: str) -> str:
        """Text a caller gives to be stored: a string, stripped, without NUL, within the size limit."""
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{name} must be a string, got {type(value).__name__}")
        value = value.strip()
        if "\x00" in value:
            raise InvalidArgumentError(f"{name} contains a NUL character")
        if len(value) > self.config.max_content_chars:
            raise ContentTooLongError(
                f"{name} is {len(value)} characters long; the limit is {self.config.max_content_chars} "
                "(MemoryConfig.max_content_chars): store a shorter summary of the fact"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgumentError(f"{name} is not valid text ({exc.reason})") from exc
        return value

    async def _embed_now(self, content: str) -> Vector | None:
        """The content's vector, or None when the embedder is still loading in the background."""
        if self.config.background_embedding and not self.semantic_ready:
            return None
        if not self.semantic_ready:
            await self.wait_until_ready()
        return np.ascontiguousarray((await self.embedder.embed([content]))[0], dtype=np.float32)

    async def _after_write(self, vector: Vector | None) -> None:
        if vector is None and self.semantic_ready:  # stored while loading; embed it now
            await self._embed_pending()

    async def _owned(self, memory_id: str, user_id: str | None) -> tuple[int, int, Memory]:
        _check_id(memory_id, "memory id")
        if user_id is not None:
            self._position(user_id)
        async with self.store.reading() as db:
            found = await self.store.get(db, memory_id)
        if found is None or (user_id is not None and found[2].user_id != user_id):
            raise _not_found(memory_id)
        return found

    async def _earlier(self, db: aiosqlite.Connection, user_key: int, idempotency_key: str) -> Memory | None:
        """What a first call with this idempotency key stored, if there was one."""
        memory_id = await self.store.scalar(
            db, "SELECT memory_id FROM idempotency_keys WHERE user_key = ? AND key = ?", (user_key, idempotency_key)
        )
        found = await self.store.get(db, memory_id) if memory_id else None
        return found[2] if found else None

    async def _current_of(self, db: aiosqlite.Connection, chain_key: int) -> str | None:
        value = await self.store.scalar(
            db, "SELECT id FROM memories WHERE (key = ? OR chain_key = ?) AND valid_until IS NULL",
            (chain_key, chain_key),
        )
        return None if value is None else str(value)

    async def _idempotent(self, user_id: str, idempotency_key: str) -> Memory | None:
        async with self.store.reading() as db:
            user_key = await self.store.user_key(db, user_id)
            return None if user_key is None else await self._earlier(db, user_key, idempotency_key)

    async def _refresh_cache(self) -> None:
        """Drop cached memories that any process has changed since we last looked."""
        if self.cache is None:
            return
        async with self.store.reading() as db:
            changes = await self.store.changes_since(db, self._cache_seq)
        for seq, _, memory_id, _ in changes:
            self.cache.invalidate(memory_id)
            self._cache_seq = seq

    def _forget_cached(self, memory_id: str) -> None:
        if self.cache is not None:
            self.cache.invalidate(memory_id)


# -- construction of the default embedder ----------------------------------------------------------


def make_embedder(config: MemoryConfig) -> Embedder:
    """The embedder ``config`` names."""
    if config.embedder_backend == EmbedderBackend.LOCAL:
        from ..adapters.local_embedder import LocalEmbedder

        return LocalEmbedder(config.model_name)
    from ..adapters import http_embedders

    if config.embedder_backend == EmbedderBackend.OPENAI:
        return http_embedders.OpenAIEmbedder(
            config.model_name, api_key=config.openai_api_key, base_url=config.openai_base_url,
            timeout_s=config.embed_timeout_s,
        )
    return http_embedders.OllamaEmbedder(
        config.model_name, base_url=config.ollama_base_url, timeout_s=config.embed_timeout_s
    )


# -- validation and small rules ----------------------------------------------------------------------


def parse_time(value: Any, name: str = "as_of") -> float:
    """A point in time as epoch seconds, from a datetime, epoch number or ISO 8601 string."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, bool):
        raise InvalidTimeError(f"{name} must be a datetime, ISO 8601 string or epoch seconds, got {_clip(value)}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value < 10**11:
            raise InvalidTimeError(f"{name}={_clip(value)} is not a usable epoch time")
        return float(value)
    if isinstance(value, str):
        try:
            return parse_time(datetime.fromisoformat(value.strip().replace("Z", "+00:00")), name)
        except ValueError:
            raise InvalidTimeError(
                f"{name}={_clip(value)} is not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)"
            ) from None
    raise InvalidTimeError(
        f"{name} must be a datetime, ISO 8601 string or epoch seconds, got {type(value).__name__}"
    )


def _valid_from(value: Any) -> float | None:
    if value is None:
        return None
    since = parse_time(value, "valid_from")
    if since > time.time() + _CLOCK_SKEW_S:
        raise InvalidTimeError(f"valid_from={_clip(value)} lies in the future")
    return since


async def _chain_key(db: aiosqlite.Connection, store: MemoryStore, key: int) -> int:
    """The key every version of this memory's fact shares: the first version's."""
    return int(await store.scalar(db, "SELECT COALESCE(chain_key, key) FROM memories WHERE key = ?", (key,)))


def _check_id(value: Any, name: str) -> None:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentError(f"{name} is empty")
    if len(value) > _MAX_ID_CHARS:
        raise InvalidArgumentError(f"{name} is longer than {_MAX_ID_CHARS} characters")
    if any(ord(c) < 32 for c in value):
        raise InvalidArgumentError(f"{name} contains control characters")
    if not _encodable(value):
        raise InvalidArgumentError(f"{name} contains lone surrogates (broken UTF-16), which are not text")


def _specifics(text: str) -> frozenset[str]:
    """The words a paraphrase must keep: numbers (anything with a digit) and names (capitalised
    words after the first), case-folded."""
    words = re.findall(r"\w+", text)
    return frozenset(
        w.casefold() for i, w in enumerate(words) if any(c.isdigit() for c in w) or (i > 0 and w[:1].isupper())
    )


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clip(value: Any, limit: int = 80) -> str:
    """A bad value as shown in an error: its repr, cut short (errors travel to a model's context)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _category(value: Any) -> MemoryCategory:
    try:
        return MemoryCategory(value.lower() if isinstance(value, str) else value)
    except ValueError:
        names = ", ".join(c.value for c in MemoryCategory)
        raise UnknownCategoryError(f"unknown category {_clip(value)}; use one of: {names}") from None


def _scope_level(value: Any) -> ScopeLevel:
    try:
        return ScopeLevel(value.lower() if isinstance(value, str) else value)
    except ValueError:
        names = ", ".join(s.value for s in ScopeLevel)
        raise InvalidArgumentError(f"unknown scope level {_clip(value)}; use one of: {names}") from None


def _importance(value: Any, name: str = "importance") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise InvalidImportanceError(f"{name} must be a number from 0 to 1, got {_clip(value)}")
    return float(value)


def _count(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgumentError(f"{name} must be an integer from {low} to {high}, got {_clip(value)}")
    return value


def _limit(value: Any) -> int:
    return -1 if value is None else _count(value, "limit", 1, 10**6)


def _sequence(value: Any, name: str) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | set | frozenset):
        raise InvalidArgumentError(f"{name} must be a list, got {type(value).__name__}")
    return list(value)


def _entity_refs(value: Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    refs = _sequence(value, "entity_refs")
    if len(refs) > 100:
        raise InvalidArgumentError("entity_refs holds more than 100 entries")
    for ref in refs:
        if not isinstance(ref, str) or not ref.strip() or len(ref) > _MAX_ID_CHARS or not _encodable(ref):
            raise InvalidArgumentError(
                f"each entity ref must be a non-empty string of at most {_MAX_ID_CHARS} characters of text, "
                f"got {_clip(ref)}"
            )
    return list(dict.fromkeys(r.strip() for r in refs))


def _json_object(value: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"{name} must be an object (a dict), got {type(value).__name__}")
    try:
        text = json.dumps(dict(value), ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"{name} contains lone surrogates (broken UTF-16), which are not text") from None
    except RecursionError:
        raise InvalidArgumentError(f"{name} is nested too deeply") from None
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{name} must be JSON-serialisable: {_clip(str(exc), 200)}") from None
    if len(text) > 16_000:
        raise InvalidArgumentError(f"{name} is larger than 16000 characters of JSON")
    return dict(json.loads(text))


def _hash(content: str) -> str:
    normalised = " ".join(content.lower().split())
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def _text_columns(
    content: str, refs: list[str], valid_from: float, context: str | None = None
) -> dict[str, Any]:
    """What full-text search indexes of a memory: its content, entity refs and the date it became
    true ('8 May 2023', so that a question naming a day, month or year finds what happened then),
    with its length in tokens for BM25; and apart from these, the caller's context if any."""
    from ..adapters.fts5_index import count_tokens, date_words, searchable

    text = searchable(" ".join([content, *refs, date_words(valid_from)]))
    situation = None if context is None else searchable(context)
    return {
        "search_text": text, "n_tokens": max(1, count_tokens(text) + count_tokens(situation or "")),
        "context": context, "context_text": situation,
    }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _parent(position: Position) -> Position:
    """One level up: drop the narrowest id."""
    if position.turn_id is not None:
        return replace(position, turn_id=None)
    if position.agent_id is not None:
        return replace(position, agent_id=None)
    return replace(position, session_id=None)


def _broadest_common(a: Position, b: Position) -> Position:
    """The narrowest position that is on both paths (where a memory seen from both must live)."""
    ids: dict[str, str | None] = {}
    same = True
    for name in _ID_FIELDS:
        va, vb = getattr(a, name), getattr(b, name)
        same = same and va == vb
        ids[name] = va if same else None
    return Position(a.user_id, **ids)


def _position_of(item: Memory | Position) -> Position:
    return item if isinstance(item, Position) else Position(
        item.user_id, item.session_id, item.agent_id, item.turn_id
    )


def _origin(position: Position) -> dict[str, Any]:
    return {
        "origin_level": position.level.value, "origin_session_id": position.session_id,
        "origin_agent_id": position.agent_id, "origin_turn_id": position.turn_id,
    }


def _filter_at(position: Position, *, all_levels: bool) -> MemoryFilter:
    return MemoryFilter(
        user_id=position.user_id, session_id=position.session_id, agent_id=position.agent_id,
        turn_id=position.turn_id, all_levels=all_levels,
    )


def _not_found(memory_id: str) -> MemoryNotFoundError:
    return MemoryNotFoundError(f"no memory with id {_clip(memory_id, 300)} exists for this user")


def _already_superseded(memory: Memory, current: str | None) -> AlreadySupersededError:
    now = f"the current version is {current!r}" if current else "no version of it is current any more"
    return AlreadySupersededError(
        f"memory {memory.id!r} was already superseded (by {memory.superseded_by!r}); {now}: supersede "
        "the current version instead (get_history shows the chain)"
    )
