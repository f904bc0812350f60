"""The MemoryStore contract: what every store (its StoreReader and StoreWriter sessions) must do.

Visibility is checked against the rule as Python states it (``scope.visible_from`` and
``scope.within``) over every combination of session, agent and turn, for two users.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from memory_mcp.memory.duplicates import content_hash
from memory_mcp.memory.models import Memory, MemoryCategory, ScopeLevel
from memory_mcp.memory.ports import (
    BrokenLink,
    MemoryFilter,
    MemoryStore,
    Move,
    NewVersion,
    Selection,
    Stored,
    StoreReader,
    StoreWriter,
    VectorFile,
)
from memory_mcp.memory.scope import Position, visible_from, within
from memory_mcp.memory.validation import memory_filter

Add = Callable[..., Awaitable[Stored]]
NewVersionFactory = Callable[..., NewVersion]

T0 = 1_700_000_000.0  # a whole second, so that boundaries compare exactly in any engine
LATER = 4_000_000_000.0  # in 2096: an expiry still ahead


def selection(user_key: int, *filters: MemoryFilter, now: float | None = None) -> Selection:
    """The selection of these filters, checked as the rules check them before a store sees them."""
    return Selection(user_key, tuple(memory_filter(f) for f in filters), time.time() if now is None else now)


def everything(user_id: str, **fields: Any) -> MemoryFilter:
    """The user's whole subtree (current versions, unless ``fields`` say otherwise)."""
    return MemoryFilter(user_id=user_id, all_levels=True, **fields)


def from_(position: Position, *, all_levels: bool = False) -> MemoryFilter:
    return MemoryFilter(
        user_id=position.user_id, session_id=position.session_id, agent_id=position.agent_id,
        turn_id=position.turn_id, all_levels=all_levels,
    )


async def ids(store: MemoryStore, within_: Selection, **page: Any) -> list[str]:
    async with store.reading() as db:
        return [m.id for m in await db.select(within_, **page)]


async def fetch(store: MemoryStore, memory_id: str) -> Memory:
    async with store.reading() as db:
        found = await db.get(memory_id)
    assert found is not None, f"{memory_id} is not stored"
    return found.memory


# -- the sessions and users ----------------------------------------------------------------------


def _operations(protocol: type) -> set[str]:
    return {name for klass in protocol.__mro__ if klass.__module__ == StoreReader.__module__
            for name, value in vars(klass).items() if callable(value) and not name.startswith("_")}


async def test_sessions_offer_every_operation_of_the_ports(store: MemoryStore) -> None:
    async with store.reading() as db:
        assert {name for name in _operations(StoreReader) if not hasattr(db, name)} == set()
    async with store.transaction() as db:
        assert {name for name in _operations(StoreWriter) if not hasattr(db, name)} == set()
    assert isinstance(store.location, str) and store.location


async def test_ensure_user_is_idempotent_and_unknown_users_have_no_key(store: MemoryStore) -> None:
    async with store.transaction() as db:
        alice = await db.ensure_user("alice")
        assert await db.ensure_user("alice") == alice
        bob = await db.ensure_user("bob")
    assert alice != bob
    async with store.reading() as db:
        assert await db.user_key("alice") == alice
        assert await db.user_key("carol") is None
        assert sorted(await db.user_keys()) == sorted([alice, bob])


async def test_meta_values_are_stored_and_overwritten(store: MemoryStore) -> None:
    async with store.transaction() as db:
        assert await db.get_meta("model") is None
        await db.set_meta("model", "a")
        await db.set_meta("model", "b")
    async with store.reading() as db:
        assert await db.get_meta("model") == "b"


# -- writing and reading one memory --------------------------------------------------------------


@pytest.mark.parametrize("with_vector", [True, False], ids=["embedded", "not-embedded"])
async def test_an_inserted_version_reads_back_with_every_field(
    store: MemoryStore, new_version: NewVersionFactory, with_vector: bool
) -> None:
    async with store.transaction() as db:
        user_key = await db.ensure_user("alice")
        version = new_version(
            user_key, "alice", "Zoë prefers the 07:15 train — not the bus",
            embedding=np.linspace(-1, 1, 8, dtype=np.float32) / 2 if with_vector else None,
            session_id="s1", agent_id="a1", turn_id="t1", category=MemoryCategory.DECISION, importance=0.37,
            entity_refs=["Zoë", "ACME Corp"],
            metadata={"source": "chat", "nested": {"n": [1, 2.5, None, True]}, "ü": "✓"},
            provenance={"tool": "contract"}, context="said while planning the commute",
            created_at=datetime(2024, 2, 29, 23, 59, 59, 999999, UTC),
            valid_from=datetime(2024, 1, 1, 0, 0, 0, 1, UTC),
            valid_until=datetime(2024, 3, 1, 12, 30, 15, 123457, UTC),
            expires_at=datetime(2031, 6, 30, 8, 0, 0, 500000, UTC),
            supersedes="earlier-id", superseded_by="later-id", origin_level=ScopeLevel.TURN,
            origin_session_id="s0", origin_agent_id="a0", origin_turn_id="t0",
            promoted_at=datetime(2024, 2, 1, 1, 2, 3, 456789, UTC), reinforcement_count=3,
        )
        key = await db.insert(version)
    async with store.reading() as db:
        assert await db.get(version.memory.id) == Stored(key, user_key, version.memory)
        assert await db.by_keys([key]) == {key: version.memory}
        assert await db.contents([key]) == {key: version.memory.content}
        assert await db.count_memories() == 1


