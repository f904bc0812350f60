"""Scope visibility: what a call made from a position (user, session, agent, turn) can see.

The rule (docs/design.md, "Scopes and visibility"): a position sees the memories on its path upward — the
user's USER memories, that session's SESSION memories, that agent's AGENT memories in that session and
that turn's TURN memories — never another session's, agent's or turn's, and never anything of another
user. ``get_all`` / ``all_levels=True`` return the subtree below a position instead.

Every memory here is stored with importance 0.1, below every promotion threshold, so each stays at the
level it was written at; each test gets a fresh database and recalls from one position only, so
recall-based promotion (3 distinct positions) never moves anything either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from memory_mcp import (
    HierarchicalMemory,
    MemoryCategory,
    MemoryFilter,
    MemoryNotFoundError,
    ScopeLevel,
)

LOW = 0.1  # below every promotion threshold

# label -> (position ids, content). Every content holds the words "scope marker", so a full-text
# query for them matches every memory, and a semantic query with no similarity floor returns every
# visible one: what a call returns is then decided by visibility alone.
#
# A stored TURN distractor in s1 (turn t2 of a1) cannot coexist with T1: writing it would end turn
# t1 (TURN expiry, see test_lifecycle_rules.py). Turn isolation inside s1 is checked instead from the
# query position (s1, a1, t2), and the stored turn distractor sits in session s2 with the same ids.
MEMORIES: dict[str, tuple[dict[str, str], str]] = {
    "U": ({}, "Scope marker: the user speaks French at home"),
    "S1": ({"session_id": "s1"}, "Scope marker: this session is planning the budget review"),
    "A1": ({"session_id": "s1", "agent_id": "a1"}, "Scope marker: the coding agent uses pytest fixtures"),
    "T1": (
        {"session_id": "s1", "agent_id": "a1", "turn_id": "t1"},
        "Scope marker: the current step is renaming the database column",
    ),
    # distractors
    "S2": ({"session_id": "s2"}, "Scope marker: another session booked train tickets to Lyon"),
    "A2": ({"session_id": "s1", "agent_id": "a2"}, "Scope marker: the research agent reads astronomy papers"),
    "A1@s2": (
        {"session_id": "s2", "agent_id": "a1"},
        "Scope marker: in that session the agent drafted a poem",
    ),
    "T1@s2": (
        {"session_id": "s2", "agent_id": "a1", "turn_id": "t1"},
        "Scope marker: that turn was choosing a colour for the logo",
    ),
}

# position label -> (position ids, labels visible from there)
POSITIONS: dict[str, tuple[dict[str, str], set[str]]] = {
    "user": ({}, {"U"}),
    "s1": ({"session_id": "s1"}, {"U", "S1"}),
    "s1+a1": ({"session_id": "s1", "agent_id": "a1"}, {"U", "S1", "A1"}),
    "s1+a1+t1": ({"session_id": "s1", "agent_id": "a1", "turn_id": "t1"}, {"U", "S1", "A1", "T1"}),
    "s1+a1+t2": ({"session_id": "s1", "agent_id": "a1", "turn_id": "t2"}, {"U", "S1", "A1"}),
    "s1+a2": ({"session_id": "s1", "agent_id": "a2"}, {"U", "S1", "A2"}),
    "s1+a2+t1": ({"session_id": "s1", "agent_id": "a2", "turn_id": "t1"}, {"U", "S1", "A2"}),
    "s2": ({"session_id": "s2"}, {"U", "S2"}),
    "s2+a1": ({"session_id": "s2", "agent_id": "a1"}, {"U", "S2", "A1@s2"}),
    "s2+a1+t1": ({"session_id": "s2", "agent_id": "a1", "turn_id": "t1"}, {"U", "S2", "A1@s2", "T1@s2"}),
    "s3 (new session)": ({"session_id": "s3"}, {"U"}),
}

QUERY = "scope marker"


async def populate(memory: HierarchicalMemory, user_id: str) -> dict[str, str]:
    """Store MEMORIES for ``user_id``; returns label -> memory id."""
    ids: dict[str, str] = {}
    for label, (where, content) in MEMORIES.items():
        stored = await memory.add(content, user_id=user_id, importance=LOW, **where)
        assert stored.scope_level == ScopeLevel.of(
            where.get("session_id"), where.get("agent_id"), where.get("turn_id")
        ), f"{label} was not stored at its own level"
        ids[label] = stored.id
    assert len(set(ids.values())) == len(MEMORIES), "a setup memory was taken for a duplicate of another"
    return ids


@pytest.fixture
async def alice_and_bob(memory: HierarchicalMemory) -> tuple[dict[str, str], dict[str, str]]:
    """The same memories, word for word and position for position, for alice and for bob."""
    alice = await populate(memory, "alice")
    bob = await populate(memory, "bob")
    return alice, bob


def labels_of(ids: dict[str, str], found: list[str]) -> set[str]:
    by_id = {v: k for k, v in ids.items()}
    unknown = [i for i in found if i not in by_id]
    assert not unknown, f"returned memories that are not this user's: {unknown}"
    assert len(found) == len(set(found)), "a memory was returned twice"
    return {by_id[i] for i in found}


# Each visibility call returns the ids of the memories it found, for the user, from the position.
Call = Callable[[HierarchicalMemory, str, dict[str, str]], Awaitable[list[str]]]


async def _query(memory: HierarchicalMemory, user: str, where: dict[str, str]) -> list[str]:
    return [m.id for m in await memory.query(MemoryFilter(user_id=user, **where))]


def _recall(mode: str) -> Call:
    async def call(memory: HierarchicalMemory, user: str, where: dict[str, str]) -> list[str]:
        return [r.id for r in await memory.recall(QUERY, user_id=user, top_k=50, mode=mode, **where)]

    return call


async def _search(memory: HierarchicalMemory, user: str, where: dict[str, str]) -> list[str]:
    return [r.id for r in await memory.search(QUERY, user_id=user, top_k=50, **where)]


async def _text_search(memory: HierarchicalMemory, user: str, where: dict[str, str]) -> list[str]:
    return [r.id for r in await memory.text_search(QUERY, user_id=user, top_k=50, **where)]


CALLS: dict[str, Call] = {
    "query": _query,
    "recall-hybrid": _recall("hybrid"),
    "recall-semantic": _recall("semantic"),
    "recall-text": _recall("text"),
    "search": _search,
    "text_search": _text_search,
}


# -- the visibility matrix -----------------------------------------------------------------------


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("position", POSITIONS)
async def test_a_position_sees_exactly_the_memories_on_its_path_upward(
    memory: HierarchicalMemory, alice_and_bob: tuple[dict[str, str], dict[str, str]], position: str, call: str
) -> None:
    alice, _ = alice_and_bob
    where, expected = POSITIONS[position]
    found = await CALLS[call](memory, "alice", where)
    assert labels_of(alice, found) == expected


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("position", ["user", "s1+a1+t1", "s2+a1+t1"])
async def test_another_user_at_the_same_position_sees_only_his_own_memories(
    memory: HierarchicalMemory, alice_and_bob: tuple[dict[str, str], dict[str, str]], position: str, call: str
) -> None:
    _, bob = alice_and_bob
    where, expected = POSITIONS[position]
    found = await CALLS[call](memory, "bob", where)
    assert labels_of(bob, found) == expected  # labels_of fails on any id of alice's


@pytest.mark.parametrize("call", CALLS)
async def test_a_user_with_no_memories_sees_nothing_of_anyone(
    memory: HierarchicalMemory, alice_and_bob: tuple[dict[str, str], dict[str, str]], call: str
) -> None:
    for where, _ in POSITIONS.values():
        assert await CALLS[call](memory, "carol", where) == []


async def test_session_memory_is_invisible_from_another_session(memory: HierarchicalMemory) -> None:
    told = await memory.add(
        "The build server is called Hercules", user_id="alice", session_id="s1", importance=LOW
    )
    assert [r.id for r in await memory.recall("build server name", user_id="alice", session_id="s1")] == [
        told.id
    ]
    assert await memory.recall("build server name", user_id="alice", session_id="s2") == []
    assert await memory.recall("build server name", user_id="alice") == []  # nor from the user level


# -- scope_levels narrowing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ([ScopeLevel.SESSION], {"S1"}),
        (["user", "turn"], {"U", "T1"}),
        ([ScopeLevel.AGENT, ScopeLevel.TURN], {"A1", "T1"}),
        (["USER", "Session", "agent", "turn"], {"U", "S1", "A1", "T1"}),
        ([], set()),
    ],
)
@pytest.mark.parametrize("call", ["query", "recall-hybrid", "recall-semantic", "recall-text"])
async def test_scope_levels_narrow_what_a_position_sees_to_those_levels(
    memory: HierarchicalMemory,
    alice_and_bob: tuple[dict[str, str], dict[str, str]],
    call: str,
    levels: list[Any],
    expected: set[str],
) -> None:
    alice, _ = alice_and_bob
    where = {"session_id": "s1", "agent_id": "a1", "turn_id": "t1"}
    if call == "query":
        found = [
            m.id for m in await memory.query(MemoryFilter(user_id="alice", scope_levels=levels, **where))
        ]
    else:
        mode = call.removeprefix("recall-")
        results = await memory.recall(
            QUERY, user_id="alice", top_k=50, mode=mode, scope_levels=levels, **where
        )
        found = [r.id for r in results]
    assert labels_of(alice, found) == expected


async def test_scope_levels_never_widen_visibility(
    memory: HierarchicalMemory, alice_and_bob: tuple[dict[str, str], dict[str, str]]
) -> None:
    alice, _ = alice_and_bob
    # From session s1, no TURN or AGENT memory is on the path, whatever levels are asked for.
    narrow = await memory.query(
        MemoryFilter(user_id="alice", session_id="s1", scope_levels=["agent", "turn"])
    )
    assert narrow == []
    recalled = await memory.recall(
        QUERY, user_id="alice", session_id="s2", top_k=50, scope_levels=["session"]
    )
    assert labels_of(alice, [r.id for r in recalled]) == {"S2"}


# -- get_all / all_levels: the subtree below a position ----------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({}, set(MEMORIES)),
        ({"session_id": "s1"}, {"S1", "A1", "A2", "T1"}),
        ({"session_id": "s1", "agent_id": "a1"}, {"A1", "T1"}),
        ({"session_id": "s1", "agent_id": "a1", "turn_id": "t1"}, {"T1"}),
        ({"session_id": "s2"}, {"S2", "A1@s2", "T1@s2"}),
        ({"session_id": "s3"}, set()),
    ],
    ids=["user", "s1", "s1+a1", "s1+a1+t1", "s2", "s3"],
)
async def test_get_all_returns_the_subtree_below_the_position(
    memory: HierarchicalMemory,
    alice_and_bob: tuple[dict[str, str], dict[str, str]],
    where: dict[str, str],
    expected: set[str],
) -> None:
    alice, _ = alice_and_bob
    listed = await memory.get_all("alice", **where)
    assert labels_of(alice, [m.id for m in listed]) == expected
    queried = await memory.query(MemoryFilter(user_id="alice", all_levels=True, **where))
    assert labels_of(alice, [m.id for m in queried]) == expected


async def test_all_levels_query_combines_with_scope_levels(
    memory: HierarchicalMemory, alice_and_bob: tuple[dict[str, str], dict[str, str]]
) -> None:
    alice, _ = alice_and_bob
    turns = await memory.query(MemoryFilter(user_id="alice", all_levels=True, scope_levels=["turn"]))
    assert labels_of(alice, [m.id for m in turns]) == {"T1", "T1@s2"}
    sessions = await memory.query(MemoryFilter(user_id="alice", all_levels=True, scope_levels=["session"]))
    assert labels_of(alice, [m.id for m in sessions]) == {"S1", "S2"}


async def test_get_all_of_one_user_never_lists_another_users_memories(
    memory: HierarchicalMemory, alice_and_bob: tuple[dict[str, str], dict[str, str]]
) -> None:
    alice, bob = alice_and_bob
    assert labels_of(bob, [m.id for m in await memory.get_all("bob")]) == set(MEMORIES)
    assert labels_of(alice, [m.id for m in await memory.get_all("alice")]) == set(MEMORIES)
    assert await memory.get_all("carol") == []


# -- another user: isolation through every call ----------------------------------------------------


@pytest.fixture
async def alice_fact(memory: HierarchicalMemory) -> str:
    """One memory of alice's, and bob with memories of his own using the same words."""
    fact = await memory.add(
        "Alice keeps her spare house key under the blue flower pot",
        user_id="alice",
        category=MemoryCategory.FACT,
        importance=0.5,
    )
    await memory.add(
        "Alice prefers green tea in the morning", user_id="alice", category=MemoryCategory.PREFERENCE
    )
    await memory.add(
        "Bob keeps his spare house key in the garage", user_id="bob", category=MemoryCategory.FACT
    )
    await memory.add(
        "Bob's spare house key is blue", user_id="bob", session_id="s1", category=MemoryCategory.ENTITY
    )
    await memory.add(
        "Bob decided to buy a key safe",
        user_id="bob",
        session_id="s1",
        agent_id="a1",
        category=MemoryCategory.DECISION,
    )
    return fact.id


