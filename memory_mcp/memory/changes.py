"""What changed, from any process: the change feed as users and memory ids, and the ids in use.

Every write to a memory (an add, a supersede closing the old version, a promotion, a deletion)
enters the store's change feed in the writing transaction, in commit order, whichever process
made it. ``since`` reads it after a point, ``watch`` follows it; a server turns it into resource
notifications. ``user_ids`` and ``scope_ids`` list the ids a client may want completed, and
``scope_counts`` how many memories each position of a user holds (a browser's tree of them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Literal, NamedTuple

from ..errors import InvalidArgumentError
from . import validation
from .parts import Parts
from .ports import ScopeCount

MAX_IDS = 100  # an MCP completion answers at most 100 values
MAX_POSITIONS = 10_000


class MemoryChange(NamedTuple):
    """One write: its place in the feed, the user and memory it touched, and what it did
    (``add``; ``update``: superseded, promoted, reinforced or re-embedded; ``delete``)."""

    seq: int
    user_id: str
    memory_id: str
    op: Literal["add", "update", "delete"]


async def last(parts: Parts) -> int:
    async with parts.store.reading() as db:
        return await db.last_change()


async def since(parts: Parts, seq: int, limit: int) -> list[MemoryChange]:
    limit = validation.count(limit, "limit", 1, 100_000)
    async with parts.store.reading() as db:
        changes = await db.changes_since(seq, limit=limit)
    return [MemoryChange(c.seq, c.user_id, c.memory_id, c.op) for c in changes]


async def watch(parts: Parts, after: int | None, interval_s: float, batch: int) -> AsyncIterator[list[MemoryChange]]:
    """Each batch of changes after ``after`` (by default: from now) as it appears, looking every
    ``interval_s`` seconds; a batch never holds more than ``batch`` changes."""
    seq = await last(parts) if after is None else after
    while True:
        found = await since(parts, seq, batch)
        if found:
            seq = found[-1].seq
            yield found
            if len(found) == batch:
                continue  # more are waiting
        await asyncio.sleep(interval_s)


async def user_ids(parts: Parts, prefix: str, limit: int) -> list[str]:
    prefix, limit = _prefix(prefix), validation.count(limit, "limit", 1, MAX_IDS)
    async with parts.store.reading() as db:
        return await db.user_ids(prefix, limit)


async def scope_ids(
    parts: Parts, user_id: str, column: Literal["session_id", "agent_id"], prefix: str, limit: int
) -> list[str]:
    user_id = validation.check_id(user_id, "user_id")
    prefix, limit = _prefix(prefix), validation.count(limit, "limit", 1, MAX_IDS)
    async with parts.store.reading() as db:
        user_key = await db.user_key(user_id)
        return [] if user_key is None else await db.scope_ids(user_key, column, prefix, limit)


async def scope_counts(parts: Parts, user_id: str, limit: int) -> list[ScopeCount]:
    user_id = validation.check_id(user_id, "user_id")
    limit = validation.count(limit, "limit", 1, MAX_POSITIONS)
    async with parts.store.reading() as db:
        user_key = await db.user_key(user_id)
        return [] if user_key is None else await db.scope_counts(user_key, time.time(), limit)


def _prefix(value: object) -> str:
    if not isinstance(value, str) or not validation.encodable(value):
        raise InvalidArgumentError(f"prefix must be a string of text, got {validation.clip(value)}")
    return value[:validation.MAX_ID_CHARS]