async def test_times_keep_their_microseconds(store: MemoryStore, new_version: NewVersionFactory) -> None:
    rng = np.random.default_rng(7)
    seconds = rng.integers(631_152_000, 4_102_444_800, 200)  # 1990 to 2100
    micros = rng.integers(0, 1_000_000, 200)
    times = [datetime.fromtimestamp(int(t), UTC).replace(microsecond=int(us))
             for t, us in zip(seconds, micros, strict=True)]
    times += [datetime(2024, 1, 1, 0, 0, 0, us, UTC) for us in (0, 1, 499999, 500000, 999999)]
    async with store.transaction() as db:
        user_key = await db.ensure_user("alice")
        versions = [
            new_version(user_key, "alice", f"at {t}", created_at=t, valid_from=t, expires_at=t) for t in times
        ]
        keys = [await db.insert(v) for v in versions]
    async with store.reading() as db:
        found = await db.by_keys(keys)
    wrong = [
        (t, got) for t, key in zip(times, keys, strict=True)
        if (got := (found[key].created_at, found[key].valid_from, found[key].expires_at)) != (t, t, t)
    ]
    assert wrong == []


async def test_unknown_ids_and_keys_are_not_found(store: MemoryStore, add: Add) -> None:
    stored = await add("alice", "Likes tea")
    async with store.reading() as db:
        assert await db.get("no-such-id") is None
        assert await db.by_keys([stored.key, stored.key + 1000]) == {stored.key: stored.memory}
        assert await db.by_keys([]) == {}
        assert await db.contents([stored.key + 1000]) == {}


async def test_keys_are_never_reused(store: MemoryStore, add: Add) -> None:
    first = await add("alice", "one")
    async with store.transaction() as db:
        assert await db.delete([first.key]) == 1
    second = await add("alice", "two")
    assert second.key != first.key


# -- selections ----------------------------------------------------------------------------------

PLACES = [(s, a, t) for s in (None, "s1", "s2") for a in (None, "a1", "a2") for t in (None, "t1", "t2")]
# and positions where nothing was stored: a new session, a new agent, a new turn
ELSEWHERE = [("s3", None, None), ("s1", "a3", None), ("s1", "a1", "t3"), ("s3", "a1", "t1")]


async def _one_memory_per_place(
    store: MemoryStore, new_version: NewVersionFactory
) -> dict[str, list[Memory]]:
    stored: dict[str, list[Memory]] = {}
    async with store.transaction() as db:
        for user in ("alice", "bob"):
            user_key = await db.ensure_user(user)
            for s, a, t in PLACES:
                version = new_version(
                    user_key, user, f"{user} at {s}/{a}/{t}", session_id=s, agent_id=a, turn_id=t
                )
                await db.insert(version)
                stored.setdefault(user, []).append(version.memory)
    return stored


async def test_selections_show_what_the_visibility_rule_shows_from_every_position(
    store: MemoryStore, new_version: NewVersionFactory
) -> None:
    stored = await _one_memory_per_place(store, new_version)
    every = [m for memories in stored.values() for m in memories]
    wrong = {}
    for user in ("alice", "bob"):
        async with store.reading() as db:
            user_key = await db.user_key(user)
        assert user_key is not None
        for s, a, t in PLACES + ELSEWHERE:
            position = Position(user, s, a, t)
            for all_levels, rule in ((False, visible_from), (True, within)):
                expected = {m.id for m in every if rule(m, position)}
                got = await ids(store, selection(user_key, from_(position, all_levels=all_levels)))
                if set(got) != expected or len(got) != len(expected):
                    wrong[(user, s, a, t, rule.__name__)] = (
                        sorted(m.content for m in every if m.id in set(got) ^ expected)
                    )
    assert wrong == {}


async def test_a_selection_of_several_filters_is_their_union(
    store: MemoryStore, new_version: NewVersionFactory
) -> None:
    stored = await _one_memory_per_place(store, new_version)
    async with store.reading() as db:
        user_key = await db.user_key("alice")
    assert user_key is not None
    positions = [Position("alice", *place) for place in PLACES + ELSEWHERE]
    for here, there in zip(positions, reversed(positions), strict=True):
        # as duplicates are sought: on the path of one position, or below another
        expected = {m.id for m in stored["alice"] if visible_from(m, here) or within(m, there)}
        got = await ids(store, selection(user_key, from_(here), from_(there, all_levels=True)))
        assert sorted(got) == sorted(expected), (here, there)


async def test_only_current_versions_are_selected_unless_superseded_or_expired_are_asked_for(
    store: MemoryStore, add: Add
) -> None:
    current = await add("alice", "current")
    superseded = await add("alice", "superseded", valid_until=T0 - 10, superseded_by="whatever")
    expired = await add("alice", "expired", expires_at=T0 - 1)
    expiring_now = await add("alice", "expires exactly now", expires_at=T0)
    later = await add("alice", "expires later", expires_at=T0 + 100)
    user_key = current.user_key

    def select(**fields: Any) -> Awaitable[list[str]]:
        return ids(store, selection(user_key, everything("alice", **fields), now=T0))

    assert set(await select()) == {current.memory.id, later.memory.id}
    assert set(await select(include_superseded=True)) == {
        current.memory.id, later.memory.id, superseded.memory.id
    }
    assert set(await select(include_expired=True)) == {
        current.memory.id, later.memory.id, expired.memory.id, expiring_now.memory.id
    }
    assert len(await select(include_superseded=True, include_expired=True)) == 5


