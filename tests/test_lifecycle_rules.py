"""The lifecycle rules of a memory: TURN expiry, duplicates (reinforcement), and bubbling (promotion).

Rules under test (docs/design.md, "Scopes and visibility", "Time and versions", "Duplicates and
reinforcement", "Promotion (bubbling)"; the docstrings of memory_mcp/memory/promotion.py and
duplicates.py):

* TURN memories expire after ``turn_ttl_s``, and as soon as a later turn of the same session writes a
  memory; expired ones are never recalled, but ``include_expired=True`` still lists them.
* Remembering what is already current on the position's path, or just below it (same text modulo
  case and whitespace, or cosine similarity >= ``duplicate_similarity``) reinforces the existing
  memory: same id, ``reinforcement_count`` + 1, importance the max of both, nothing new stored.
* A memory climbs one level per promotion threshold its importance clears (turn→agent 0.6,
  agent→session 0.7, session→user 0.85 by default), and one level when recalled from
  ``promotion_recall_count`` (3) distinct positions. It moves; it is not copied.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from memory_mcp import HierarchicalMemory, MemoryFilter, ScopeLevel
from memory_mcp.adapters.onnx_embedder import OnnxEmbedder

LOW = 0.1  # below every promotion threshold
S1 = {"session_id": "s1"}
S1A1 = {"session_id": "s1", "agent_id": "a1"}
S1A1T1 = {"session_id": "s1", "agent_id": "a1", "turn_id": "t1"}
S1A1T2 = {"session_id": "s1", "agent_id": "a1", "turn_id": "t2"}


async def recalled_ids(
    memory: HierarchicalMemory, query: str, mode: str = "hybrid", **where: Any
) -> list[str]:
    return [r.id for r in await memory.recall(query, user_id="alice", mode=mode, top_k=20, **where)]


async def visible_ids(memory: HierarchicalMemory, **where: Any) -> list[str]:
    return [m.id for m in await memory.query(MemoryFilter(user_id="alice", **where))]


async def cosine(embedder: OnnxEmbedder, a: str, b: str) -> float:
    va, vb = await embedder.embed([a, b])
    return float(np.dot(va, vb))


# -- TURN expiry ----------------------------------------------------------------------------------


async def test_turn_memory_expires_when_a_later_turn_of_the_same_session_writes(
    memory: HierarchicalMemory,
) -> None:
    step = await memory.add(
        "Working on renaming the invoices table", user_id="alice", importance=LOW, **S1A1T1
    )
    assert step.scope_level == ScopeLevel.TURN and step.expires_at is not None
    for mode in ("hybrid", "semantic", "text"):
        assert step.id in await recalled_ids(memory, "renaming the invoices table", mode, **S1A1T1)

    await memory.add("The user asked about the weather in Oslo", user_id="alice", importance=LOW, **S1A1T2)

    for mode in ("hybrid", "semantic", "text"):
        assert step.id not in await recalled_ids(memory, "renaming the invoices table", mode, **S1A1T1)
    assert step.id not in await visible_ids(memory, **S1A1T1)
    assert step.id not in [m.id for m in await memory.get_all("alice")]

    expired = await memory.query(MemoryFilter(user_id="alice", include_expired=True, **S1A1T1))
    assert [m.id for m in expired] == [step.id]
    assert expired[0].is_expired() and expired[0].is_current  # expired, not superseded
    stats = await memory.stats("alice")
    assert (stats.total, stats.current, stats.expired) == (2, 1, 1)


async def test_turn_memory_read_before_the_next_turn_is_not_served_stale_from_the_cache(
    memory: HierarchicalMemory,
) -> None:
    step = await memory.add(
        "Working on renaming the invoices table", user_id="alice", importance=LOW, **S1A1T1
    )
    assert not (await memory.get(step.id, user_id="alice")).is_expired()  # now cached
    await memory.add("The user asked about the weather in Oslo", user_id="alice", importance=LOW, **S1A1T2)
    assert (await memory.get(step.id, user_id="alice")).is_expired()


async def test_turn_memory_survives_writes_in_its_own_turn_at_agent_level_and_in_other_sessions(
    memory: HierarchicalMemory,
) -> None:
    step = await memory.add(
        "Working on renaming the invoices table", user_id="alice", importance=LOW, **S1A1T1
    )
    await memory.add("Second note of the same turn about tests", user_id="alice", importance=LOW, **S1A1T1)
    await memory.add("The agent prefers small commits", user_id="alice", importance=LOW, **S1A1)
    await memory.add(
        "Another session's turn note",
        user_id="alice",
        importance=LOW,
        session_id="s2",
        agent_id="a1",
        turn_id="t2",
    )
    assert step.id in await recalled_ids(memory, "renaming the invoices table", **S1A1T1)
    assert step.id in await visible_ids(memory, **S1A1T1)


async def test_a_later_turn_of_another_agent_in_the_same_session_also_ends_the_turn(
    memory: HierarchicalMemory,
) -> None:
    step = await memory.add(
        "Working on renaming the invoices table", user_id="alice", importance=LOW, **S1A1T1
    )
    await memory.add(
        "Research agent looked up a paper",
        user_id="alice",
        importance=LOW,
        session_id="s1",
        agent_id="a2",
        turn_id="t2",
    )
    assert step.id not in await visible_ids(memory, **S1A1T1)


async def test_point_in_time_query_during_the_turn_still_sees_its_expired_memory(
    memory: HierarchicalMemory,
) -> None:
    step = await memory.add(
        "Working on renaming the invoices table", user_id="alice", importance=LOW, **S1A1T1
    )
    during = time.time()
    await asyncio.sleep(0.01)
    await memory.add("The user asked about the weather in Oslo", user_id="alice", importance=LOW, **S1A1T2)
    assert step.id not in await visible_ids(memory, **S1A1T1)
    assert step.id in await visible_ids(memory, as_of=during, **S1A1T1)


async def test_turn_memory_expires_after_the_turn_ttl(open_memory: Callable[..., Any]) -> None:
    async with await open_memory(turn_ttl_s=0.2) as memory:
        step = await memory.add(
            "Working on renaming the invoices table", user_id="alice", importance=LOW, **S1A1T1
        )
        assert step.id in await recalled_ids(memory, "renaming the invoices table", **S1A1T1)
        assert step.expires_at is not None
        assert (step.expires_at - step.created_at).total_seconds() == pytest.approx(0.2, abs=0.01)
        lasting = await memory.add(
            "Session goal: ship the invoices migration", user_id="alice", importance=LOW, **S1
        )
        assert lasting.expires_at is None  # only TURN memories have a lifetime

        await asyncio.sleep(0.35)

        for mode in ("hybrid", "semantic", "text"):
            ids = await recalled_ids(memory, "renaming the invoices table", mode, **S1A1T1)
            assert step.id not in ids and lasting.id in ids
        assert await visible_ids(memory, **S1A1T1) == [lasting.id]
        assert step.id in await visible_ids(memory, include_expired=True, **S1A1T1)
        assert (await memory.stats("alice")).expired == 1


async def test_turn_memory_promoted_by_importance_does_not_expire_with_its_turn(
    memory: HierarchicalMemory,
) -> None:
    lasting = await memory.add(
        "The agent must never push to main", user_id="alice", importance=0.65, **S1A1T1
    )
    assert lasting.scope_level == ScopeLevel.AGENT and lasting.expires_at is None
    await memory.add("The user asked about the weather in Oslo", user_id="alice", importance=LOW, **S1A1T2)
    assert lasting.id in await recalled_ids(memory, "push to main", **S1A1T2)


# -- duplicates: reinforcement ----------------------------------------------------------------------


async def test_same_text_modulo_case_and_whitespace_reinforces_the_existing_memory(
    memory: HierarchicalMemory,
) -> None:
    first = await memory.add("User prefers dark mode in the editor", user_id="alice", importance=0.4)
    again = await memory.add("  user PREFERS dark   mode in the\teditor ", user_id="alice", importance=0.3)
    assert again.id == first.id
    assert again.reinforcement_count == 1
    assert again.content == "User prefers dark mode in the editor"  # the first wording is kept
    assert again.importance == 0.4  # the max of 0.4 and 0.3
    stats = await memory.stats("alice")
    assert (stats.total, stats.current) == (1, 1)


async def test_reinforcement_keeps_the_highest_importance_and_counts_every_repeat(
    memory: HierarchicalMemory,
) -> None:
    first = await memory.add("User prefers dark mode in the editor", user_id="alice", importance=0.4)
    higher = await memory.add("User prefers dark mode in the editor", user_id="alice", importance=0.7)
    lower = await memory.add("User prefers dark mode in the editor", user_id="alice", importance=0.2)
    assert first.id == higher.id == lower.id
    assert (higher.importance, higher.reinforcement_count) == (0.7, 1)
    assert (lower.importance, lower.reinforcement_count) == (0.7, 2)
    assert (await memory.get(first.id)).importance == 0.7
    assert (await memory.stats("alice")).total == 1


async def test_near_paraphrase_above_duplicate_similarity_reinforces_the_existing_memory(
    memory: HierarchicalMemory, embedder: OnnxEmbedder
) -> None:
    original, paraphrase = "Alice is allergic to peanuts", "Alice has a peanut allergy"
    assert await cosine(embedder, original, paraphrase) >= memory.config.duplicate_similarity

    first = await memory.add(original, user_id="alice", importance=0.5)
    again = await memory.add(paraphrase, user_id="alice", importance=0.8)
    assert again.id == first.id
    assert again.content == original
    assert (again.reinforcement_count, again.importance) == (1, 0.8)
    assert (await memory.stats("alice")).total == 1
    assert [r.id for r in await memory.recall("peanut allergy", user_id="alice")] == [first.id]


async def test_related_text_below_duplicate_similarity_is_a_separate_memory(
    memory: HierarchicalMemory, embedder: OnnxEmbedder
) -> None:
    tea, coffee = "The user likes tea", "The user likes coffee"
    assert await cosine(embedder, tea, coffee) < memory.config.duplicate_similarity
    first = await memory.add(tea, user_id="alice", importance=LOW)
    second = await memory.add(coffee, user_id="alice", importance=LOW)
    assert second.id != first.id and second.reinforcement_count == 0
    assert (await memory.stats("alice")).total == 2


async def test_same_text_in_another_session_is_a_separate_memory_because_the_first_is_not_visible_there(
    memory: HierarchicalMemory,
) -> None:
    in_s1 = await memory.add(
        "The deploy window is Tuesday evening", user_id="alice", importance=LOW, session_id="s1"
    )
    in_s2 = await memory.add(
        "The deploy window is Tuesday evening", user_id="alice", importance=LOW, session_id="s2"
    )
    assert in_s2.id != in_s1.id
    assert (in_s1.session_id, in_s2.session_id) == ("s1", "s2")
    assert in_s2.reinforcement_count == 0 and (await memory.get(in_s1.id)).reinforcement_count == 0
    assert (await memory.stats("alice")).total == 2
    assert await recalled_ids(memory, "deploy window", session_id="s1") == [in_s1.id]
    assert await recalled_ids(memory, "deploy window", session_id="s2") == [in_s2.id]


async def test_same_text_from_another_agent_of_the_session_is_separate_because_it_is_not_visible_there(
    memory: HierarchicalMemory,
) -> None:
    a1 = await memory.add("Run the linter before committing", user_id="alice", importance=LOW, **S1A1)
    a2 = await memory.add(
        "Run the linter before committing", user_id="alice", importance=LOW, session_id="s1", agent_id="a2"
    )
    assert a2.id != a1.id
    assert (await memory.stats("alice")).total == 2


async def test_restating_from_a_narrower_position_a_fact_the_user_already_has_reinforces_it_in_place(
    memory: HierarchicalMemory,
) -> None:
    known = await memory.add("Alice lives in Berlin", user_id="alice", importance=0.5)
    again = await memory.add("Alice lives in Berlin", user_id="alice", importance=LOW, **S1A1T1)
    assert again.id == known.id
    assert again.scope_level == ScopeLevel.USER and again.session_id is None  # not pulled down into s1
    assert again.reinforcement_count == 1
    assert (await memory.stats("alice")).total == 1
    assert await recalled_ids(memory, "where does Alice live", session_id="s2") == [known.id]


# -- promotion by importance ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("importance", "level", "stored_ids"),
    [
        (0.5, ScopeLevel.TURN, S1A1T1),
        (0.59, ScopeLevel.TURN, S1A1T1),
        (0.6, ScopeLevel.AGENT, S1A1),  # thresholds are inclusive
        (0.65, ScopeLevel.AGENT, S1A1),
        (0.7, ScopeLevel.SESSION, S1),
        (0.75, ScopeLevel.SESSION, S1),
        (0.85, ScopeLevel.USER, {}),
        (0.9, ScopeLevel.USER, {}),
    ],
)
async def test_turn_level_add_climbs_one_level_per_threshold_its_importance_clears(
    memory: HierarchicalMemory, importance: float, level: ScopeLevel, stored_ids: dict[str, str]
) -> None:
    stored = await memory.add("The user is vegetarian", user_id="alice", importance=importance, **S1A1T1)
    assert stored.scope_level == level
    assert (stored.session_id, stored.agent_id, stored.turn_id) == tuple(
        stored_ids.get(k) for k in ("session_id", "agent_id", "turn_id")
    )
    assert (await memory.get(stored.id)).scope_level == level  # as stored, not only as returned
    if level == ScopeLevel.TURN:
        assert stored.origin_level is None and stored.promoted_at is None
        assert stored.expires_at is not None
    else:
        assert stored.origin_level == ScopeLevel.TURN
        assert (stored.origin_session_id, stored.origin_agent_id, stored.origin_turn_id) == ("s1", "a1", "t1")
        assert stored.promoted_at is not None and stored.expires_at is None


@pytest.mark.parametrize(
    ("start", "importance", "level"),
    [
        (S1A1, 0.65, ScopeLevel.AGENT),  # 0.65 clears turn→agent, but an AGENT add needs 0.7
        (S1A1, 0.75, ScopeLevel.SESSION),
        (S1A1, 0.9, ScopeLevel.USER),
        (S1, 0.8, ScopeLevel.SESSION),
        (S1, 0.9, ScopeLevel.USER),
    ],
)
async def test_promotion_thresholds_apply_from_the_level_a_memory_is_written_at(
    memory: HierarchicalMemory, start: dict[str, str], importance: float, level: ScopeLevel
) -> None:
    stored = await memory.add("The user is vegetarian", user_id="alice", importance=importance, **start)
    assert stored.scope_level == level


async def test_turn_fact_promoted_to_agent_is_seen_by_later_turns_of_that_agent_only(
    memory: HierarchicalMemory,
) -> None:
    fact = await memory.add(
        "Use tabs, not spaces, in this repository", user_id="alice", importance=0.65, **S1A1T1
    )
    assert fact.id in await recalled_ids(memory, "tabs or spaces", **S1A1T2)
    assert fact.id in await recalled_ids(memory, "tabs or spaces", **S1A1)
    assert await recalled_ids(memory, "tabs or spaces", session_id="s1", agent_id="a2") == []
    assert await recalled_ids(memory, "tabs or spaces", **S1) == []


async def test_turn_fact_promoted_to_session_is_seen_by_other_agents_of_the_session_only(
    memory: HierarchicalMemory,
) -> None:
    fact = await memory.add("The release is frozen until Monday", user_id="alice", importance=0.75, **S1A1T1)
    assert fact.scope_level == ScopeLevel.SESSION
    assert fact.id in await recalled_ids(memory, "release freeze", session_id="s1", agent_id="a2")
    assert await recalled_ids(memory, "release freeze", session_id="s2") == []


async def test_very_important_turn_fact_reaches_user_and_is_recalled_from_another_session(
    memory: HierarchicalMemory,
) -> None:
    fact = await memory.add(
        "Alice is severely allergic to shellfish", user_id="alice", importance=0.9, **S1A1T1
    )
    assert fact.scope_level == ScopeLevel.USER
    assert (fact.origin_level, fact.origin_session_id, fact.origin_agent_id, fact.origin_turn_id) == (
        ScopeLevel.TURN,
        "s1",
        "a1",
        "t1",
    )
    assert await recalled_ids(memory, "any food allergies?", session_id="s2") == [fact.id]
    assert await recalled_ids(
        memory, "any food allergies?", session_id="s9", agent_id="a7", turn_id="t3"
    ) == [fact.id]


async def test_promotion_moves_the_memory_it_does_not_copy_it(memory: HierarchicalMemory) -> None:
    fact = await memory.add(
        "Alice is severely allergic to shellfish", user_id="alice", importance=0.9, **S1A1T1
    )
    stats = await memory.stats("alice")
    assert (stats.total, stats.scope_levels) == (1, {"user": 1})
    assert [m.id for m in await memory.get_all("alice")] == [fact.id]
    for mode in ("hybrid", "semantic", "text"):
        # From the original position the fact is on the path twice over (USER and its old TURN),
        # yet shows once.
        assert await recalled_ids(memory, "shellfish allergy", mode, **S1A1T1) == [fact.id]


async def test_restating_a_turn_fact_with_higher_importance_promotes_the_existing_memory(
    memory: HierarchicalMemory,
) -> None:
    step = await memory.add("Staging database is read-only today", user_id="alice", importance=LOW, **S1A1T1)
    again = await memory.add(
        "Staging database is read-only today", user_id="alice", importance=0.75, **S1A1T1
    )
    assert again.id == step.id
    assert again.scope_level == ScopeLevel.SESSION and again.expires_at is None
    assert again.origin_level == ScopeLevel.TURN and again.origin_turn_id == "t1"
    assert (await memory.stats("alice")).total == 1


@pytest.mark.parametrize(
    ("broader", "level"),
    [({}, ScopeLevel.USER), (S1, ScopeLevel.SESSION), (S1A1, ScopeLevel.AGENT)],
    ids=["from-user", "from-session", "from-agent"],
)
async def test_readding_from_a_broader_position_a_fact_held_below_promotes_it_instead_of_duplicating(
    memory: HierarchicalMemory, broader: dict[str, str], level: ScopeLevel
) -> None:
    narrow = await memory.add(
        "The on-call phone number ends in 42", user_id="alice", importance=LOW, **S1A1T1
    )
    again = await memory.add(
        "The on-call phone number ends in 42", user_id="alice", importance=LOW, **broader
    )
    assert again.id == narrow.id
    assert again.scope_level == level
    assert again.reinforcement_count == 1
    assert again.origin_level == ScopeLevel.TURN and again.origin_turn_id == "t1"
    assert again.expires_at is None  # no longer turn working memory
    assert (await memory.stats("alice")).total == 1
    assert narrow.id in await recalled_ids(memory, "on-call phone number", **broader)


async def test_fact_readded_at_user_level_is_then_recalled_from_another_session(
    memory: HierarchicalMemory,
) -> None:
    narrow = await memory.add("The on-call phone number ends in 42", user_id="alice", importance=LOW, **S1)
    assert await recalled_ids(memory, "on-call phone number", session_id="s2") == []
    await memory.add("the on-call phone number ends in 42", user_id="alice", importance=LOW)
    assert await recalled_ids(memory, "on-call phone number", session_id="s2") == [narrow.id]


async def test_fact_promoted_to_user_absorbs_the_same_fact_held_in_another_session(
    memory: HierarchicalMemory,
) -> None:
    """Promotion must not leave a session seeing the same fact twice (once as its own, once as USER)."""
    in_s1 = await memory.add(
        "The office wifi password is on the fridge", user_id="alice", importance=LOW, **S1
    )
    promoted = await memory.add(
        "The office wifi password is on the fridge", user_id="alice", importance=0.9, session_id="s2"
    )
    assert promoted.scope_level == ScopeLevel.USER
    from_s1 = await memory.recall("office wifi password", user_id="alice", session_id="s1")
    assert [r.content for r in from_s1] == ["The office wifi password is on the fridge"], (
        f"s1 sees the fact {len(from_s1)} times: {[r.id for r in from_s1]} (its own was {in_s1.id})"
    )
    assert (await memory.stats("alice")).current == 1


async def test_fact_promoted_to_user_by_recall_absorbs_the_same_fact_held_in_another_session(
    memory: HierarchicalMemory,
) -> None:
    """The same rule when the promotion comes from use rather than from importance."""
    in_s1 = await memory.add(
        "The office wifi password is on the fridge", user_id="alice", importance=LOW, **S1
    )
    # The same text modulo case and whitespace: the same fact.
    in_s2 = await memory.add(
        "the office WIFI password  is on the fridge", user_id="alice", importance=LOW, session_id="s2"
    )
    assert in_s1.id != in_s2.id  # correct so far: neither is visible from the other session
    for agent in ("a1", "a2", "a3"):
        await recalled_ids(memory, "office wifi password", session_id="s1", agent_id=agent)
    assert (await memory.get(in_s1.id)).scope_level == ScopeLevel.USER
    from_s2 = await recalled_ids(memory, "office wifi password", session_id="s2")
    assert len(from_s2) == 1, f"session s2 sees the fact {len(from_s2)} times: {from_s2}"
    assert (await memory.stats("alice")).current == 1


async def test_near_paraphrase_in_another_session_is_absorbed_when_a_fact_is_promoted_to_user_by_recall(
    memory: HierarchicalMemory, embedder: OnnxEmbedder
) -> None:
    """Near-duplicates by embedding are the same fact (the duplicate rule), whichever way it climbs."""
    original, paraphrase = "Alice is allergic to peanuts", "Alice has a peanut allergy"
    assert await cosine(embedder, original, paraphrase) >= memory.config.duplicate_similarity
    in_s1 = await memory.add(original, user_id="alice", importance=LOW, **S1)
    await memory.add(paraphrase, user_id="alice", importance=LOW, session_id="s2")
    for agent in ("a1", "a2", "a3"):
        await recalled_ids(memory, "peanut allergy", session_id="s1", agent_id=agent)
    assert (await memory.get(in_s1.id)).scope_level == ScopeLevel.USER
    from_s2 = await recalled_ids(memory, "peanut allergy", session_id="s2")
    assert len(from_s2) == 1, f"session s2 sees the fact {len(from_s2)} times: {from_s2}"


async def test_readding_at_user_level_a_fact_held_in_two_sessions_leaves_one_current_memory(
    memory: HierarchicalMemory,
) -> None:
    in_s1 = await memory.add(
        "The office wifi password is on the fridge", user_id="alice", importance=LOW, **S1
    )
    in_s2 = await memory.add(
        "The office wifi password is on the fridge", user_id="alice", importance=LOW, session_id="s2"
    )
    kept = await memory.add("The office wifi password is on the fridge", user_id="alice", importance=LOW)
    assert kept.id in (in_s1.id, in_s2.id) and kept.scope_level == ScopeLevel.USER
    for session in ("s1", "s2", "s3"):
        assert await recalled_ids(memory, "office wifi password", session_id=session) == [kept.id]
    assert (await memory.stats("alice")).current == 1


async def test_near_duplicate_in_scope_is_found_even_when_the_user_has_many_closer_memories_elsewhere(
    memory: HierarchicalMemory, embedder: OnnxEmbedder
) -> None:
    """The duplicate check must look at what is in scope, not only at the user's nearest vectors."""
    original, paraphrase = "Alice is allergic to peanuts", "Alice has a peanut allergy"
    assert await cosine(embedder, original, paraphrase) >= memory.config.duplicate_similarity
    # The exact wording of the new statement, held in ten other sessions (each a separate memory).
    for i in range(10):
        await memory.add(paraphrase, user_id="alice", importance=LOW, session_id=f"other-{i}")
    in_s1 = await memory.add(original, user_id="alice", importance=LOW, **S1)
    again = await memory.add(paraphrase, user_id="alice", importance=LOW, **S1)
    assert again.id == in_s1.id, "the paraphrase in s1 was stored as a second memory"
    assert len(await recalled_ids(memory, "peanut allergy", **S1)) == 1


