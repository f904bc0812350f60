"""Time and versions (docs/design.md, "Time and versions", "Idempotency" and "Provenance").

Every test runs against the real engine (SQLite, usearch, FTS5, MiniLM). Points in time are taken
from the memories the engine returns (``valid_from`` / ``valid_until``), never from the test's own
clock, so no test sleeps.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from memory_mcp import (
    AlreadySupersededError,
    HierarchicalMemory,
    InvalidTimeError,
    Memory,
    MemoryCategory,
    MemoryFilter,
    MemoryNotFoundError,
)
from memory_mcp.memory.scoring import estimate_tokens

USER = "alice"
CITIES = ["Paris", "Berlin", "Tokyo", "Oslo"]


async def _chain(memory: HierarchicalMemory, user: str = USER, **add_args: Any) -> list[Memory]:
    """'User lives in Paris' superseded three times; returns the stored versions as they are now."""
    first = await memory.add(f"User lives in {CITIES[0]}", user_id=user, **add_args)
    versions = [first]
    for city in CITIES[1:]:
        versions.append(await memory.supersede(versions[-1].id, f"User lives in {city}"))
    return [await memory.get(v.id) for v in versions]


def _between(earlier: datetime, later: datetime) -> datetime:
    assert later > earlier
    return earlier + (later - earlier) / 2


async def _everything(memory: HierarchicalMemory, user: str = USER) -> list[Memory]:
    return await memory.query(
        MemoryFilter(user_id=user, all_levels=True, include_superseded=True, include_expired=True)
    )


async def _current_contents(memory: HierarchicalMemory, user: str = USER, **flt: Any) -> list[str]:
    return [m.content for m in await memory.query(MemoryFilter(user_id=user, **flt))]


# -- current state and include_superseded ---------------------------------------------------------


async def test_current_query_of_a_four_version_chain_shows_only_the_newest(memory: HierarchicalMemory) -> None:
    versions = await _chain(memory)
    assert await _current_contents(memory) == ["User lives in Oslo"]
    assert [m.is_current for m in versions] == [False, False, False, True]
    assert [m.id for m in await memory.get_all(USER)] == [versions[-1].id]


async def test_include_superseded_shows_every_version_of_the_chain(memory: HierarchicalMemory) -> None:
    versions = await _chain(memory)
    found = await memory.query(MemoryFilter(user_id=USER, include_superseded=True))
    assert sorted(m.id for m in found) == sorted(v.id for v in versions)
    listed = await memory.get_all(USER, include_superseded=True)
    assert sorted(m.id for m in listed) == sorted(v.id for v in versions)


async def test_current_recall_never_returns_a_superseded_version_in_any_mode(memory: HierarchicalMemory) -> None:
    versions = await _chain(memory)
    for mode in ("hybrid", "semantic", "text"):
        results = await memory.recall("where does the user live", user_id=USER, mode=mode, top_k=10)
        assert [r.memory.id for r in results] == [versions[-1].id], mode
    results = await memory.recall("user lives", user_id=USER, include_superseded=True, top_k=10)
    assert sorted(r.memory.id for r in results) == sorted(v.id for v in versions)


# -- as_of ----------------------------------------------------------------------------------------


def _as_of_forms(when: datetime) -> dict[str, Any]:
    plus_two = timezone(timedelta(hours=2))
    return {
        "datetime": when,
        "datetime in another zone": when.astimezone(plus_two),
        "iso string": when.isoformat(),
        "iso string with Z": when.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "iso string in another zone": when.astimezone(plus_two).isoformat(),
        "epoch float": when.timestamp(),
    }


async def test_as_of_between_versions_returns_exactly_the_version_current_then(
    memory: HierarchicalMemory,
) -> None:
    versions = await _chain(memory)
    for i, version in enumerate(versions):
        assert version.valid_until is None or version.valid_until > version.valid_from
        later = versions[i + 1].valid_from if i + 1 < len(versions) else version.valid_from + timedelta(days=1)
        when = _between(version.valid_from, later)
        for form, as_of in _as_of_forms(when).items():
            found = await memory.query(MemoryFilter(user_id=USER, as_of=as_of))
            assert [m.id for m in found] == [version.id], (i, form, as_of)


async def test_as_of_before_the_first_version_returns_nothing(memory: HierarchicalMemory) -> None:
    versions = await _chain(memory)
    before = versions[0].valid_from - timedelta(seconds=1)
    for form, as_of in _as_of_forms(before).items():
        assert await memory.query(MemoryFilter(user_id=USER, as_of=as_of)) == [], form
        assert await memory.recall("where does the user live", user_id=USER, as_of=as_of) == [], form


async def test_as_of_ignores_include_superseded_and_still_returns_one_version(memory: HierarchicalMemory) -> None:
    versions = await _chain(memory)
    when = _between(versions[1].valid_from, versions[2].valid_from)
    found = await memory.query(MemoryFilter(user_id=USER, as_of=when, include_superseded=True))
    assert [m.id for m in found] == [versions[1].id]


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "text"])
async def test_recall_as_of_returns_the_version_current_then(memory: HierarchicalMemory, mode: str) -> None:
    versions = await _chain(memory)
    for i, version in enumerate(versions[:-1]):
        when = _between(version.valid_from, versions[i + 1].valid_from)
        for form, as_of in _as_of_forms(when).items():
            results = await memory.recall("user lives", user_id=USER, mode=mode, as_of=as_of, top_k=10)
            assert [r.memory.id for r in results] == [version.id], (i, form)


async def test_search_and_text_search_accept_as_of(memory: HierarchicalMemory) -> None:
    versions = await _chain(memory)
    when = _between(versions[1].valid_from, versions[2].valid_from)
    semantic = await memory.search("which city is the user's home", user_id=USER, as_of=when.isoformat())
    assert [r.memory.id for r in semantic] == [versions[1].id]
    text = await memory.text_search("lives", user_id=USER, as_of=when.timestamp())
    assert [r.memory.id for r in text] == [versions[1].id]
    assert text[0].content == "User lives in Berlin"


async def test_as_of_keeps_other_current_facts_that_existed_then(memory: HierarchicalMemory) -> None:
    pet = await memory.add("User owns a cat named Miso", user_id=USER)
    versions = await _chain(memory)
    when = _between(versions[0].valid_from, versions[1].valid_from)
    found = await memory.query(MemoryFilter(user_id=USER, as_of=when))
    assert sorted(m.id for m in found) == sorted([pet.id, versions[0].id])
    # A fact added after T is not shown as of T.
    assert [m.id for m in await memory.query(MemoryFilter(user_id=USER, as_of=pet.valid_from - timedelta(seconds=1)))] == []


async def test_valid_from_in_the_past_places_the_fact_in_time(memory: HierarchicalMemory) -> None:
    said = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    met = await memory.add("User met Caroline at a support group", user_id=USER, valid_from="2023-05-08T13:56:00Z")
    assert met.valid_from == said and met.created_at > said
    assert [m.id for m in await memory.query(MemoryFilter(user_id=USER, as_of=said + timedelta(days=1)))] == [met.id]
    assert await memory.query(MemoryFilter(user_id=USER, as_of=said - timedelta(days=1))) == []
    found = await memory.recall("support group", user_id=USER, as_of=said + timedelta(hours=1))
    assert [r.id for r in found] == [met.id]


@pytest.mark.parametrize("when", ["2999-01-01T00:00:00Z", "yesterday", -5, True])
async def test_valid_from_in_the_future_or_unreadable_is_refused_and_nothing_stored(
    memory: HierarchicalMemory, when: Any
) -> None:
    with pytest.raises(InvalidTimeError, match="valid_from"):
        await memory.add("User met Caroline", user_id=USER, valid_from=when)
    assert await _everything(memory) == []


# -- history ----------------------------------------------------------------------------------------


async def test_get_history_from_first_middle_and_last_member_is_the_same_chain_oldest_first(
    memory: HierarchicalMemory,
) -> None:
    versions = await _chain(memory)
    expected = [v.id for v in versions]
    for member in (versions[0], versions[1], versions[2], versions[3]):
        history = await memory.get_history(member.id)
        assert [m.id for m in history] == expected, member.content
        assert [m.content for m in history] == [f"User lives in {c}" for c in CITIES]


async def test_history_validity_is_contiguous_and_links_both_ways(memory: HierarchicalMemory) -> None:
    history = await memory.get_history((await _chain(memory))[1].id)
    for older, newer in zip(history, history[1:]):
        assert older.valid_until is not None
        assert older.valid_until == newer.valid_from
        assert older.superseded_by == newer.id
        assert newer.supersedes == older.id
    assert history[0].supersedes is None
    assert history[-1].valid_until is None and history[-1].superseded_by is None
    assert [m.valid_from for m in history] == sorted(m.valid_from for m in history)


async def test_history_of_a_memory_never_superseded_is_just_itself(memory: HierarchicalMemory) -> None:
    alone = await memory.add("User is left-handed", user_id=USER)
    await _chain(memory)
    assert [m.id for m in await memory.get_history(alone.id)] == [alone.id]


# -- what supersede keeps and overrides -----------------------------------------------------------


async def test_supersede_keeps_scope_category_importance_refs_and_metadata_by_default(
    memory: HierarchicalMemory,
) -> None:
    old = await memory.add(
        "User's team uses Jira", user_id=USER, session_id="s1", agent_id="planner",
        category=MemoryCategory.CONTEXT, importance=0.55, entity_refs=["jira", "team"],
        metadata={"source": "chat"},
    )
    assert old.agent_id == "planner"  # stored at AGENT scope (0.55 clears no promotion threshold)
    new = await memory.supersede(old.id, "User's team moved to Linear")
    assert (new.user_id, new.session_id, new.agent_id, new.turn_id) == (USER, "s1", "planner", None)
    assert new.scope_level == old.scope_level
    assert new.category == MemoryCategory.CONTEXT
    assert new.importance == pytest.approx(0.55)
    assert new.entity_refs == ["jira", "team"]
    assert new.metadata == {"source": "chat"}
    stored = await memory.get(new.id)
    assert (stored.category, stored.importance, stored.entity_refs, stored.agent_id) == (
        MemoryCategory.CONTEXT, pytest.approx(0.55), ["jira", "team"], "planner"
    )


async def test_supersede_overrides_category_importance_refs_and_metadata_when_given(
    memory: HierarchicalMemory,
) -> None:
    old = await memory.add(
        "User's team uses Jira", user_id=USER, session_id="s1", category="context", importance=0.4,
        entity_refs=["jira"], metadata={"source": "chat"},
    )
    new = await memory.supersede(
        old.id, "User decided the team moves to Linear", category="decision", importance=0.8,
        entity_refs=["linear"], metadata={"source": "meeting"},
    )
    assert new.category == MemoryCategory.DECISION
    assert new.importance == pytest.approx(0.8)
    assert new.entity_refs == ["linear"]
    assert new.metadata == {"source": "meeting"}
    assert new.session_id == "s1"  # the scope is still kept
    untouched = await memory.get(old.id)
    assert (untouched.category, untouched.importance, untouched.entity_refs, untouched.metadata) == (
        MemoryCategory.CONTEXT, pytest.approx(0.4), ["jira"], {"source": "chat"}
    )


async def test_supersede_with_empty_entity_refs_clears_them(memory: HierarchicalMemory) -> None:
    old = await memory.add("User's team uses Jira", user_id=USER, entity_refs=["jira"])
    new = await memory.supersede(old.id, "User's team uses nothing", entity_refs=[])
    assert new.entity_refs == []


# -- superseding what is no longer current --------------------------------------------------------


async def test_superseding_a_superseded_memory_raises_naming_the_current_version_and_stores_nothing(
    memory: HierarchicalMemory,
) -> None:
    old = await memory.add("User lives in Paris", user_id=USER)
    new = await memory.supersede(old.id, "User lives in Berlin")
    before = await _everything(memory)
    stats = await memory.stats(USER)
    with pytest.raises(AlreadySupersededError) as raised:
        await memory.supersede(old.id, "User lives in Rome")
    assert new.id in str(raised.value)
    assert await _everything(memory) == before
    assert await memory.stats(USER) == stats


async def test_superseding_an_old_version_of_a_long_chain_names_the_chain_s_current_version(
    memory: HierarchicalMemory,
) -> None:
    versions = await _chain(memory)
    before = await _everything(memory)
    with pytest.raises(AlreadySupersededError) as raised:
        await memory.supersede(versions[0].id, "User lives in Rome")
    # The caller must supersede the *current* version, so that is the one the message must name
    # (not merely the next version, which is itself superseded).
    assert versions[-1].id in str(raised.value)
    assert await _everything(memory) == before


async def test_two_concurrent_supersedes_of_one_memory_exactly_one_wins(memory: HierarchicalMemory) -> None:
    old = await memory.add("User lives in Paris", user_id=USER)
    outcomes = await asyncio.gather(
        memory.supersede(old.id, "User lives in Berlin"),
        memory.supersede(old.id, "User lives in Madrid"),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, Memory)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert isinstance(losers[0], AlreadySupersededError)
    assert winners[0].id in str(losers[0])
    history = await memory.get_history(old.id)
    assert [m.id for m in history] == [old.id, winners[0].id]
    assert (await memory.stats(USER)).total == 2
    assert await _current_contents(memory) == [winners[0].content]


async def test_many_concurrent_supersedes_leave_a_single_linear_chain(memory: HierarchicalMemory) -> None:
    old = await memory.add("User lives in Paris", user_id=USER)
    outcomes = await asyncio.gather(
        *(memory.supersede(old.id, f"User lives in city number {i}") for i in range(5)),
        return_exceptions=True,
    )
    assert sum(isinstance(o, Memory) for o in outcomes) == 1
    assert all(isinstance(o, AlreadySupersededError) for o in outcomes if not isinstance(o, Memory))
    assert len(await memory.get_history(old.id)) == 2
    assert len(await memory.query(MemoryFilter(user_id=USER))) == 1


# -- forgetting -------------------------------------------------------------------------------------


async def test_deleting_a_middle_version_relinks_its_neighbours(memory: HierarchicalMemory) -> None:
    v1, v2, v3, v4 = await _chain(memory)
    assert await memory.delete(v2.id) == 1
    for member in (v1, v3, v4):
        history = await memory.get_history(member.id)
        assert [m.id for m in history] == [v1.id, v3.id, v4.id]
    first, third, fourth = await memory.get_history(v4.id)
    assert first.superseded_by == v3.id and third.supersedes == v1.id
    assert third.superseded_by == v4.id and fourth.supersedes == v3.id
    assert first.valid_until is not None  # still a closed version
    assert await _current_contents(memory) == ["User lives in Oslo"]


async def test_deleting_the_first_version_leaves_the_rest_as_a_chain(memory: HierarchicalMemory) -> None:
    v1, v2, v3, v4 = await _chain(memory)
    await memory.delete(v1.id)
    for member in (v2, v3, v4):
        assert [m.id for m in await memory.get_history(member.id)] == [v2.id, v3.id, v4.id]
    assert (await memory.get(v2.id)).supersedes is None


async def test_deleting_the_newest_version_leaves_the_older_ones_closed(memory: HierarchicalMemory) -> None:
    v1, v2, v3, v4 = await _chain(memory)
    await memory.delete(v4.id)
    previous = await memory.get(v3.id)
    assert previous.valid_until is not None and not previous.is_current
    assert previous.superseded_by is None  # it no longer points at a memory that does not exist
    assert await _current_contents(memory) == []
    assert [m.id for m in await memory.get_history(v1.id)] == [v1.id, v2.id, v3.id]
    assert await memory.recall("where does the user live", user_id=USER) == []


async def test_deleting_with_whole_chain_removes_every_version(memory: HierarchicalMemory) -> None:
    other = await memory.add("User owns a cat named Miso", user_id=USER)
    versions = await _chain(memory)
    assert await memory.delete(versions[1].id, whole_chain=True) == 4
    for version in versions:
        with pytest.raises(MemoryNotFoundError):
            await memory.get(version.id)
        with pytest.raises(MemoryNotFoundError):
            await memory.get_history(version.id)
    assert [m.id for m in await _everything(memory)] == [other.id]
    assert (await memory.stats(USER)).total == 1


async def test_forget_is_delete(memory: HierarchicalMemory) -> None:
    stored = await memory.add("User is allergic to peanuts", user_id=USER)
    assert await memory.forget(stored.id) == 1
    with pytest.raises(MemoryNotFoundError):
        await memory.get(stored.id)


async def test_a_deleted_memory_is_gone_from_every_kind_of_recall_and_get_raises(
    memory: HierarchicalMemory,
) -> None:
    keep = await memory.add("User enjoys hiking in the Alps", user_id=USER)
    gone = await memory.add("User is allergic to peanuts", user_id=USER, importance=0.9)
    assert (await memory.get(gone.id)).id == gone.id  # now in the cache too
    await memory.delete(gone.id)
    query = "peanuts allergy"
    for mode in ("hybrid", "semantic", "text"):
        for superseded in (False, True):
            results = await memory.recall(query, user_id=USER, mode=mode, include_superseded=superseded, top_k=10)
            assert gone.id not in [r.memory.id for r in results], (mode, superseded)
    assert gone.id not in [r.memory.id for r in await memory.search(query, user_id=USER)]
    assert gone.id not in [r.memory.id for r in await memory.text_search("peanuts", user_id=USER)]
    assert [m.id for m in await _everything(memory)] == [keep.id]
    with pytest.raises(MemoryNotFoundError) as raised:
        await memory.get(gone.id)
    assert gone.id in str(raised.value)
    with pytest.raises(MemoryNotFoundError):
        await memory.delete(gone.id)


async def test_a_deleted_superseded_version_is_gone_from_as_of_recall(memory: HierarchicalMemory) -> None:
    v1, v2, v3, _ = await _chain(memory)
    when = _between(v2.valid_from, v3.valid_from)
    await memory.delete(v2.id)
    assert v2.id not in [m.id for m in await memory.query(MemoryFilter(user_id=USER, as_of=when))]
    results = await memory.recall("user lives", user_id=USER, as_of=when, top_k=10)
    assert v2.id not in [r.memory.id for r in results]


async def test_get_sees_every_relink_even_when_the_versions_were_already_cached(
    memory: HierarchicalMemory,
) -> None:
    v1 = await memory.add("User lives in Paris", user_id=USER)
    await memory.get(v1.id)
    v2 = await memory.supersede(v1.id, "User lives in Berlin")
    assert (await memory.get(v1.id)).superseded_by == v2.id
    await memory.get(v2.id)
    v3 = await memory.supersede(v2.id, "User lives in Tokyo")
    assert (await memory.get(v2.id)).valid_until is not None
    for version in (v1, v2, v3):
        await memory.get(version.id)
    await memory.delete(v2.id)
    assert (await memory.get(v1.id)).superseded_by == v3.id
    assert (await memory.get(v3.id)).supersedes == v1.id
    await memory.delete(v3.id, whole_chain=True)
    with pytest.raises(MemoryNotFoundError):
        await memory.get(v1.id)


# -- clear ------------------------------------------------------------------------------------------


async def _populate_positions(memory: HierarchicalMemory) -> dict[str, Memory]:
    stored = {
        "user": await memory.add("User's name is Alice", user_id=USER, importance=0.5),
        "s1": await memory.add("Debugging the payment service today", user_id=USER, session_id="s1"),
        "s1-agent": await memory.add("Planner agent drafted a migration plan", user_id=USER,
                                     session_id="s1", agent_id="planner"),
        "s1-turn": await memory.add("Just pasted a stack trace", user_id=USER, session_id="s1",
                                    agent_id="planner", turn_id="t1", importance=0.2),
        "s2": await memory.add("Writing a blog post about gardening", user_id=USER, session_id="s2"),
        "bob": await memory.add("Bob likes sailing", user_id="bob", session_id="s1"),
    }
    stored["s1-v2"] = await memory.supersede(stored["s1"].id, "Debugging the billing service today")
    return stored


async def test_clear_of_a_session_removes_only_that_session_subtree(memory: HierarchicalMemory) -> None:
    stored = await _populate_positions(memory)
    assert stored["s1-turn"].turn_id == "t1" and stored["s1-agent"].agent_id == "planner"
    removed = await memory.clear(USER, "s1")
    assert removed == 4  # two versions of the session memory, the agent's and the turn's
    left = await _everything(memory)
    assert sorted(m.id for m in left) == sorted([stored["user"].id, stored["s2"].id])
    assert [m.id for m in await _everything(memory, "bob")] == [stored["bob"].id]
    for name in ("s1", "s1-v2", "s1-agent", "s1-turn"):
        with pytest.raises(MemoryNotFoundError):
            await memory.get(stored[name].id)
    results = await memory.recall("debugging billing service", user_id=USER, session_id="s1", top_k=10)
    assert {r.memory.id for r in results} <= {stored["user"].id}


async def test_clear_of_an_agent_removes_only_that_agent_subtree(memory: HierarchicalMemory) -> None:
    stored = await _populate_positions(memory)
    assert await memory.clear(USER, "s1", "planner") == 2
    left = {m.id for m in await _everything(memory)}
    assert left == {stored["user"].id, stored["s1-v2"].id, stored["s1"].id, stored["s2"].id}


async def test_clear_of_a_user_removes_everything_of_that_user_and_nothing_of_others(
    memory: HierarchicalMemory,
) -> None:
    stored = await _populate_positions(memory)
    assert await memory.clear(USER) == 6
    assert await _everything(memory) == []
    assert (await memory.stats(USER)).total == 0
    assert await memory.recall("name", user_id=USER) == []
    assert [m.id for m in await _everything(memory, "bob")] == [stored["bob"].id]
    assert await memory.clear(USER) == 0


# -- stats ------------------------------------------------------------------------------------------


async def test_stats_after_a_known_sequence(memory: HierarchicalMemory) -> None:
    job = await memory.add("User works at Google", user_id=USER, category="fact")
    job2 = await memory.supersede(job.id, "User works at Anthropic")
    await memory.supersede(job2.id, "User decided to join Anthropic's research team", category="decision")
    await memory.add("User prefers dark mode", user_id=USER, session_id="s1", category="preference")
    await memory.add("Looking at the checkout bug", user_id=USER, session_id="s1", turn_id="t1",
                     category="context", importance=0.1)
    # A later turn of the same session ends turn t1: its memory expires.
    await memory.add("Now reviewing the refund flow", user_id=USER, session_id="s1", turn_id="t2",
                     category="context", importance=0.1)
    await memory.add("Bob likes sailing", user_id="bob", category="preference")

    stats = await memory.stats(USER)
    assert (stats.total, stats.current, stats.superseded, stats.expired) == (6, 3, 2, 1)
    assert stats.categories == {"decision": 1, "preference": 1, "context": 1}
    assert stats.scope_levels == {"user": 1, "session": 1, "turn": 1}
    assert stats.users == 1
    assert stats["total"] == 6

    everyone = await memory.stats()
    assert (everyone.total, everyone.current, everyone.users) == (7, 4, 2)
    assert everyone.categories == {"decision": 1, "preference": 2, "context": 1}


async def test_stats_of_a_user_without_memories_are_zero(memory: HierarchicalMemory) -> None:
    await memory.add("Bob likes sailing", user_id="bob")
    stats = await memory.stats("nobody")
    assert (stats.total, stats.current, stats.superseded, stats.expired, stats.users) == (0, 0, 0, 0, 0)
    assert stats.categories == {} and stats.scope_levels == {}


# -- idempotency ------------------------------------------------------------------------------------


async def test_retried_add_with_an_idempotency_key_returns_the_first_memory_and_stores_nothing(
    memory: HierarchicalMemory,
) -> None:
    first = await memory.add("User likes green tea", user_id=USER, idempotency_key="req-1")
    again = await memory.add("User likes green tea", user_id=USER, idempotency_key="req-1")
    assert again.id == first.id
    # A retry is not a second statement of the fact: it does not reinforce it either.
    assert again.reinforcement_count == 0
    assert (await memory.get(first.id)).reinforcement_count == 0
    assert (await memory.stats(USER)).total == 1


async def test_idempotency_key_returns_the_first_result_even_if_the_retry_differs(
    memory: HierarchicalMemory,
) -> None:
    first = await memory.add("User likes green tea", user_id=USER, idempotency_key="req-1")
    again = await memory.add("User collects vinyl records", user_id=USER, idempotency_key="req-1")
    assert again.id == first.id and again.content == "User likes green tea"
    assert (await memory.stats(USER)).total == 1


async def test_idempotency_keys_belong_to_one_user(memory: HierarchicalMemory) -> None:
    mine = await memory.add("User likes green tea", user_id=USER, idempotency_key="req-1")
    theirs = await memory.add("Bob likes sailing", user_id="bob", idempotency_key="req-1")
    assert theirs.id != mine.id and theirs.user_id == "bob" and theirs.content == "Bob likes sailing"


async def test_retried_supersede_with_an_idempotency_key_returns_the_same_new_version(
    memory: HierarchicalMemory,
) -> None:
    old = await memory.add("User lives in Paris", user_id=USER)
    new = await memory.supersede(old.id, "User lives in Berlin", idempotency_key="move-1")
    again = await memory.supersede(old.id, "User lives in Berlin", idempotency_key="move-1")
    assert again.id == new.id
    assert (await memory.stats(USER)).total == 2
    assert [m.id for m in await memory.get_history(old.id)] == [old.id, new.id]


async def test_concurrent_retries_of_an_idempotent_add_store_one_memory(memory: HierarchicalMemory) -> None:
    results = await asyncio.gather(
        *(memory.add("User likes green tea", user_id=USER, idempotency_key="req-9") for _ in range(3))
    )
    assert len({m.id for m in results}) == 1
    assert (await memory.stats(USER)).total == 1
    assert (await memory.get(results[0].id)).reinforcement_count == 0


async def test_concurrent_retries_of_an_idempotent_supersede_all_return_the_one_new_version(
    memory: HierarchicalMemory,
) -> None:
    old = await memory.add("User lives in Paris", user_id=USER)
    outcomes = await asyncio.gather(
        *(memory.supersede(old.id, "User lives in Berlin", idempotency_key="move-9") for _ in range(2)),
        return_exceptions=True,
    )
    assert all(isinstance(o, Memory) for o in outcomes), outcomes
    assert len({o.id for o in outcomes if isinstance(o, Memory)}) == 1
    assert (await memory.stats(USER)).total == 2


# -- provenance -------------------------------------------------------------------------------------


async def test_add_records_the_given_provenance_and_when(memory: HierarchicalMemory) -> None:
    stored = await memory.add(
        "User likes green tea", user_id=USER, provenance={"tool": "remember", "client": "claude-desktop"}
    )
    fetched = await memory.get(stored.id)
    assert fetched.provenance["tool"] == "remember"
    assert fetched.provenance["client"] == "claude-desktop"
    recorded = datetime.fromisoformat(fetched.provenance["recorded_at"])
    assert abs((recorded - fetched.created_at).total_seconds()) < 0.001


async def test_supersede_records_its_own_provenance(memory: HierarchicalMemory) -> None:
    old = await memory.add("User lives in Paris", user_id=USER, provenance={"tool": "remember"})
    new = await memory.supersede(old.id, "User lives in Berlin", provenance={"tool": "supersede", "agent": "x"})
    assert {k: v for k, v in new.provenance.items() if k != "recorded_at"} == {"tool": "supersede", "agent": "x"}
    assert datetime.fromisoformat(new.provenance["recorded_at"]) >= datetime.fromisoformat(
        old.provenance["recorded_at"]
    )
    assert (await memory.get(old.id)).provenance["tool"] == "remember"


async def test_provenance_records_when_even_if_none_is_given(memory: HierarchicalMemory) -> None:
    stored = await memory.add("User likes green tea", user_id=USER)
    assert set(stored.provenance) == {"recorded_at"}


# -- token budget -----------------------------------------------------------------------------------


_NOTES = [
    "User drinks coffee",
    "User likes strong espresso in the morning before work",
    "User's favourite coffee shop is a small roastery near the train station that serves pour-over",
    "User dislikes decaf",
    "User buys coffee beans from Ethiopia and Colombia every month and grinds them at home with a burr grinder",
    "User owns a cat",
]


async def _coffee_memories(memory: HierarchicalMemory) -> None:
    for note in _NOTES:
        await memory.add(note, user_id=USER)


def _greedy(ranked: list[Any], budget: int) -> list[str]:
    kept, left = [], budget
    for result in ranked:
        cost = estimate_tokens(result.content)
        if cost <= left:
            kept.append(result.memory.id)
            left -= cost
    return kept


@pytest.mark.parametrize("budget", [5, 12, 20, 35, 1000])
async def test_token_budget_returns_the_best_results_that_fit_best_first(
    memory: HierarchicalMemory, budget: int
) -> None:
    await _coffee_memories(memory)
    unbounded = await memory.recall("coffee", user_id=USER, top_k=20)
    assert len(unbounded) == len(_NOTES)
    bounded = await memory.recall("coffee", user_id=USER, top_k=20, token_budget=budget)
    assert sum(estimate_tokens(r.content) for r in bounded) <= budget
    assert [r.memory.id for r in bounded] == _greedy(unbounded, budget)
    assert [r.score for r in bounded] == sorted((r.score for r in bounded), reverse=True)


async def test_token_budget_smaller_than_every_memory_returns_nothing(memory: HierarchicalMemory) -> None:
    await memory.add(
        "User buys coffee beans from Ethiopia and Colombia every month and grinds them at home", user_id=USER
    )
    assert await memory.recall("coffee", user_id=USER, token_budget=3) == []


async def test_token_budget_still_respects_top_k(memory: HierarchicalMemory) -> None:
    await _coffee_memories(memory)
    bounded = await memory.recall("coffee", user_id=USER, top_k=2, token_budget=1000)
    assert len(bounded) == 2