async def test_as_of_selects_the_versions_current_and_unexpired_at_that_time(
    store: MemoryStore, add: Add
) -> None:
    old = await add("alice", "lived in Lyon", valid_from=T0, valid_until=T0 + 100)
    new = await add("alice", "lives in Paris", valid_from=T0 + 100)
    brief = await add("alice", "was at a conference", valid_from=T0, expires_at=T0 + 50)
    future = await add("alice", "has a new job", valid_from=T0 + 200)
    memories = [old, new, brief, future]

    def then(t: float) -> set[str]:
        return {
            s.memory.id for s in memories
            if s.memory.valid_from.timestamp() <= t
            and (s.memory.valid_until is None or s.memory.valid_until.timestamp() > t)
            and (s.memory.expires_at is None or s.memory.expires_at.timestamp() > t)
        }

    assert then(T0 + 10) == {old.memory.id, brief.memory.id}  # the rule as this test states it
    for t in (T0 - 1, T0, T0 + 10, T0 + 50, T0 + 99, T0 + 100, T0 + 250):
        as_of = datetime.fromtimestamp(t, UTC)
        got = await ids(store, selection(old.user_key, everything("alice", as_of=as_of), now=T0 + 1000))
        assert set(got) == then(t), datetime.fromtimestamp(t, UTC)


async def test_categories_levels_importance_and_entity_refs_narrow_a_selection(
    store: MemoryStore, add: Add
) -> None:
    tea = await add("alice", "Likes tea", category=MemoryCategory.PREFERENCE, importance=0.9,
                    entity_refs=["Paris"])
    trip = await add("alice", "Trip to Berlin", session_id="s1", category=MemoryCategory.FACT, importance=0.3,
                     entity_refs=["Berlin", "Paris"])
    move = await add("alice", "Moving in May", category=MemoryCategory.DECISION, importance=0.6)
    await add("bob", "Bob likes Paris", category=MemoryCategory.PREFERENCE, importance=1.0,
              entity_refs=["Paris"])
    user_key = tea.user_key

    async def select(**fields: Any) -> set[str]:
        return set(await ids(store, selection(user_key, everything("alice", **fields))))

    assert await select(categories=["preference", MemoryCategory.DECISION]) == {tea.memory.id, move.memory.id}
    assert await select(categories=[]) == set()
    assert await select(scope_levels=["session"]) == {trip.memory.id}
    assert await select(scope_levels=[ScopeLevel.USER]) == {tea.memory.id, move.memory.id}
    assert await select(min_importance=0.6) == {tea.memory.id, move.memory.id}
    assert await select(entity_refs=["Paris"]) == {tea.memory.id, trip.memory.id}
    assert await select(entity_refs=["Berlin", "Rome"]) == {trip.memory.id}
    assert await select(categories=["fact", "preference"], min_importance=0.5) == {tea.memory.id}


async def test_a_filters_user_limit_and_offset_play_no_part_in_a_selection(
    store: MemoryStore, add: Add
) -> None:
    alice = [await add("alice", f"a{i}") for i in range(3)]
    await add("bob", "b")
    odd = MemoryFilter(user_id="bob", all_levels=True, limit=1, offset=2)
    assert set(await ids(store, selection(alice[0].user_key, odd))) == {s.memory.id for s in alice}


async def test_selected_memories_come_newest_first_and_page_with_limit_and_offset(
    store: MemoryStore, add: Add
) -> None:
    made = [await add("alice", f"memory {i}", created_at=T0 + i) for i in range(5)]
    twins = [await add("alice", f"twin {i}", created_at=T0 + 10) for i in range(2)]  # created at once: by key
    newest_first = [twins[1], twins[0], *reversed(made)]
    assert twins[1].key > twins[0].key
    everyone = selection(made[0].user_key, everything("alice"))
    expected = [s.memory.id for s in newest_first]
    assert await ids(store, everyone) == expected
    assert await ids(store, everyone, limit=3) == expected[:3]
    assert await ids(store, everyone, limit=2, offset=3) == expected[3:5]
    assert await ids(store, everyone, offset=5) == expected[5:]
    assert await ids(store, everyone, limit=5, offset=10) == []
    async with store.reading() as db:
        assert await db.select(everyone) == [s.memory for s in newest_first]
        assert sorted(await db.select_keys(everyone)) == sorted(s.key for s in newest_first)


async def test_filter_keys_keeps_the_selected_keys_only(store: MemoryStore, add: Add) -> None:
    mine = await add("alice", "mine")
    in_s1 = await add("alice", "in s1", session_id="s1")
    in_s2 = await add("alice", "in s2", session_id="s2")
    closed = await add("alice", "closed", valid_until=T0)
    theirs = await add("bob", "theirs")
    keys = [mine.key, in_s1.key, in_s2.key, closed.key, theirs.key, theirs.key + 1000]
    async with store.reading() as db:
        s1 = selection(mine.user_key, from_(Position("alice", "s1")))
        assert await db.filter_keys(keys, s1) == {mine.key, in_s1.key}
        assert await db.filter_keys([], s1) == set()


async def test_same_text_finds_the_oldest_selected_memory_with_that_text(
    store: MemoryStore, add: Add
) -> None:
    await add("alice", "likes green tea", session_id="s2")  # oldest, but another session's
    await add("alice", "Likes green tea", valid_until=T0, superseded_by="x")  # not current
    await add("bob", "likes green tea")  # another user's
    oldest = await add("alice", "Likes  GREEN tea")
    await add("alice", "likes green tea")
    here = selection(oldest.user_key, from_(Position("alice", "s1")))
    async with store.reading() as db:
        assert await db.same_text(here, content_hash("likes green tea")) == oldest
        assert await db.same_text(here, content_hash("likes black tea")) is None