# -- promotion by recall --------------------------------------------------------------------------


async def test_session_memory_recalled_from_enough_distinct_positions_climbs_to_user(
    memory: HierarchicalMemory,
) -> None:
    assert memory.config.promotion_recall_count == 3
    fact = await memory.add("The team uses trunk-based development", user_id="alice", importance=LOW, **S1)
    positions = [S1A1, {"session_id": "s1", "agent_id": "a2"}, S1A1T1]

    for where in positions[:2]:
        assert await recalled_ids(memory, "branching strategy", **where) == [fact.id]
    assert (await memory.get(fact.id)).scope_level == ScopeLevel.SESSION
    assert await recalled_ids(memory, "branching strategy", session_id="s2") == []

    assert await recalled_ids(memory, "branching strategy", **positions[2]) == [fact.id]
    promoted = await memory.get(fact.id)
    assert promoted.scope_level == ScopeLevel.USER and promoted.session_id is None
    assert (promoted.origin_level, promoted.origin_session_id) == (ScopeLevel.SESSION, "s1")
    assert promoted.promoted_at is not None
    assert await recalled_ids(memory, "branching strategy", session_id="s2") == [fact.id]
    assert (await memory.stats("alice")).total == 1


async def test_agent_memory_recalled_from_three_of_its_turns_climbs_one_level_only(
    memory: HierarchicalMemory,
) -> None:
    fact = await memory.add(
        "The agent writes docstrings in NumPy style", user_id="alice", importance=LOW, **S1A1
    )
    for turn in ("t1", "t2", "t3"):
        assert await recalled_ids(
            memory, "docstring style", session_id="s1", agent_id="a1", turn_id=turn
        ) == [fact.id]
    promoted = await memory.get(fact.id)
    assert promoted.scope_level == ScopeLevel.SESSION and promoted.session_id == "s1"
    assert promoted.origin_level == ScopeLevel.AGENT and promoted.origin_agent_id == "a1"
    assert fact.id in await recalled_ids(memory, "docstring style", session_id="s1", agent_id="a2")
    assert await recalled_ids(memory, "docstring style", session_id="s2") == []


