"""Versions and history: every version of a fact stays linked to the ones before and after it.

* ``get_history`` returns the whole chain, oldest first, from any member.
* Forgetting one version closes the gap: its neighbours are linked to each other (and the chain
  re-rooted if its first version goes). A memory absorbed by a promoted one points at another
  fact's chain: only its predecessor is relinked then, and the other chain is left as it is.
* Forgetting with ``whole_chain`` removes every version of the fact; ``clear`` removes everything
  at and below a position. Forgotten memories leave the store and both indexes.
* A memory id is not a capability: given a ``user_id``, the memory must belong to that user, and
  "not found" is all another user learns.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import MemoryNotFoundError
from . import validation
from .models import Memory
from .parts import Parts
from .ports import MemoryFilter, Selection, Stored
from .scope import Position


async def owned(parts: Parts, memory_id: str, user_id: str | None) -> tuple[int, int, Memory]:
    """(key, user key, memory) of this id, which ``user_id`` (when given) must own."""
    validation.check_id(memory_id, "memory id")
    if user_id is not None:
        validation.position(user_id)
    async with parts.store.reading() as db:
        found = await db.get(memory_id)
    if found is None or (user_id is not None and found.memory.user_id != user_id):
        raise not_found(memory_id)
    return found.key, found.user_key, found.memory


def not_found(memory_id: str) -> MemoryNotFoundError:
    return MemoryNotFoundError(f"no memory with id {validation.clip(memory_id, 300)} exists for this user")


async def history(parts: Parts, memory_id: str, user_id: str | None) -> list[Memory]:
    key, _, _ = await owned(parts, memory_id, user_id)
    async with parts.store.reading() as db:
        return [stored.memory for stored in await db.chain(await db.chain_key(key))]


async def delete(parts: Parts, memory_id: str, user_id: str | None, whole_chain: bool) -> int:
    key, user_key, memory = await owned(parts, memory_id, user_id)
    async with parts.store.transaction() as db:
        if whole_chain:
            chain = await db.chain(await db.chain_key(key))
            removed = await db.delete([stored.key for stored in chain])
            for stored in chain:
                parts.forget_cached(stored.memory.id)
        else:
            stored = Stored(key, user_key, memory)
            successor = await db.get(memory.superseded_by) if memory.superseded_by is not None else None
            same_chain = (
                successor is not None and successor.user_key == stored.user_key
                and await db.chain_key(successor.key) == await db.chain_key(key)
            )
            await db.relink_around(stored, same_chain)
            parts.forget_cached(memory.supersedes)
            if same_chain:
                parts.forget_cached(memory.superseded_by)
            removed = await db.delete([key])
    parts.forget_cached(memory_id)
    return removed


async def clear(parts: Parts, position: Position, now: float) -> int:
    """Every version at and below ``position``; how many went."""
    flt = replace(MemoryFilter.at(position, all_levels=True), include_superseded=True, include_expired=True)
    async with parts.store.transaction() as db:
        user_key = await db.user_key(position.user_id)
        if user_key is None:
            return 0
        removed = await db.delete(await db.select_keys(Selection(user_key, (flt,), now)))
    if parts.cache is not None:
        parts.cache.clear()
    return removed