# -- versions and chains -------------------------------------------------------------------------


async def test_closing_a_version_twice_is_refused(store: MemoryStore, add: Add) -> None:
    v1 = await add("alice", "Lives in Lyon")
    async with store.transaction() as db:
        assert await db.close_version(v1.key, T0, "v2") is True
        assert await db.close_version(v1.key, T0 + 5, "v3") is False
    closed = await fetch(store, v1.memory.id)
    assert (closed.valid_until, closed.superseded_by) == (datetime.fromtimestamp(T0, UTC), "v2")


async def _chain_of_three(store: MemoryStore, add: Add) -> list[Stored]:
    """v1 → v2 → v3, each closed in favour of the next, as a supersession stores them."""
    versions = [await add("alice", "Lives in Lyon", valid_from=T0)]
    for i, content in enumerate(["Lives in Paris", "Lives in Nice"], start=1):
        previous = versions[-1]
        successor_id = str(uuid.uuid4())
        async with store.transaction() as db:
            assert await db.close_version(previous.key, T0 + 10 * i, successor_id)
        versions.append(await add("alice", content, id=successor_id, supersedes=previous.memory.id,
                                  valid_from=T0 + 10 * i))
    async with store.reading() as db:
        return [found for v in versions if (found := await db.get(v.memory.id)) is not None]


async def test_a_chain_holds_every_version_oldest_first_keyed_by_its_first(
    store: MemoryStore, add: Add
) -> None:
    v1, v2, v3 = await _chain_of_three(store, add)
    async with store.reading() as db:
        assert [await db.chain_key(v.key) for v in (v1, v2, v3)] == [v1.key] * 3
        assert await db.chain(v1.key) == [v1, v2, v3]
        assert await db.current_in_chain(v1.key) == v3.memory.id
        assert await db.broken_links() == []
    assert (v1.memory.superseded_by, v2.memory.supersedes, v2.memory.superseded_by, v3.memory.supersedes) == (
        v2.memory.id, v1.memory.id, v3.memory.id, v2.memory.id
    )


async def test_a_version_cannot_join_another_users_chain(store: MemoryStore, add: Add) -> None:
    v1 = await add("alice", "Lives in Lyon")
    intruder = await add("bob", "Lives in Rome", supersedes=v1.memory.id)
    async with store.reading() as db:
        assert await db.chain_key(intruder.key) == intruder.key
        assert [s.key for s in await db.chain(v1.key)] == [v1.key]


async def test_a_chain_is_ordered_by_valid_from_then_key(store: MemoryStore, add: Add) -> None:
    v1 = await add("alice", "Lives in Lyon", valid_from=T0 + 50)
    async with store.transaction() as db:
        await db.close_version(v1.key, T0 + 60, "later")
    backdated = await add("alice", "Lived in Nice", supersedes=v1.memory.id, valid_from=T0)
    same_time = await add("alice", "Lived in Nice too", supersedes=v1.memory.id, valid_from=T0)
    async with store.reading() as db:
        assert [s.key for s in await db.chain(v1.key)] == [backdated.key, same_time.key, v1.key]


async def test_forgetting_a_middle_version_links_its_neighbours(store: MemoryStore, add: Add) -> None:
    v1, v2, v3 = await _chain_of_three(store, add)
    async with store.transaction() as db:
        await db.relink_around(v2, same_chain=True)
        assert await db.delete([v2.key]) == 1
    async with store.reading() as db:
        assert await db.get(v2.memory.id) is None
        chain = await db.chain(v1.key)
        assert [s.key for s in chain] == [v1.key, v3.key]
        assert chain[0].memory.superseded_by == v3.memory.id
        assert chain[1].memory.supersedes == v1.memory.id
        assert await db.current_in_chain(v1.key) == v3.memory.id
        assert await db.broken_links() == []


async def test_forgetting_the_first_version_reroots_the_chain(store: MemoryStore, add: Add) -> None:
    v1, v2, v3 = await _chain_of_three(store, add)
    async with store.transaction() as db:
        await db.relink_around(v1, same_chain=True)
        assert await db.delete([v1.key]) == 1
    async with store.reading() as db:
        assert await db.chain_key(v2.key) == v2.key
        assert await db.chain_key(v3.key) == v2.key
        chain = await db.chain(v2.key)
        assert [s.key for s in chain] == [v2.key, v3.key]
        assert chain[0].memory.supersedes is None
        assert await db.current_in_chain(v2.key) == v3.memory.id
        assert await db.broken_links() == []


async def test_forgetting_the_current_version_leaves_none_current(store: MemoryStore, add: Add) -> None:
    v1, v2, v3 = await _chain_of_three(store, add)
    async with store.transaction() as db:
        await db.relink_around(v3, same_chain=False)  # it has no successor
        assert await db.delete([v3.key]) == 1
    async with store.reading() as db:
        assert [s.key for s in await db.chain(v1.key)] == [v1.key, v2.key]
        assert await db.current_in_chain(v1.key) is None
        assert await db.broken_links() == []
    previous = await fetch(store, v2.memory.id)
    assert (previous.superseded_by, previous.valid_until is not None) == (None, True)