async def test_recalling_many_times_from_one_position_does_not_promote(memory: HierarchicalMemory) -> None:
    fact = await memory.add("The team uses trunk-based development", user_id="alice", importance=LOW, **S1)
    for _ in range(5):
        assert await recalled_ids(memory, "branching strategy", **S1A1) == [fact.id]
    assert (await memory.get(fact.id)).scope_level == ScopeLevel.SESSION
    assert await recalled_ids(memory, "branching strategy", session_id="s2") == []


async def test_search_and_text_search_do_not_count_towards_recall_promotion(
    memory: HierarchicalMemory,
) -> None:
    fact = await memory.add("The team uses trunk-based development", user_id="alice", importance=LOW, **S1)
    for where in (S1A1, {"session_id": "s1", "agent_id": "a2"}, S1A1T1, S1):
        assert [r.id for r in await memory.search("branching strategy", user_id="alice", **where)] == [
            fact.id
        ]
        assert [r.id for r in await memory.text_search("trunk-based", user_id="alice", **where)] == [fact.id]
    assert (await memory.get(fact.id)).scope_level == ScopeLevel.SESSION


async def test_recall_promotion_count_is_configurable(open_memory: Callable[..., Any]) -> None:
    async with await open_memory(promotion_recall_count=2) as memory:
        fact = await memory.add(
            "The team uses trunk-based development", user_id="alice", importance=LOW, **S1
        )
        await recalled_ids(memory, "branching strategy", **S1A1)
        assert (await memory.get(fact.id)).scope_level == ScopeLevel.SESSION
        await recalled_ids(memory, "branching strategy", session_id="s1", agent_id="a2")
        assert (await memory.get(fact.id)).scope_level == ScopeLevel.USER