@pytest.mark.parametrize("user", ["bob", "carol"])
@pytest.mark.parametrize("mode", ["hybrid", "semantic", "text"])
async def test_another_user_recalls_nothing_of_alice_in_any_mode(
    memory: HierarchicalMemory, alice_fact: str, user: str, mode: str
) -> None:
    question = "where is Alice's spare house key under the blue flower pot"
    assert alice_fact in [r.id for r in await memory.recall(question, user_id="alice", mode=mode)]
    for where in ({}, {"session_id": "s1"}, {"session_id": "s1", "agent_id": "a1", "turn_id": "t1"}):
        results = await memory.recall(question, user_id=user, mode=mode, top_k=50, **where)
        assert all(r.memory.user_id == user for r in results)
        results = await memory.search(question, user_id=user, top_k=50, **where)
        assert all(r.memory.user_id == user for r in results)
        results = await memory.text_search(question, user_id=user, top_k=50, **where)
        assert all(r.memory.user_id == user for r in results)
        listed = await memory.query(MemoryFilter(user_id=user, **where))
        assert all(m.user_id == user for m in listed)


@pytest.mark.parametrize("alice_read_it_first", [False, True], ids=["uncached", "cached"])
async def test_another_user_cannot_get_alice_memory_by_id(
    memory: HierarchicalMemory, alice_fact: str, alice_read_it_first: bool
) -> None:
    if alice_read_it_first:  # the cache now holds it: the owner check must not be skipped
        assert (await memory.get(alice_fact, user_id="alice")).id == alice_fact
    for user in ("bob", "carol"):
        with pytest.raises(MemoryNotFoundError):
            await memory.get(alice_fact, user_id=user)
        with pytest.raises(MemoryNotFoundError):
            await memory.get_history(alice_fact, user_id=user)