async def test_forgetting_a_version_absorbed_by_another_fact_relinks_only_its_predecessor(
    store: MemoryStore, add: Add
) -> None:
    v1 = await add("alice", "Lives in Lyon")
    v2_id = str(uuid.uuid4())
    async with store.transaction() as db:
        await db.close_version(v1.key, T0, v2_id)
    v2 = await add("alice", "Lives in Lyon, near the station", id=v2_id, supersedes=v1.memory.id)
    other = await add("alice", "Has a flat near Lyon station")  # another fact, which absorbs v2
    async with store.transaction() as db:
        await db.close_version(v2.key, T0 + 1, other.memory.id)
        absorbed = await db.get(v2_id)
        assert absorbed is not None
        await db.relink_around(absorbed, same_chain=False)
        assert await db.delete([v2.key]) == 1
    assert (await fetch(store, v1.memory.id)).superseded_by == other.memory.id
    assert await fetch(store, other.memory.id) == other.memory
    async with store.reading() as db:
        assert await db.broken_links() == []


async def test_absorbing_closes_the_selected_copies_and_reinforces_the_one_kept(
    store: MemoryStore, add: Add
) -> None:
    keep = await add("alice", "Prefers tea", reinforcement_count=1)
    same = await add("alice", "prefers   TEA", session_id="s1")
    similar = await add("alice", "Likes tea a lot")
    untouched = [
        await add("alice", "prefers tea", session_id="s2"),  # outside the selection
        await add("alice", "prefers tea", valid_until=T0, superseded_by="x"),  # not current
        await add("alice", "Drinks coffee"),  # neither the same text nor similar
        await add("bob", "prefers tea"),  # another user's, even when named similar
    ]
    before = {s.memory.id: s.memory for s in untouched}
    here = selection(keep.user_key, from_(Position("alice", "s1")), now=T0 + 1)
    similar_keys = [similar.key, untouched[0].key, untouched[3].key, keep.key]
    async with store.transaction() as db:
        assert await db.absorb(keep.key, here, content_hash("Prefers tea"), similar_keys, T0 + 1) == 2
    for copy in (same, similar):
        closed = await fetch(store, copy.memory.id)
        assert closed.valid_until == datetime.fromtimestamp(T0 + 1, UTC)
        assert closed.superseded_by == keep.memory.id
    kept = await fetch(store, keep.memory.id)
    assert (kept.reinforcement_count, kept.valid_until) == (3, None)
    assert {m: await fetch(store, m) for m in before} == before


async def test_reinforcing_counts_and_keeps_the_larger_importance(store: MemoryStore, add: Add) -> None:
    stored = await add("alice", "Likes tea", importance=0.4)
    async with store.transaction() as db:
        await db.reinforce(stored.key, 0.7)
        await db.reinforce(stored.key, 0.2)
    memory = await fetch(store, stored.memory.id)
    assert memory.reinforcement_count == 2
    assert memory.importance == pytest.approx(0.7)


async def test_moving_changes_the_position_and_records_the_origin_only_when_given(
    store: MemoryStore, add: Add
) -> None:
    stored = await add("alice", "Uses pytest", session_id="s1", agent_id="a1", turn_id="t1", expires_at=LATER)
    turn = Position("alice", "s1", "a1", "t1")
    async with store.transaction() as db:
        await db.move(stored.key, Move(Position("alice", "s1"), promoted_at=T0, expires_at=None, origin=turn))
    moved = await fetch(store, stored.memory.id)
    assert (moved.session_id, moved.agent_id, moved.turn_id) == ("s1", None, None)
    assert moved.scope_level == ScopeLevel.SESSION
    assert (moved.promoted_at, moved.expires_at) == (datetime.fromtimestamp(T0, UTC), None)
    assert (moved.origin_level, moved.origin_session_id, moved.origin_agent_id, moved.origin_turn_id) == (
        ScopeLevel.TURN, "s1", "a1", "t1"
    )
    other_agent = selection(stored.user_key, from_(Position("alice", "s1", "a2")))
    assert await ids(store, other_agent) == [stored.memory.id]
    levels = selection(stored.user_key, everything("alice", scope_levels=["session"]))
    assert await ids(store, levels) == [stored.memory.id]

    async with store.transaction() as db:
        await db.move(stored.key, Move(to=Position("alice"), promoted_at=T0 + 1, expires_at=LATER))
    moved_again = await fetch(store, stored.memory.id)
    assert (moved_again.scope_level, moved_again.origin_level, moved_again.origin_turn_id) == (
        ScopeLevel.USER, ScopeLevel.TURN, "t1"
    )
    assert moved_again.expires_at == datetime.fromtimestamp(LATER, UTC)
    assert await ids(store, selection(stored.user_key, everything("alice", scope_levels=["user"]))) == [
        stored.memory.id
    ]


async def test_a_new_turn_expires_every_version_of_the_sessions_other_turns(
    store: MemoryStore, add: Add
) -> None:
    now = T0 + 1000
    this_turn = await add("alice", "this turn", session_id="s1", agent_id="a1", turn_id="t1")
    other_turn = await add("alice", "other turn", session_id="s1", agent_id="a1", turn_id="t2")
    old_version = await add("alice", "other turn, old", session_id="s1", agent_id="a1", turn_id="t2",
                            valid_until=T0, superseded_by=other_turn.memory.id)
    expiring_later = await add("alice", "expires later", session_id="s1", turn_id="t3", expires_at=now + 500)
    expired_before = await add("alice", "expired before", session_id="s1", agent_id="a2", turn_id="t3",
                               expires_at=now - 500)
    session = await add("alice", "session", session_id="s1")
    other_session = await add("alice", "other session", session_id="s2", agent_id="a1", turn_id="t2")
    bobs = await add("bob", "bob's", session_id="s1", agent_id="a1", turn_id="t2")
    async with store.transaction() as db:
        await db.expire_other_turns(this_turn.user_key, "s1", "t1", now)

    async def expiry(stored: Stored) -> float | None:
        expires = (await fetch(store, stored.memory.id)).expires_at
        return None if expires is None else expires.timestamp()

    assert [await expiry(s) for s in (other_turn, old_version, expiring_later)] == [now] * 3
    assert await expiry(expired_before) == now - 500
    assert [await expiry(s) for s in (this_turn, session, other_session, bobs)] == [None] * 4


