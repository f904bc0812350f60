"""Batches: ``add_many`` stores many facts with the rules of one ``add`` at a time, but quickly.

Most items of a bulk import repeat nothing. An item is *fresh* when it belongs to no turn (a turn's
write ends the session's other turns), is stored where it is said (not promoted, so it absorbs
nothing), and no memory of its user, stored before or earlier in the batch, in any scope or state,
has the same text or is a near twin naming the same numbers and names. What ``add`` would do with a
fresh item is to insert it (and record its idempotency key) and nothing else, so a run of fresh
items is inserted in one transaction, after one vector search for the whole batch; an idempotency
key is looked up again in that transaction, and an item whose key is taken by then returns what the
key's first write stored, as ``add`` does. Any other item goes through ``add`` in its turn, once the
items before it are stored. The test for freshness is wider than ``add``'s duplicate scope, never
narrower: an item in doubt takes the careful path.

An item whose idempotency key its user already used is answered before its batch is embedded: a
transcript sent again costs a lookup per message, not an embedding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import Any

import numpy as np

from . import embedding, validation
from .duplicates import NEAR, naming_the_same
from .models import Memory
from .parts import Parts
from .ports import Vector, VectorFilter
from .writing import Write, idempotent_many, new_version, prepare_item, store, write_time


async def add_many(
    parts: Parts, items: Sequence[Mapping[str, Any]], *, batch_size: int = 256
) -> list[Memory]:
    """Add many memories (each a dict of ``add``'s arguments), embedding them in batches while
    the previous batch is stored. Every item is checked before any is stored; the rules are those
    of one ``add`` at a time (see this module's docstring)."""
    writes = []
    for number, item in enumerate(items):
        with validation.item(number):
            writes.append(prepare_item(parts, item))
    batches = [writes[at : at + batch_size] for at in range(0, len(writes), batch_size)]
    embed = not (parts.config.background_embedding and not parts.semantic_ready.is_set())
    if embed:
        await embedding.wait_until_ready(parts)

    async def plan(batch: list[Write]) -> tuple[dict[int, Memory], list[int], asyncio.Future[Any] | None]:
        """What the batch's known keys already stored, the items left, and their embedding (under way)."""
        earlier = await _earlier(parts, batch)
        todo = [i for i in range(len(batch)) if i not in earlier]
        texts = [batch[i].content for i in todo]
        return earlier, todo, asyncio.ensure_future(parts.embedder.embed(texts)) if embed and texts else None

    stored: list[Memory] = []
    pending = await plan(batches[0]) if batches else None
    try:
        for number, batch in enumerate(batches):
            assert pending is not None
            earlier, todo, vectors_of = pending
            vectors = list(await vectors_of) if vectors_of is not None else [None] * len(todo)
            # The next batch embeds (in the embedder's thread) while this one is stored.
            pending = await plan(batches[number + 1]) if number + 1 < len(batches) else None
            done = iter(await store_batch(parts, [batch[i] for i in todo], vectors))
            stored += [earlier[i] if i in earlier else next(done) for i in range(len(batch))]
        return stored
    finally:
        if pending is not None and pending[2] is not None and not pending[2].done():
            pending[2].cancel()


async def _earlier(parts: Parts, writes: Sequence[Write]) -> dict[int, Memory]:
    """The writes whose idempotency key their user already used, with what the key's write stored."""
    keyed: dict[str, list[int]] = {}
    for i, w in enumerate(writes):
        if w.idempotency_key is not None:
            keyed.setdefault(w.position.user_id, []).append(i)
    found: dict[int, Memory] = {}
    for user_id, indexes in keyed.items():
        known = await idempotent_many(parts, user_id, [writes[i].idempotency_key or "" for i in indexes])
        found.update({i: known[k] for i in indexes if (k := writes[i].idempotency_key or "") in known})
    return found


async def store_batch(parts: Parts, writes: Sequence[Write], vectors: Sequence[Vector | None]) -> list[Memory]:
    """Store checked writes in order, each with its vector (None while the model loads)."""
    fresh = await _fresh(parts, writes, vectors)
    stored: list[Memory] = []
    run: list[int] = []
    for i, w in enumerate(writes):
        if fresh[i]:
            run.append(i)
            continue
        stored += await _insert(parts, [writes[j] for j in run], [vectors[j] for j in run])
        run = []
        stored.append(await store(parts, w, vectors[i]))
    stored += await _insert(parts, [writes[j] for j in run], [vectors[j] for j in run])
    return stored


async def _fresh(parts: Parts, writes: Sequence[Write], vectors: Sequence[Vector | None]) -> list[bool]:
    """Which writes repeat nothing (see the module's docstring)."""
    if parts.vectors is None:
        return [False] * len(writes)
    threshold = parts.config.duplicate_similarity
    fresh = [
        w.position.turn_id is None and w.to == w.position and v is not None for w, v in zip(writes, vectors, strict=True)
    ]
    order = sorted(range(len(writes)), key=lambda i: writes[i].position.user_id)  # stable: batch order kept
    for user_id, group in groupby(order, key=lambda i: writes[i].position.user_id):
        everyone = list(group)
        # Twins earlier in the batch, fresh or not: the same text, or near and naming the same specifics.
        with_vector = [i for i in everyone if vectors[i] is not None]
        row = {i: r for r, i in enumerate(with_vector)}
        close = np.zeros((0, 0), dtype=np.float32)
        if with_vector:
            matrix = np.stack([np.asarray(vectors[i], dtype=np.float32) for i in with_vector])
            close = matrix @ matrix.T
        seen: set[str] = set()
        for i in everyone:
            if fresh[i] and writes[i].digest in seen:
                fresh[i] = False
            elif fresh[i]:
                r = row[i]
                near = [with_vector[b] for b in np.flatnonzero(close[r, :r] >= threshold)]
                if naming_the_same(near, {j: writes[j].content for j in near}, writes[i].content):
                    fresh[i] = False
            seen.add(writes[i].digest)
        mine = [i for i in everyone if fresh[i]]
        if not mine:
            continue
        queries = np.stack([np.asarray(vectors[i], dtype=np.float32) for i in mine])
        # Twins stored before: any version with the same text, or a near vector saying the same.
        async with parts.store.reading() as db:
            user_key = await db.user_key(user_id)
            if user_key is None:
                continue
            known = await db.known_hashes(user_key, [writes[i].digest for i in mine])
        found = await parts.vectors.search_many(queries, NEAR, VectorFilter(user_key=user_key))
        near: dict[int, list[int]] = {}
        for i, hits in zip(mine, found, strict=True):
            keys = [k for k, s in hits if s >= threshold]
            if writes[i].digest in known or len(keys) == NEAR:  # a crowd of twins: take the careful path
                fresh[i] = False
            elif keys:
                near[i] = keys
        if near:
            async with parts.store.reading() as db:
                contents = await db.contents(sorted({k for keys in near.values() for k in keys}))
            for i, keys in near.items():
                if naming_the_same(keys, contents, writes[i].content):
                    fresh[i] = False
    return fresh


async def _insert(parts: Parts, writes: list[Write], vectors: list[Vector | None]) -> list[Memory]:
    """Insert fresh writes, in order, in one transaction; what was stored (or, for a write whose
    idempotency key was taken meanwhile, what that key's write stored)."""
    if not writes:
        return []
    results: list[int | Memory] = []
    async with parts.store.transaction() as db:
        users: dict[str, int] = {}
        for w, vector in zip(writes, vectors, strict=True):
            user_id = w.position.user_id
            if user_id not in users:
                users[user_id] = await db.ensure_user(user_id)
            if w.idempotency_key is not None:  # under the write lock: a retry, or an earlier item of the batch
                earlier = await db.find_idempotent(users[user_id], w.idempotency_key)
                if earlier is not None:
                    results.append(earlier)
                    continue
            at = write_time()
            version = new_version(parts, w, users[user_id], vector, at)
            results.append(await db.insert(version))
            if w.idempotency_key is not None:
                await db.put_idempotent(users[user_id], w.idempotency_key, version.memory.id, at)
        rows = await db.by_keys([r for r in results if isinstance(r, int)])
    stored = [rows[r] if isinstance(r, int) else r for r in results]
    for memory in stored:
        parts.forget_cached(memory.id)
    return stored
