"""HierarchicalMemory: the public face of the rules of memory.

Everything a memory server or a client wrapper does goes through this class. Each method checks
its arguments and hands over to the module that holds the rule (``writing``, ``versions``,
``reading``, ``recall``, ``promotion``, ``maintenance``, ``transfer``); the adapters below the
ports only store, index and embed. ``docs/design.md`` states the rules in full.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TextIO

from . import batch, changes, embedding, maintenance, reading, recall, transfer, validation, versions, writing
from .changes import MemoryChange
from .config import MemoryConfig
from .models import Memory, MemoryCategory, MemoryStats, ScopeLevel, SearchResult
from .parts import Parts
from .ports import Embedder, MemoryCache, MemoryFilter, MemoryStore, ScopeCount, TextIndex, VectorIndex
from .promotion import record_recalls
from .recall import SearchMode


class HierarchicalMemory:
    """Hierarchical, temporal memory over a store, a vector index, a text index and an embedder.

    Create with ``await HierarchicalMemory.create(config)``; use as ``async with`` or call
    ``close()``. Adapters may be injected in place of the configured defaults.
    """

    def __init__(self, parts: Parts):
        self._parts = parts
        self._closed = False

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
        prepare: bool = True,
    ) -> HierarchicalMemory:
        """Open (or create) the memory database of ``config`` and return the engine.

        An embedder other than the one the database was built with is refused, unless ``reembed``
        is true: then every memory is embedded again with the new one (as ``memory-mcp reindex``).
        ``prepare=False`` opens the database only; the embedder is prepared at its first use.
        """
        from ..compose import assemble  # the one place that turns a configuration into adapters

        parts = assemble(
            config or MemoryConfig(), store=store, vector_index=vector_index, text_index=text_index,
            embedder=embedder, cache=cache,
        )
        parts.reembed = reembed
        await parts.store.open()
        try:
            async with parts.store.reading() as db:
                parts.cache_seq = await db.last_change()
            if prepare and parts.config.background_embedding:
                parts.background = asyncio.create_task(embedding.prepare_in_background(parts))
            elif prepare:
                await embedding.prepare_vectors(parts)
        except BaseException:
            await parts.store.close()
            raise
        return cls(parts)

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
        parts = self._parts
        if parts.background is not None:
            parts.background.cancel()
            try:
                await parts.background
            except (asyncio.CancelledError, Exception):
                pass
        try:
            if parts.vectors is not None:
                await parts.vectors.close()
        finally:
            await parts.embedder.aclose()
            await parts.store.close()

    # -- the parts, for tools and tests ----------------------------------------------------------

    @property
    def config(self) -> MemoryConfig:
        return self._parts.config

    @property
    def store(self) -> MemoryStore:
        return self._parts.store

    @property
    def text_index(self) -> TextIndex:
        return self._parts.text_index

    @property
    def vector_index(self) -> VectorIndex | None:
        """None until the embedder has been checked against the database."""
        return self._parts.vectors

    @property
    def embedder(self) -> Embedder:
        return self._parts.embedder

    @property
    def cache(self) -> MemoryCache | None:
        return self._parts.cache

    @property
    def semantic_ready(self) -> bool:
        """False while the embedder is still loading, or if it failed to load (hybrid recall then
        waits up to ``semantic_wait_s`` for it, and answers from full text alone after that)."""
        return self._parts.semantic_ready.is_set()

    @property
    def semantic_status(self) -> str:
        """'ready', 'loading', 'waiting: <why>' or 'failed: <why>': what a text-only answer says."""
        return embedding.status(self._parts)

    async def wait_until_ready(self) -> None:
        """Wait until semantic search is available; raises why if the embedder failed to load."""
        await embedding.wait_until_ready(self._parts)

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
        position = validation.position(user_id, session_id, agent_id, turn_id)
        return await writing.store(self._parts, writing.prepare(
            self._parts, content, position, category, importance, entity_refs, metadata,
            idempotency_key=idempotency_key, provenance=provenance, valid_from=valid_from, context=context,
        ))

    remember = add  # the convenience name the library's documentation uses for add

    async def add_many(self, items: Sequence[Mapping[str, Any]], *, batch_size: int = 256) -> list[Memory]:
        """Add many memories (each a dict of :meth:`add`'s arguments), embedding them in batches.

        The same rules apply as for one ``add`` at a time (duplicates, promotion, expiry); batching
        only makes the embedder do its work in bulk, which is what makes imports fast.
        """
        return await batch.add_many(self._parts, items, batch_size=batch_size)

    async def add_conversation(
        self, turns: Sequence[Mapping[str, Any]], *, window: int = 2, **shared: Any
    ) -> list[Memory]:
        """Store each turn of a conversation (each a dict of :meth:`add`'s arguments, ``shared``
        giving those common to all, such as ``user_id``) as one memory, in order.

        A turn alone often means little ("Yes, twice last year!"), so each turn gets the ``window``
        turns before and after it as its ``context``, unless it brings its own: full-text search
        then finds it by what was being talked about, while it stays the turn as said.
        """
        return await self.add_many(writing.conversation_items(self._parts, turns, window, shared))

    async def used_keys(self, user_id: str, keys: Iterable[str]) -> dict[str, Memory]:
        """Those of these idempotency keys the user's writes used, each with the memory it stands for."""
        return await writing.idempotent_many(self._parts, validation.position(user_id).user_id, list(keys))

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
        return await writing.supersede(
            self._parts, old_memory_id, new_content, user_id=user_id, category=category, importance=importance,
            entity_refs=entity_refs, metadata=metadata, idempotency_key=idempotency_key, provenance=provenance,
        )

    async def delete(self, memory_id: str, *, user_id: str | None = None, whole_chain: bool = False) -> int:
        """Forget a memory: remove it from the store and from both indexes; returns how many went.

        The versions before and after it stay linked to each other. With ``whole_chain=True`` every
        version of the fact is removed.
        """
        return await versions.delete(self._parts, memory_id, user_id, whole_chain)

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
        position = validation.position(user_id, session_id, agent_id, turn_id)
        return await versions.clear(self._parts, position, time.time())

    # -- reading ------------------------------------------------------------------------------

    async def get(self, memory_id: str, *, user_id: str | None = None) -> Memory:
        """The memory with this id (any version). ``user_id``, when given, must own it."""
        return await reading.get(self._parts, memory_id, user_id)

    async def get_history(self, memory_id: str, *, user_id: str | None = None) -> list[Memory]:
        """Every version of the fact ``memory_id`` belongs to, oldest first, from any member."""
        return await versions.history(self._parts, memory_id, user_id)

    async def query(self, flt: MemoryFilter) -> list[Memory]:
        """Memories matching a filter, newest first (no ranking by relevance)."""
        return await reading.query(self._parts, flt)

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

    # -- what changed, and the ids in use ------------------------------------------------------

    async def last_change(self) -> int:
        """The position of the newest entry of the change feed (0 while nothing was ever written)."""
        return await changes.last(self._parts)

    async def changes_since(self, seq: int, *, limit: int = 1000) -> list[MemoryChange]:
        """The writes after position ``seq`` of the change feed, by any process, oldest first."""
        return await changes.since(self._parts, validation.count(seq, "seq", 0, 2**63 - 1), limit)

    def watch(self, after: int | None = None, *, interval_s: float = 0.2) -> AsyncIterator[list[MemoryChange]]:
        """Every later batch of writes, by any process on this database, as it appears (polled every
        ``interval_s`` seconds); from now, or after position ``after`` of the change feed."""
        return changes.watch(self._parts, after, interval_s, 1000)

    async def user_ids(self, prefix: str = "", *, limit: int = 100) -> list[str]:
        """The users of this database whose ids start with ``prefix``, in order (at most 100)."""
        return await changes.user_ids(self._parts, prefix, limit)

    async def session_ids(self, user_id: str, prefix: str = "", *, limit: int = 100) -> list[str]:
        """The session ids of a user's memories starting with ``prefix``, in order (at most 100)."""
        return await changes.scope_ids(self._parts, user_id, "session_id", prefix, limit)

    async def agent_ids(self, user_id: str, prefix: str = "", *, limit: int = 100) -> list[str]:
        """The agent ids of a user's memories starting with ``prefix``, in order (at most 100)."""
        return await changes.scope_ids(self._parts, user_id, "agent_id", prefix, limit)

    async def scope_counts(self, user_id: str, *, limit: int = 1000) -> list[ScopeCount]:
        """Current, superseded and stored memories per position (session, agent, turn), in id order."""
        return await changes.scope_counts(self._parts, user_id, limit)

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
        *,
        mode: SearchMode | str = "semantic",
        min_relevance: float | None = None,
        scope_levels: Sequence[ScopeLevel | str] | None = None,
        min_importance: float | None = None,
        include_superseded: bool = False,
        as_of: datetime | float | str | None = None,
        entity_refs: Sequence[str] | None = None,
        token_budget: int | None = None,
        all_levels: bool = False,
    ) -> list[SearchResult]:
        """Search visible from the position, by meaning (``mode="semantic"``, the default), words
        (``"text"``) or both (``"hybrid"``). Unlike :meth:`recall`, a search is not counted as a
        use of the memories it finds. ``all_levels``: what lies at and below the position instead."""
        return await self._find(
            query, user_id, session_id, agent_id, turn_id, top_k, mode=mode, min_similarity=min_similarity,
            min_relevance=min_relevance, categories=categories, scope_levels=scope_levels, min_importance=min_importance,
            include_superseded=include_superseded, as_of=as_of, entity_refs=entity_refs,
            token_budget=token_budget, record=False, all_levels=all_levels,
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
        *,
        scope_levels: Sequence[ScopeLevel | str] | None = None,
        min_importance: float | None = None,
        include_superseded: bool = False,
        as_of: datetime | float | str | None = None,
        entity_refs: Sequence[str] | None = None,
        token_budget: int | None = None,
    ) -> list[SearchResult]:
        """Full-text search (BM25 over this user's memories): best keyword matches first."""
        return await self.search(
            query, user_id, session_id, agent_id, turn_id, top_k, categories=categories, mode="text",
            scope_levels=scope_levels, min_importance=min_importance, include_superseded=include_superseded,
            as_of=as_of, entity_refs=entity_refs, token_budget=token_budget,
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
        min_relevance: float | None = None,
        categories: Sequence[MemoryCategory | str] | None = None,
        scope_levels: Sequence[ScopeLevel | str] | None = None,
        min_importance: float | None = None,
        include_superseded: bool = False,
        as_of: datetime | float | str | None = None,
        entity_refs: Sequence[str] | None = None,
        token_budget: int | None = None,
    ) -> list[SearchResult]:
        """The memories most relevant to ``query`` visible from the position, best first.

        ``mode`` is ``hybrid`` (semantic and full text fused, see ``scoring``, then weighed by
        importance and recency; the default), ``semantic`` or ``text``. A hybrid recall made while
        the embedder loads in the background waits up to ``semantic_wait_s`` for it, then answers
        from full text alone (``semantic_ready`` is False; ``semantic_status`` says why).
        ``token_budget`` keeps the best results whose contents fit in that many (estimated) tokens.
        A recall counts as a use of what it returns: memories recalled from enough distinct
        positions are promoted (see ``MemoryConfig.promotion_recall_count``).
        """
        return await self._find(
            query, user_id, session_id, agent_id, turn_id, top_k, mode=mode, min_similarity=min_similarity,
            min_relevance=min_relevance, categories=categories, scope_levels=scope_levels, min_importance=min_importance,
            include_superseded=include_superseded, as_of=as_of, entity_refs=entity_refs,
            token_budget=token_budget, record=True,
        )

    async def _find(
        self, query: str, user_id: str | None, session_id: str | None, agent_id: str | None,
        turn_id: str | None, top_k: int, *, mode: SearchMode | str, min_similarity: float,
        min_relevance: float | None,
        categories: Sequence[MemoryCategory | str] | None, scope_levels: Sequence[ScopeLevel | str] | None,
        min_importance: float | None, include_superseded: bool, as_of: datetime | float | str | None,
        entity_refs: Sequence[str] | None, token_budget: int | None, record: bool, all_levels: bool = False,
    ) -> list[SearchResult]:
        parts = self._parts
        position = validation.position(user_id, session_id, agent_id, turn_id)
        query = validation.query(query)
        validation.search_mode(mode)
        top_k = validation.count(top_k, "top_k", 1, validation.MAX_TOP_K)
        min_similarity = validation.similarity(min_similarity)
        min_relevance = None if min_relevance is None else validation.fraction(min_relevance, "min_relevance")
        token_budget = None if token_budget is None else validation.count(token_budget, "token_budget", 1, 10**7)
        flt = validation.memory_filter(MemoryFilter(
            user_id=position.user_id, session_id=position.session_id, agent_id=position.agent_id,
            turn_id=position.turn_id, categories=categories, scope_levels=scope_levels,
            min_importance=min_importance, include_superseded=include_superseded, as_of=as_of,
            entity_refs=entity_refs, all_levels=bool(all_levels),
        ))
        if not query.strip():
            return []
        if mode == "hybrid" and not self.semantic_ready:  # a model loading now is usually a second away
            await embedding.wait_briefly(parts, parts.config.semantic_wait_s)
        now = time.time()
        use_semantic = mode == "semantic" or (mode == "hybrid" and self.semantic_ready)
        if use_semantic and not self.semantic_ready:
            await self.wait_until_ready()
        # The query embeds in a worker thread while the database work goes on: most of recall's
        # own cost hides behind the embedding it has to wait for anyway.
        vector = asyncio.ensure_future(parts.embedder.embed([query])) if use_semantic else None
        try:
            user_key, results = await recall.find(
                parts, query, position, flt, now, vector, mode=mode, top_k=top_k,
                min_similarity=min_similarity, min_relevance=min_relevance, token_budget=token_budget,
            )
        finally:
            if vector is not None and not vector.done():
                vector.cancel()
        if record and results and user_key is not None and not include_superseded and as_of is None:
            await record_recalls(parts, user_key, position, results)
        return results

    async def stats(self, user_id: str | None = None) -> MemoryStats:
        """Counts of one user's memories (of the whole database without ``user_id``).

        ``total`` counts every stored version; ``current``, ``superseded`` and ``expired`` split it;
        ``categories`` and ``scope_levels`` count the current memories, the ones recall can return.
        """
        return await maintenance.stats(self._parts, user_id)

    # -- maintenance and transfer ---------------------------------------------------------------

    async def check(self) -> dict[str, list[str]]:
        """Consistency of the database after anything (a crash, say): every list empty means sound.

        Version links must hold both ways (a closed version's successor exists, a new version's
        predecessor points at it), the full-text index must match the store, and each user's
        vector index must hold exactly that user's embedded memories.
        """
        return await maintenance.check(self._parts)

    async def reindex(self) -> dict[str, int]:
        """Rebuild both indexes from the store: full text (then its integrity check) and every
        user's vector index. Returns how many memories and vectors were indexed."""
        return await maintenance.reindex(self._parts)

    async def export_jsonl(self, out: TextIO, user_id: str | None = None) -> int:
        """Write every version of every memory (of one user, or all) to ``out`` as JSON lines;
        returns how many. See :mod:`memory_mcp.memory.transfer` for the format."""
        return await transfer.write_lines(self.export_lines(user_id), out)

    def export_lines(self, user_id: str | None = None) -> AsyncIterator[str]:
        """The lines :meth:`export_jsonl` writes, one at a time (each ends with a newline)."""
        return transfer.export_lines(self._parts, user_id)

    async def import_jsonl(
        self, lines: Iterable[str], progress: Callable[[int], None] | None = None, *, user_id: str | None = None
    ) -> transfer.ImportReport:
        """Import JSON lines written by :meth:`export_jsonl` (ids, chains and scopes restored) or
        lines without an id (remembered through :meth:`add`). Bad lines are reported, not fatal.
        With ``user_id``, only that user's lines (a line naming no user is theirs)."""
        return await transfer.import_lines(self._parts, lines, progress, only_user=user_id)
