"""Scope paths and promotion targets as pure rules (memory_mcp.memory.scope, .promotion): no store,
no model."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memory_mcp import MemoryConfig, ScopeLevel
from memory_mcp.memory.models import Memory
from memory_mcp.memory.promotion import move_to, target
from memory_mcp.memory.scope import Position, common_ancestor, promotion_target, visible_from, within

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = MemoryConfig(promote_turn_to_agent=0.6, promote_agent_to_session=0.7, promote_session_to_user=0.85)
THRESHOLDS = {ScopeLevel.TURN: 0.6, ScopeLevel.AGENT: 0.7, ScopeLevel.SESSION: 0.85}


def _memory(session: str | None = None, agent: str | None = None, turn: str | None = None, user: str = "u",
            **more: object) -> Memory:
    return Memory(id="m", user_id=user, session_id=session, agent_id=agent, turn_id=turn, content="x",
                  created_at=NOW, valid_from=NOW, **more)  # type: ignore[arg-type]


@pytest.mark.parametrize(("position", "parent"), [
    (Position("u", "s", "a", "t"), Position("u", "s", "a")),
    (Position("u", "s", None, "t"), Position("u", "s")),
    (Position("u", "s", "a"), Position("u", "s")),
    (Position("u", "s"), Position("u")),
    (Position("u"), Position("u")),
])
def test_one_level_up_drops_the_narrowest_id(position: Position, parent: Position) -> None:
    assert position.parent() == parent


@pytest.mark.parametrize(("a", "b", "common"), [
    (Position("u", "s", "a", "t1"), Position("u", "s", "a", "t2"), Position("u", "s", "a")),
    (Position("u", "s", "a1"), Position("u", "s", "a2"), Position("u", "s")),
    (Position("u", "s1", "a"), Position("u", "s2", "a"), Position("u")),  # the same agent in another session
    (Position("u", "s"), Position("u", "s", "a", "t"), Position("u", "s")),
    (Position("u"), Position("u", "s"), Position("u")),
    (Position("u", "s", "a"), Position("u", "s", "a"), Position("u", "s", "a")),
])
def test_the_common_ancestor_is_the_narrowest_position_on_both_paths(a: Position, b: Position, common: Position) -> None:
    assert common_ancestor(a, b) == common
    assert common_ancestor(b, a) == common


@pytest.mark.parametrize(("importance", "landing"), [
    (0.0, Position("u", "s", "a", "t")),
    (0.59, Position("u", "s", "a", "t")),
    (0.6, Position("u", "s", "a")),
    (0.7, Position("u", "s")),
    (0.84, Position("u", "s")),
    (0.85, Position("u")),
    (1.0, Position("u")),
])
def test_a_new_memory_climbs_one_level_per_threshold_its_importance_clears(importance: float, landing: Position) -> None:
    assert promotion_target(Position("u", "s", "a", "t"), importance, THRESHOLDS) == landing
    assert target(CONFIG, Position("u", "s", "a", "t"), importance) == landing


def test_a_turn_without_an_agent_leaves_by_the_turn_threshold_straight_to_its_session() -> None:
    assert promotion_target(Position("u", "s", None, "t"), 0.6, THRESHOLDS) == Position("u", "s")
    assert promotion_target(Position("u", "s", None, "t"), 0.59, THRESHOLDS) == Position("u", "s", None, "t")


def test_a_user_memory_stays_at_the_user_whatever_its_importance() -> None:
    assert promotion_target(Position("u"), 1.0, THRESHOLDS) == Position("u")


@pytest.mark.parametrize(("memory", "position", "seen"), [
    (_memory(), Position("u", "s", "a", "t"), True),
    (_memory("s"), Position("u", "s"), True),
    (_memory("s"), Position("u", "s2"), False),  # another session's memory
    (_memory("s"), Position("u"), False),  # a session's memory is not seen from the user alone
    (_memory("s", "a"), Position("u", "s", "a", "t"), True),
    (_memory("s", "a"), Position("u", "s", "b"), False),
    (_memory("s", "a", "t"), Position("u", "s", "a", "t2"), False),
    (_memory(user="v"), Position("u"), False),  # never another user's
])
def test_a_position_sees_the_memories_on_its_path_upward(memory: Memory, position: Position, seen: bool) -> None:
    assert visible_from(memory, position) is seen


@pytest.mark.parametrize(("memory", "position", "inside"), [
    (_memory("s", "a", "t"), Position("u"), True),
    (_memory("s", "a", "t"), Position("u", "s"), True),
    (_memory("s"), Position("u", "s", "a"), False),  # above the position, not below it
    (_memory("s2", "a"), Position("u", "s"), False),
    (_memory(user="v"), Position("u"), False),
])
def test_a_listing_selects_the_subtree_at_and_below_a_position(memory: Memory, position: Position, inside: bool) -> None:
    assert within(memory, position) is inside


def test_a_first_move_records_where_the_memory_started_and_a_later_one_keeps_it() -> None:
    fresh = _memory("s", "a", "t", expires_at=NOW)
    first = move_to(fresh, Position("u", "s", "a"), 100.0)
    assert first.origin == Position("u", "s", "a", "t") and first.to == Position("u", "s", "a")
    assert first.expires_at is None  # no longer a turn's memory: it no longer expires with the turn
    moved = _memory("s", "a", origin_level=ScopeLevel.TURN, origin_turn_id="t")
    assert move_to(moved, Position("u", "s"), 200.0).origin is None


def test_a_memory_still_in_a_turn_keeps_its_expiry_when_it_moves() -> None:
    memory = _memory("s", "a", "t", expires_at=NOW)
    assert move_to(memory, Position("u", "s", None, "t"), 1.0).expires_at == NOW.timestamp()


def test_position_keys_tell_positions_apart_below_the_user() -> None:
    keys = {Position("u", *ids).key() for ids in [(None, None, None), ("s", None, None), ("s", "a", None),
                                                   ("s", "a", "t"), ("s", None, "t")]}
    assert len(keys) == 5