async def test_another_user_cannot_supersede_or_delete_alice_memory_and_nothing_changes(
    memory: HierarchicalMemory, alice_fact: str
) -> None:
    before_alice = await memory.stats("alice")
    before_bob = await memory.stats("bob")
    with pytest.raises(MemoryNotFoundError):
        await memory.supersede(alice_fact, "The key is now with the neighbour", user_id="bob")
    with pytest.raises(MemoryNotFoundError):
        await memory.delete(alice_fact, user_id="bob")
    with pytest.raises(MemoryNotFoundError):
        await memory.delete(alice_fact, user_id="bob", whole_chain=True)
    with pytest.raises(MemoryNotFoundError):
        await memory.forget(alice_fact, user_id="carol")

    kept = await memory.get(alice_fact, user_id="alice")
    assert kept.is_current and kept.superseded_by is None
    assert kept.content == "Alice keeps her spare house key under the blue flower pot"
    assert [m.id for m in await memory.get_history(alice_fact, user_id="alice")] == [alice_fact]
    assert await memory.stats("alice") == before_alice
    assert await memory.stats("bob") == before_bob
    assert (await memory.stats("carol")).total == 0  # carol was not created by the failed calls
    assert not any("neighbour" in m.content for m in await memory.get_all("bob"))


async def test_stats_of_a_user_count_only_that_users_memories(
    memory: HierarchicalMemory, alice_fact: str
) -> None:
    bob = await memory.stats("bob")
    assert (bob.total, bob.current, bob.users) == (3, 3, 1)
    assert bob.categories == {"fact": 1, "entity": 1, "decision": 1}
    assert bob.scope_levels == {"user": 1, "session": 1, "agent": 1}

    alice = await memory.stats("alice")
    assert (alice.total, alice.current, alice.users) == (2, 2, 1)
    assert alice.categories == {"fact": 1, "preference": 1}
    assert alice.scope_levels == {"user": 2}

    carol = await memory.stats("carol")
    assert (carol.total, carol.users, carol.categories) == (0, 0, {})

    everyone = await memory.stats()
    assert (everyone.total, everyone.users) == (5, 2)


