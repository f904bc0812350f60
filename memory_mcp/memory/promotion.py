"""Promotion (bubbling): a memory that proves important climbs its path, turn → agent → session →
user. It moves; it is not copied, and the same fact held below its new place is absorbed.

* By importance: a new memory climbs one level for each threshold its importance clears
  (``promote_turn_to_agent``, ``promote_agent_to_session``, ``promote_session_to_user``), so a fact
  stated as very important reaches the user at once.
* By use: recalled from ``promotion_recall_count`` distinct positions, a memory climbs one level.
* Absorption: after a move, the same fact (same text, or a near twin naming the same numbers and
  names) held at or below the new place is closed, pointing at the promoted memory, and counts as
  one of its reinforcements, so recall never shows the fact twice.
"""

from __future__ import annotations

import logging
import time

from ..errors import StorageError
from .config import MemoryConfig
from .duplicates import content_hash, saying_the_same
from .models import Memory, ScopeLevel, SearchResult
from .parts import Parts
from .ports import MemoryFilter, Move, Selection, StoreWriter
from .recall import nearest
from .scope import Position, promotion_target

log = logging.getLogger("memory_mcp.memory")


def thresholds(config: MemoryConfig) -> dict[ScopeLevel, float]:
    """The importance it takes to leave each level."""
    return {
        ScopeLevel.TURN: config.promote_turn_to_agent,
        ScopeLevel.AGENT: config.promote_agent_to_session,
        ScopeLevel.SESSION: config.promote_session_to_user,
    }


def target(config: MemoryConfig, position: Position, importance: float) -> Position:
    """Where a new memory of this importance, said at ``position``, is stored."""
    return promotion_target(position, importance, thresholds(config))


def move_to(memory: Memory, to: Position, now: float) -> Move:
    """The move of ``memory`` up to ``to``; it remembers where it started on its first move, and
    only a memory still in a turn keeps its turn's expiry."""
    return Move(
        to=to, promoted_at=now,
        expires_at=memory.expires_at.timestamp() if memory.expires_at and to.turn_id else None,
        origin=Position.of(memory) if memory.origin_level is None else None,
    )


async def absorb(
    db: StoreWriter, user_key: int, keep: int, at: Position, digest: str, similar: list[int], now: float
) -> int:
    """Absorb what ``at``'s subtree holds of the fact ``keep`` now holds; how many."""
    return await db.absorb(keep, Selection(user_key, (MemoryFilter.at(at, all_levels=True),), now), digest, similar, now)


async def record_recalls(parts: Parts, user_key: int, position: Position, results: list[SearchResult]) -> None:
    """Count the distinct positions a memory is recalled from; enough of them promote it. This is
    bookkeeping: a database that cannot be written now (a full disk) leaves the answer standing."""
    try:
        await _count_and_promote(parts, user_key, position, results)
    except StorageError as exc:
        log.warning("a recall was answered but not counted: %s", exc)


async def _count_and_promote(parts: Parts, user_key: int, position: Position, results: list[SearchResult]) -> None:
    candidates = [r.memory for r in results if r.memory.scope_level != ScopeLevel.USER]
    if not candidates:
        return
    now = time.time()
    promoted = []
    async with parts.store.transaction() as db:
        for memory in candidates:
            stored = await db.get(memory.id)
            if stored is None:
                continue
            seen = await db.record_recall(stored.key, position.key())
            if seen >= parts.config.promotion_recall_count:
                parent = Position.of(memory).parent()
                await db.move(stored.key, move_to(memory, parent, now))
                await db.forget_recalls(stored.key)
                promoted.append((stored.key, memory.id, parent))
    for key, memory_id, parent in promoted:
        parts.forget_cached(memory_id)
        await absorb_below(parts, user_key, key, parent)


async def absorb_below(parts: Parts, user_key: int, key: int, at: Position) -> None:
    """After a promotion by use: absorb what the memory's new subtree holds of the same fact."""
    async with parts.store.reading() as db:
        content = (await db.contents([key])).get(key)
        stored = await db.embeddings([key])
    if content is None:
        return
    similar: list[int] = []
    if key in stored and parts.vectors is not None:
        below = Selection(user_key, (MemoryFilter.at(at, all_levels=True),), time.time())
        found = await nearest(parts, stored[key], below, 8)
        near = [k for k, s in found if k != key and s >= parts.config.duplicate_similarity]
        similar = await saying_the_same(parts, near, content)
    async with parts.store.transaction() as db:
        await absorb(db, user_key, key, at, content_hash(content), similar, time.time())