# -- idempotency and recalls ---------------------------------------------------------------------


async def test_the_first_write_with_an_idempotency_key_wins(store: MemoryStore, add: Add) -> None:
    first = await add("alice", "first")
    second = await add("alice", "second")
    bobs = await add("bob", "bob's")
    async with store.transaction() as db:
        await db.put_idempotent(first.user_key, "k", first.memory.id, T0)
        await db.put_idempotent(first.user_key, "k", second.memory.id, T0 + 1)
        await db.put_idempotent(bobs.user_key, "k", bobs.memory.id, T0)
    async with store.reading() as db:
        assert await db.find_idempotent(first.user_key, "k") == first.memory
        assert await db.find_idempotent(bobs.user_key, "k") == bobs.memory
        assert await db.find_idempotent(first.user_key, "other") is None


async def test_an_idempotency_key_of_a_forgotten_memory_finds_nothing(store: MemoryStore, add: Add) -> None:
    stored = await add("alice", "soon gone")
    async with store.transaction() as db:
        await db.put_idempotent(stored.user_key, "k", stored.memory.id, T0)
        await db.delete([stored.key])
    async with store.reading() as db:
        assert await db.find_idempotent(stored.user_key, "k") is None


async def test_recalls_count_distinct_positions_until_forgotten(store: MemoryStore, add: Add) -> None:
    one = await add("alice", "one")
    two = await add("alice", "two")
    here, there = Position("alice", "s1").key(), Position("alice", "s2", "a1").key()
    async with store.transaction() as db:
        assert await db.record_recall(one.key, here) == 1
        assert await db.record_recall(one.key, here) == 1
        assert await db.record_recall(one.key, there) == 2
        assert await db.record_recall(two.key, here) == 1
        await db.forget_recalls(one.key)
        assert await db.record_recall(one.key, there) == 1
        assert await db.record_recall(two.key, there) == 2


# -- deleting and transactions -------------------------------------------------------------------


async def test_delete_counts_what_it_removed(store: MemoryStore, add: Add) -> None:
    a, b, c = [await add("alice", text) for text in ("a", "b", "c")]
    async with store.transaction() as db:
        assert await db.delete([a.key, b.key, c.key + 1000]) == 2
        assert await db.delete([]) == 0
        assert await db.delete([a.key]) == 0
    async with store.reading() as db:
        assert await db.get(a.memory.id) is None
        assert await db.by_keys([a.key, b.key, c.key]) == {c.key: c.memory}
        assert await db.count_memories() == 1
        assert await db.select_keys(selection(a.user_key, everything("alice"))) == [c.key]


async def test_a_transaction_that_raises_leaves_nothing_behind(
    store: MemoryStore, new_version: NewVersionFactory
) -> None:
    async with store.reading() as db:
        seq = await db.last_change()
    version = None
    with pytest.raises(RuntimeError, match="boom"):
        async with store.transaction() as db:
            user_key = await db.ensure_user("carol")
            version = new_version(user_key, "carol", "never stored")
            await db.insert(version)
            await db.set_meta("written", "yes")
            raise RuntimeError("boom")
    assert version is not None
    async with store.reading() as db:
        assert await db.user_key("carol") is None
        assert await db.get(version.memory.id) is None
        assert await db.get_meta("written") is None
        assert await db.count_memories() == 0
        assert await db.last_change() == seq


async def test_a_savepoint_that_raises_undoes_only_its_own_part(
    store: MemoryStore, new_version: NewVersionFactory
) -> None:
    async with store.transaction() as db:
        user_key = await db.ensure_user("alice")
        before, inside, kept_inside, after = (
            new_version(user_key, "alice", text) for text in ("before", "inside", "kept inside", "after")
        )
        await db.insert(before)
        with pytest.raises(ValueError):
            async with db.savepoint():
                await db.insert(inside)
                raise ValueError("undo me")
        async with db.savepoint():
            await db.insert(kept_inside)
        await db.insert(after)
    async with store.reading() as db:
        assert await db.get(inside.memory.id) is None
        for version in (before, kept_inside, after):
            assert await db.get(version.memory.id) is not None


# -- vectors -------------------------------------------------------------------------------------


async def test_stored_vectors_read_back_exactly(store: MemoryStore, add: Add) -> None:
    vector = np.array([0.5, -0.5, 0.5, -0.5, 0.0, 0.0, 0.0, 0.0], dtype=np.float32)
    with_vector = await add("alice", "with", embedding=vector)
    without = await add("alice", "without", embedding=None)
    async with store.reading() as db:
        found = await db.embeddings([with_vector.key, without.key, without.key + 1000])
    assert list(found) == [with_vector.key]
    assert found[with_vector.key].dtype == np.float32
    assert np.array_equal(found[with_vector.key], vector)
    assert (with_vector.memory.embedded, without.memory.embedded) == (True, False)