async def test_clearing_one_user_leaves_another_users_memories_intact(
    memory: HierarchicalMemory, alice_fact: str
) -> None:
    before = await memory.stats("alice")
    assert await memory.clear("bob") == 3
    assert (await memory.stats("bob")).total == 0
    assert await memory.get_all("bob") == []

    assert await memory.stats("alice") == before
    assert (await memory.get(alice_fact, user_id="alice")).is_current
    for mode in ("hybrid", "semantic", "text"):
        results = await memory.recall("spare house key", user_id="alice", mode=mode)
        assert alice_fact in [r.id for r in results]
    assert await memory.clear("carol") == 0


async def test_bm25_score_of_a_users_memory_ignores_other_users_memories(memory: HierarchicalMemory) -> None:
    """Full-text ranking statistics (document count, term frequency, length) are per user."""
    target = await memory.add("Quantum cryptography keys are rotated weekly", user_id="alice", importance=LOW)
    await memory.add("The garden needs watering on Sundays", user_id="alice", importance=LOW)
    await memory.add("Lunch is at noon with the design team", user_id="alice", importance=LOW)

    async def alice_scores() -> tuple[float, float, list[str]]:
        text = await memory.text_search("quantum cryptography", user_id="alice")
        hybrid = await memory.recall("quantum cryptography", user_id="alice", mode="hybrid")
        mine = next(r for r in hybrid if r.id == target.id)
        assert text[0].text_score is not None and mine.text_score is not None
        return text[0].text_score, mine.text_score, [r.id for r in text]

    before = await alice_scores()
    # Bob writes the same words many times (one per session, so none is a duplicate of another),
    # which would change both words' document frequency and the collection size if BM25 were global.
    for i in range(40):
        await memory.add(
            "Quantum cryptography is the subject of Bob's thesis",
            user_id="bob",
            session_id=f"b{i}",
            importance=LOW,
        )
    await memory.add("Cryptography", user_id="bob", importance=LOW)
    assert (await memory.stats("bob")).total == 41
    after = await alice_scores()
    assert after == before
    assert after[2] == [target.id]


async def test_semantic_search_is_not_crowded_out_by_another_users_closer_vectors(
    memory: HierarchicalMemory,
) -> None:
    """Bob's many vectors closer to the query cannot push alice's only match out of her top 1."""
    mine = await memory.add("Alice's favourite dessert is lemon tart", user_id="alice", importance=LOW)
    await memory.add_many(
        [
            {
                "content": "Bob's favourite dessert is lemon tart",
                "user_id": "bob",
                "session_id": f"b{i}",
                "importance": LOW,
            }
            for i in range(300)
        ]
    )
    results = await memory.search("favourite dessert lemon tart", user_id="alice", top_k=1)
    assert [r.id for r in results] == [mine.id]
    results = await memory.recall("favourite dessert lemon tart", user_id="alice", top_k=1, mode="hybrid")
    assert [r.id for r in results] == [mine.id]