@pytest.mark.parametrize(("first", "second"), [
    ("The user's locker code is 4821", "The user's locker code is 9034"),
    ("The user's manager is Sarah", "The user's manager is Sandra"),
    ("Client 3 noted zq104 about tea", "Client 3 noted zq917 about tea"),
])
async def test_near_twins_that_name_different_numbers_or_names_are_two_facts(
    memory: HierarchicalMemory, first: str, second: str
) -> None:
    a = await memory.add(first, user_id="u")
    b = await memory.add(second, user_id="u")
    assert a.id != b.id
    assert sorted(m.content for m in await memory.query(MemoryFilter(user_id="u"))) == sorted([first, second])


async def test_a_paraphrase_naming_the_same_things_is_still_one_fact(memory: HierarchicalMemory) -> None:
    a = await memory.add("The user prefers Python for backend work", user_id="u")
    b = await memory.add("The user prefers Python for backend work.", user_id="u", session_id="s")
    assert b.id == a.id and b.reinforcement_count == 1


async def test_promotion_by_recall_does_not_absorb_a_near_twin_that_names_another_number(
    memory: HierarchicalMemory, embedder: OnnxEmbedder
) -> None:
    """The duplicate rule is one rule: a near twin naming another number is another fact, also when
    a memory climbs by use and sweeps its new subtree."""
    first, second = "The gym locker code of the user is 4821", "The gym locker code of the user is 9034"
    assert await cosine(embedder, first, second) >= memory.config.duplicate_similarity
    in_s1 = await memory.add(first, user_id="alice", importance=LOW, **S1)
    in_s2 = await memory.add(second, user_id="alice", importance=LOW, session_id="s2")
    for agent in ("a1", "a2", "a3"):
        await recalled_ids(memory, "locker code", session_id="s1", agent_id=agent)
    assert (await memory.get(in_s1.id)).scope_level == ScopeLevel.USER
    assert (await memory.get(in_s2.id)).is_current
    assert set(await recalled_ids(memory, "locker code", session_id="s2")) == {in_s1.id, in_s2.id}