async def test_a_users_vectors_come_with_their_keys(store: MemoryStore, add: Add) -> None:
    alice = [await add("alice", f"a{i}") for i in range(3)]
    await add("alice", "no vector", embedding=None)
    bob = await add("bob", "b")
    async with store.transaction() as db:
        carol = await db.ensure_user("carol")
    async with store.reading() as db:
        stored = await db.embeddings([s.key for s in alice])
        keys, vectors = await db.user_embeddings(alice[0].user_key)
        assert sorted(int(k) for k in keys) == sorted(s.key for s in alice)
        assert vectors.shape == (3, 8) and vectors.dtype == np.float32
        for key, row in zip(keys, vectors, strict=True):
            assert np.array_equal(row, stored[int(key)])
        assert await db.embedded_keys(alice[0].user_key) == {s.key for s in alice}
        assert await db.embedded_count(alice[0].user_key) == 3
        assert await db.embedded_keys(bob.user_key) == {bob.key}
        no_keys, no_vectors = await db.user_embeddings(carol)
        assert (len(no_keys), len(no_vectors)) == (0, 0)
        assert await db.embedded_count(carol) == 0


async def test_memories_without_a_vector_wait_oldest_first(store: MemoryStore, add: Add) -> None:
    first = await add("alice", "first", embedding=None)
    await add("alice", "embedded")
    second = await add("bob", "second", embedding=None)
    third = await add("alice", "third", embedding=None)
    async with store.reading() as db:
        assert await db.pending_embeddings(10) == [
            (first.key, "first"), (second.key, "second"), (third.key, "third")
        ]
        assert await db.pending_embeddings(2) == [(first.key, "first"), (second.key, "second")]


async def test_vectors_are_set_only_where_there_is_none(store: MemoryStore, add: Add) -> None:
    pending = await add("alice", "pending", embedding=None)
    original = np.eye(8, dtype=np.float32)[0]
    embedded = await add("alice", "embedded", embedding=original)
    late, other = np.eye(8, dtype=np.float32)[1], np.eye(8, dtype=np.float32)[2]
    async with store.transaction() as db:
        await db.set_embeddings([(pending.key, late), (embedded.key, other)])
    async with store.reading() as db:
        found = await db.embeddings([pending.key, embedded.key])
        assert await db.pending_embeddings(10) == []
    assert np.array_equal(found[pending.key], late)
    assert np.array_equal(found[embedded.key], original)
    assert (await fetch(store, pending.memory.id)).embedded is True


async def test_dropping_embeddings_forgets_every_vector_and_index_file(store: MemoryStore, add: Add) -> None:
    a = await add("alice", "a")
    b = await add("bob", "b")
    async with store.transaction() as db:
        await db.record_vector_file(VectorFile(a.user_key, "a.index", 1, 1, 0, 10, "m", 8))
        await db.drop_embeddings()
    async with store.reading() as db:
        assert await db.embeddings([a.key, b.key]) == {}
        assert await db.embedded_count(a.user_key) == 0
        assert await db.pending_embeddings(10) == [(a.key, "a"), (b.key, "b")]
        assert await db.vector_file(a.user_key) is None
    assert (await fetch(store, a.memory.id)).embedded is False


async def test_the_newer_index_file_of_a_model_is_kept(store: MemoryStore) -> None:
    async with store.transaction() as db:
        alice, bob = await db.ensure_user("alice"), await db.ensure_user("bob")
        assert await db.vector_file(alice) is None

        def record(name: str, seq: int, model: str = "m") -> VectorFile:
            return VectorFile(alice, name, seq, 3, 1234, 100, model, 8)

        assert await db.record_vector_file(record("first", 5)) == (True, None)
        assert await db.vector_file(alice) == record("first", 5)
        assert await db.record_vector_file(record("newer", 7)) == (True, "first")
        assert (await db.record_vector_file(record("older", 6)))[0] is False
        assert await db.vector_file(alice) == record("newer", 7)
        assert await db.record_vector_file(record("as new", 7)) == (True, "newer")
        assert await db.record_vector_file(record("other model", 1, model="m2")) == (True, "as new")
        assert await db.vector_file(alice) == record("other model", 1, model="m2")
        assert await db.vector_file(bob) is None


async def test_an_index_file_not_recorded_replaces_nothing(store: MemoryStore) -> None:
    async with store.transaction() as db:
        alice = await db.ensure_user("alice")
        await db.record_vector_file(VectorFile(alice, "newer", 7, 3, 1234, 100, "m", 8))
        older = VectorFile(alice, "older", 6, 3, 1234, 100, "m", 8)
        assert await db.record_vector_file(older) == (False, None)


# -- counts, checks and pages --------------------------------------------------------------------


async def test_stats_count_current_superseded_and_expired_memories(store: MemoryStore, add: Add) -> None:
    now = T0 + 1000
    fact = await add("alice", "fact")
    await add("alice", "preference", session_id="s1", category=MemoryCategory.PREFERENCE)
    await add("alice", "superseded", valid_until=T0, superseded_by="x")
    await add("alice", "superseded, and expired since", valid_until=T0, superseded_by="y", expires_at=now - 1)
    await add("alice", "expired", category=MemoryCategory.DECISION, expires_at=now - 1)
    bob = await add("bob", "bob's", agent_id="a1", category=MemoryCategory.INSIGHT)
    async with store.reading() as db:
        mine = await db.stats(fact.user_key, now)
        # each version counts once: superseded ones as superseded, whether or not they expired since
        assert (mine.total, mine.current, mine.superseded, mine.expired, mine.users) == (5, 2, 2, 1, 1)
        assert mine.categories == {"fact": 1, "preference": 1}  # of the current ones
        assert mine.scope_levels == {"user": 1, "session": 1}
        assert (await db.stats(bob.user_key, now)).scope_levels == {"agent": 1}
        every = await db.stats(None, now)
        assert (every.total, every.current, every.superseded, every.expired, every.users) == (6, 3, 2, 1, 2)
        assert every.categories == {"fact": 1, "preference": 1, "insight": 1}


