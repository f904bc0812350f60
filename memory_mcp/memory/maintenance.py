"""Maintenance: consistency checks, rebuilding the indexes, counting."""

from __future__ import annotations

import time

from ..errors import MemoryMCPError
from . import embedding, validation
from .models import MemoryStats
from .parts import Parts


async def check(parts: Parts) -> dict[str, list[str]]:
    """What is inconsistent, by part; every list empty means sound (see ``HierarchicalMemory.check``)."""
    await embedding.wait_until_ready(parts)
    found: dict[str, list[str]] = {"links": [], "text_index": [], "vector_index": []}
    async with parts.store.reading() as db:
        for link in await db.broken_links():
            if link.kind == "successor_missing":
                found["links"].append(f"{link.memory_id} is closed by {link.other_id}, which is not stored")
            else:
                found["links"].append(f"{link.memory_id} supersedes {link.other_id}, which is not closed by it")
        users = await db.user_keys()
        embedded = {user_key: await db.embedded_keys(user_key) for user_key in users}
    found["text_index"] += await parts.text_index.integrity_check()
    assert parts.vectors is not None
    for user_key in users:
        indexed = await parts.vectors.keys(user_key)
        if indexed != embedded[user_key]:
            found["vector_index"].append(
                f"user {user_key}: {len(embedded[user_key] - indexed)} embedded memories missing from the "
                f"vector index, {len(indexed - embedded[user_key])} indexed that are not stored"
            )
    return found


async def reindex(parts: Parts) -> dict[str, int]:
    """Rebuild both indexes from the store; how many memories, vectors and users."""
    await embedding.wait_until_ready(parts)
    await embedding.embed_pending(parts)
    await parts.text_index.rebuild()
    problems = await parts.text_index.integrity_check()
    if problems:
        raise MemoryMCPError(f"the full-text index still differs from the store after a rebuild: {problems[0]}")
    async with parts.store.reading() as db:
        user_keys = await db.user_keys()
        memories = await db.count_memories()
    vectors = 0
    assert parts.vectors is not None
    for user_key in user_keys:
        vectors += await parts.vectors.rebuild(user_key)
    return {"memories": memories, "vectors": vectors, "users": len(user_keys)}


async def stats(parts: Parts, user_id: str | None) -> MemoryStats:
    """Counts of one user's memories (of the whole database without ``user_id``)."""
    now = time.time()
    async with parts.store.reading() as db:
        if user_id is None:
            return await db.stats(None, now)
        validation.position(user_id)
        user_key = await db.user_key(user_id)
        if user_key is None:
            return MemoryStats(total=0, current=0, superseded=0, expired=0, categories={}, scope_levels={}, users=0)
        return await db.stats(user_key, now)
