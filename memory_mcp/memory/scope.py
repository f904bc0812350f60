"""Scope: where a memory lives and what is visible from where.

A memory's scope is the narrowest id it carries (user → session → agent → turn). A query made from
a position sees the memories on its path upward: a memory is visible from there iff it belongs to
the same user and each of its session/agent/turn ids is either absent or equal to the position's.
So a session's memories are never seen from another session, and nothing of another user ever is.
A listing (``all_levels``) asks instead for the whole subtree at and below a position.

Bubbling moves a memory up this path: one level per promotion threshold its importance clears.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .models import Memory, ScopeLevel

ID_FIELDS = ("session_id", "agent_id", "turn_id")


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
        """The position below the user as one string (promotion by recall counts distinct ones)."""
        return json.dumps([self.session_id, self.agent_id, self.turn_id])

    def parent(self) -> Position:
        """One level up: the narrowest id dropped (the user's own position stays where it is)."""
        if self.turn_id is not None:
            return replace(self, turn_id=None)
        if self.agent_id is not None:
            return replace(self, agent_id=None)
        return replace(self, session_id=None)

    @classmethod
    def of(cls, memory: Memory) -> Position:
        """Where a memory lives now."""
        return cls(memory.user_id, memory.session_id, memory.agent_id, memory.turn_id)


def common_ancestor(a: Position, b: Position) -> Position:
    """The narrowest position on both paths (where a memory seen from both must live)."""
    ids: dict[str, str | None] = {}
    same = True
    for name in ID_FIELDS:
        va, vb = getattr(a, name), getattr(b, name)
        same = same and va == vb
        ids[name] = va if same else None
    return Position(a.user_id, **ids)


def promotion_target(position: Position, importance: float, thresholds: Mapping[ScopeLevel, float]) -> Position:
    """Where a new memory is stored: one level up from ``position`` for each threshold its
    importance clears (``thresholds[level]`` is what it takes to leave ``level``)."""
    while position.level != ScopeLevel.USER and importance >= thresholds[position.level]:
        position = position.parent()
    return position


def visible_from(memory: Memory, position: Position) -> bool:
    """The visibility rule, stated once in Python (the stores state it in their query languages,
    and the tests check them against this)."""
    if memory.user_id != position.user_id:
        return False
    return all(getattr(memory, name) in (None, getattr(position, name)) for name in ID_FIELDS)


def within(memory: Memory, position: Position) -> bool:
    """True if the memory lives at or below ``position`` (its subtree, as listings select)."""
    if memory.user_id != position.user_id:
        return False
    return all(getattr(position, name) in (None, getattr(memory, name)) for name in ID_FIELDS)