async def test_a_consistent_store_has_no_broken_links(store: MemoryStore, add: Add) -> None:
    await _chain_of_three(store, add)
    await add("alice", "unrelated")
    async with store.reading() as db:
        assert await db.broken_links() == []


async def test_a_successor_that_is_not_stored_is_a_broken_link(store: MemoryStore, add: Add) -> None:
    stored = await add("alice", "closed for nothing")
    async with store.transaction() as db:
        await db.close_version(stored.key, T0, "missing-id")
    async with store.reading() as db:
        assert await db.broken_links() == [BrokenLink(stored.memory.id, "missing-id", "successor_missing")]


async def test_a_predecessor_left_current_is_a_broken_link(store: MemoryStore, add: Add) -> None:
    old = await add("alice", "still current")
    new = await add("alice", "claims to supersede it", supersedes=old.memory.id)
    async with store.reading() as db:
        assert await db.broken_links() == [BrokenLink(new.memory.id, old.memory.id, "predecessor_not_closed")]


async def test_pages_run_in_key_order_after_a_key_for_one_user_or_all(store: MemoryStore, add: Add) -> None:
    stored = [await add(user, f"{user} {i}") for i in range(3) for user in ("alice", "bob")]
    alice_key = stored[0].user_key
    async with store.reading() as db:
        assert await db.page(0, None, 100) == stored
        assert await db.page(stored[1].key, None, 2) == stored[2:4]
        assert await db.page(0, alice_key, 100) == [s for s in stored if s.memory.user_id == "alice"]
        assert await db.page(stored[2].key, alice_key, 100) == [stored[4]]
        assert await db.page(stored[-1].key, None, 100) == []


# -- the change feed -----------------------------------------------------------------------------


async def test_the_change_feed_records_every_write_in_order(store: MemoryStore, add: Add) -> None:
    async with store.reading() as db:
        start = await db.last_change()
    a = await add("alice", "a")
    b = await add("bob", "b")
    async with store.transaction() as db:
        await db.reinforce(a.key, 0.9)
    async with store.transaction() as db:
        await db.delete([a.key])
    async with store.reading() as db:
        changes = await db.changes_since(start)
        assert [(c.memory_key, c.memory_id, c.user_key, c.op) for c in changes] == [
            (a.key, a.memory.id, a.user_key, "add"),
            (b.key, b.memory.id, b.user_key, "add"),
            (a.key, a.memory.id, a.user_key, "update"),
            (a.key, a.memory.id, a.user_key, "delete"),
        ]
        seqs = [c.seq for c in changes]
        assert seqs == sorted(set(seqs)) and seqs[0] > start
        assert await db.last_change() == seqs[-1]
        assert await db.last_change(b.user_key) == seqs[1]
        assert [c.op for c in await db.changes_since(start, a.user_key)] == ["add", "update", "delete"]
        assert await db.changes_since(seqs[2]) == changes[3:]
        assert await db.changes_since(seqs[-1]) == []


async def test_a_reading_sees_one_snapshot(
    store: MemoryStore, open_store: Callable[[], Awaitable[MemoryStore]], add: Add
) -> None:
    first = await add("alice", "first")
    other = await open_store()
    async with store.reading() as db:
        assert await db.count_memories() == 1
        later = await add("alice", "committed meanwhile", into=other)
        assert await db.count_memories() == 1
        assert await db.get(later.memory.id) is None
    async with store.reading() as db:
        assert await db.by_keys([first.key, later.key]) == {first.key: first.memory, later.key: later.memory}


async def test_writes_are_invisible_to_other_stores_until_committed(
    store: MemoryStore, open_store: Callable[[], Awaitable[MemoryStore]], new_version: NewVersionFactory
) -> None:
    other = await open_store()
    async with store.transaction() as db:
        user_key = await db.ensure_user("alice")
        version = new_version(user_key, "alice", "not yet committed")
        await db.insert(version)
        async with other.reading() as elsewhere:
            assert await elsewhere.get(version.memory.id) is None
            assert await elsewhere.user_key("alice") is None
    async with other.reading() as elsewhere:
        assert await elsewhere.get(version.memory.id) is not None


async def test_another_store_on_the_same_data_sees_the_changes(
    store: MemoryStore, open_store: Callable[[], Awaitable[MemoryStore]], add: Add
) -> None:
    other = await open_store()
    async with store.reading() as db:
        start = await db.last_change()
    written = await add("alice", "written elsewhere", into=other)
    async with store.reading() as db:
        assert await db.last_change() > start
        assert [(c.memory_id, c.op) for c in await db.changes_since(start)] == [(written.memory.id, "add")]
        assert await db.get(written.memory.id) == written
    async with store.transaction() as db:
        await db.delete([written.key])
    async with other.reading() as db:
        assert [c.op for c in await db.changes_since(start)] == ["add", "delete"]
        assert await db.get(written.memory.id) is None
