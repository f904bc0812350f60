"""Reading by id and by filter: no ranking, newest first."""

from __future__ import annotations

import time

from . import validation
from .models import Memory
from .parts import Parts
from .ports import MemoryFilter, Selection
from .versions import not_found, owned


async def get(parts: Parts, memory_id: str, user_id: str | None) -> Memory:
    """Any version by id, from the cache when no process has changed it since."""
    validation.check_id(memory_id, "memory id")
    await parts.refresh_cache()
    cached = parts.cache.get(memory_id) if parts.cache is not None else None
    if cached is not None:
        if user_id is not None and cached.user_id != user_id:
            raise not_found(memory_id)
        return cached
    _, _, memory = await owned(parts, memory_id, user_id)
    if parts.cache is not None:
        parts.cache.put(memory)
    return memory


async def query(parts: Parts, flt: MemoryFilter) -> list[Memory]:
    """Memories matching a filter, newest first."""
    position = validation.position(flt.user_id, flt.session_id, flt.agent_id, flt.turn_id)
    limit = validation.limit(flt.limit)
    offset = validation.count(flt.offset, "offset", 0, 10**9)
    checked = validation.memory_filter(flt)  # a bad filter is refused even for a user with no memories
    async with parts.store.reading() as db:
        user_key = await db.user_key(position.user_id)
        if user_key is None:
            return []
        return await db.select(Selection(user_key, (checked,), time.time()), limit=limit, offset=offset)
