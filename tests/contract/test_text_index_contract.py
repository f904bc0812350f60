"""The TextIndex contract: BM25 full text over what ``fulltext.search_text`` makes of a memory,
ranked with one user's statistics only, and never tripped up by what a query contains."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from memory_mcp.memory.ports import MemoryFilter, MemoryStore, Selection, Stored, TextIndex
from memory_mcp.memory.scope import Position, visible_from
from memory_mcp.memory.validation import memory_filter

Add = Callable[..., Awaitable[Stored]]

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC).timestamp()


def keys(results: list[tuple[int, float]]) -> list[int]:
    return [key for key, _ in results]


def assert_best_first(results: list[tuple[int, float]]) -> None:
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)


async def test_search_finds_memories_by_their_words_best_first(text_index: TextIndex, add: Add) -> None:
    both = await add("alice", "Paddled a kayak down the river")
    one = await add("alice", "Bought a new kayak")
    await add("alice", "Booked a dentist appointment")
    found = await text_index.search("kayak river", both.user_key, 10)
    assert keys(found) == [both.key, one.key]  # a memory matching some of the words is found too
    assert_best_first(found)


async def test_search_ignores_case(text_index: TextIndex, add: Add) -> None:
    stored = await add("alice", "Paddled a Kayak down the river")
    assert keys(await text_index.search("KAYAK", stored.user_key, 10)) == [stored.key]


async def test_search_finds_what_another_store_wrote(
    text_index: TextIndex, open_store: Callable[[], Awaitable[MemoryStore]], add: Add
) -> None:
    here = await add("alice", "kayak here")
    assert keys(await text_index.search("kayak", here.user_key, 10)) == [here.key]
    there = await add("alice", "kayak there", into=await open_store())
    assert set(keys(await text_index.search("kayak", here.user_key, 10))) == {here.key, there.key}


async def test_search_finds_memories_by_their_entity_refs(text_index: TextIndex, add: Add) -> None:
    met = await add("alice", "Met her at the conference", entity_refs=["Zanzibar"])
    await add("alice", "Went to the conference alone")
    assert keys(await text_index.search("Zanzibar", met.user_key, 10)) == [met.key]


async def test_search_finds_memories_by_the_day_they_became_true(text_index: TextIndex, add: Add) -> None:
    cat = await add("alice", "Adopted a cat", valid_from=datetime(2023, 5, 8, 15, 30, tzinfo=UTC))
    await add("alice", "Adopted a dog", valid_from=datetime(2021, 11, 3, 9, 0, tzinfo=UTC))
    assert keys(await text_index.search("8 May 2023", cat.user_key, 10)) == [cat.key]
    assert keys(await text_index.search("what happened in May 2023?", cat.user_key, 10)) == [cat.key]


async def test_a_word_of_the_context_counts_less_than_a_word_of_the_memory(
    text_index: TextIndex, add: Add
) -> None:
    # the same words, the query's in the memory itself or only in its context
    own = await add("alice", "went kayak trip", context="river cold water", valid_from=T0)
    situated = await add("alice", "went river trip", context="kayak cold water", valid_from=T0)
    found = dict(await text_index.search("kayak", own.user_key, 10))
    assert set(found) == {own.key, situated.key}
    assert found[own.key] > found[situated.key]


async def test_search_returns_only_the_users_own_memories(text_index: TextIndex, add: Add) -> None:
    alices = [await add("alice", f"kayak trip {i}") for i in range(3)]
    bob = await add("bob", "kayak trip with Bob")
    assert keys(await text_index.search("kayak trip", bob.user_key, 10)) == [bob.key]
    assert set(keys(await text_index.search("kayak trip", alices[0].user_key, 10))) == {s.key for s in alices}


async def test_ranking_uses_only_the_users_own_memories(text_index: TextIndex, add: Add) -> None:
    alice = [
        await add("alice", "Paddled a kayak down the river"),
        await add("alice", "Bought a new kayak"),
        await add("alice", "The river flooded the garden"),
        await add("alice", "Booked a dentist appointment"),
    ]
    user_key = alice[0].user_key
    before = await text_index.search("kayak river", user_key, 10)
    for i in range(40):  # another user for whom these words are everywhere, and longer memories
        await add("bob", f"kayak {i} " + "river " * (i % 5) + "and some more words to lengthen it")
    after = await text_index.search("kayak river", user_key, 10)
    assert keys(after) == keys(before)
    assert [score for _, score in after] == pytest.approx([score for _, score in before], rel=1e-9)


async def test_search_within_a_selection_keeps_only_the_selected(
    text_index: TextIndex, store: MemoryStore, add: Add
) -> None:
    memories = [
        await add("alice", "kayak at home"),
        await add("alice", "kayak in this session", session_id="s1"),
        await add("alice", "kayak in that session", session_id="s2"),
        await add("alice", "kayak in this session's other agent", session_id="s1", agent_id="a2"),
        await add("alice", "kayak, superseded", valid_until=T0, superseded_by="x"),
    ]
    user_key = memories[0].user_key
    here = Position("alice", "s1", "a1")
    within = Selection(user_key, (memory_filter(MemoryFilter("alice", "s1", "a1")),), time.time())
    expected = {s.key for s in memories if visible_from(s.memory, here) and s.memory.valid_until is None}
    assert expected == {memories[0].key, memories[1].key}
    assert set(keys(await text_index.search("kayak", user_key, 10, within=within))) == expected
    assert len(await text_index.search("kayak", user_key, 10)) >= len(expected)


async def test_search_returns_at_most_count_results_the_best_ones(text_index: TextIndex, add: Add) -> None:
    stored = [await add("alice", "kayak " + "filler " * i) for i in range(6)]
    user_key = stored[0].user_key
    every = await text_index.search("kayak", user_key, 10)
    assert len(every) == 6
    assert await text_index.search("kayak", user_key, 2) == every[:2]
    assert await text_index.search("kayak", user_key, 0) == []


async def test_nothing_is_found_for_a_user_without_memories_or_a_query_without_words(
    text_index: TextIndex, store: MemoryStore, add: Add
) -> None:
    stored = await add("alice", "kayak")
    async with store.transaction() as db:
        newcomer = await db.ensure_user("newcomer")
    assert await text_index.search("kayak", newcomer, 10) == []
    assert await text_index.search("kayak", stored.user_key + 1000, 10) == []
    for empty in ("", "   ", "?!", "***"):
        assert await text_index.search(empty, stored.user_key, 10) == []


SYNTAX = [
    "AND", "OR", "NOT", "kayak AND", "AND kayak OR", "NEAR(kayak river)", '"', '"kayak', 'kayak"', '""',
    "(", ")", "(kayak", "kayak)", "*", "kayak*", "*kayak", ":", "kayak:", "body:kayak", "owner:u1",
    "{body}: kayak", "^kayak", "-kayak", "+kayak", "kayak -river", "'kayak'", "kayak's", "a & b | !c",
    "kayak <-> river", "\\", "%_", ";DROP TABLE memories;--", "\u0000", "日本語のテキスト", "🛶 kayak",
]


@pytest.mark.parametrize("query", SYNTAX)
async def test_query_syntax_characters_never_raise(text_index: TextIndex, add: Add, query: str) -> None:
    stored = await add("alice", "Paddled a kayak down the river")
    found = await text_index.search(query, stored.user_key, 10)
    assert set(keys(found)) <= {stored.key}


WRAPPED = ['"kayak"', "(kayak)", "kayak*", "kayak:", "kayak?", "kayak AND", "'kayak'"]


@pytest.mark.parametrize("query", WRAPPED)
async def test_a_word_wrapped_in_syntax_characters_is_still_found(
    text_index: TextIndex, add: Add, query: str
) -> None:
    stored = await add("alice", "Paddled a kayak down the river")
    await add("alice", "Booked a dentist appointment")
    assert keys(await text_index.search(query, stored.user_key, 10)) == [stored.key]


async def test_forgotten_memories_are_not_found(text_index: TextIndex, store: MemoryStore, add: Add) -> None:
    gone = await add("alice", "kayak to forget")
    kept = await add("alice", "kayak to keep")
    async with store.transaction() as db:
        await db.delete([gone.key])
    assert keys(await text_index.search("kayak", kept.user_key, 10)) == [kept.key]


async def test_a_sound_index_passes_its_integrity_check(
    text_index: TextIndex, store: MemoryStore, add: Add
) -> None:
    assert await text_index.integrity_check() == []
    stored = [
        await add(user, f"kayak {i}", context="on the river") for i in range(3) for user in ("alice", "bob")
    ]
    async with store.transaction() as db:
        await db.delete([stored[0].key, stored[3].key])
    assert await text_index.integrity_check() == []


async def test_rebuilding_keeps_the_results(text_index: TextIndex, store: MemoryStore, add: Add) -> None:
    stored = [await add("alice", text) for text in ("kayak on the river", "new kayak", "river walk")]
    await add("bob", "kayak river kayak")
    async with store.transaction() as db:
        await db.delete([stored[1].key])
    before = await text_index.search("kayak river", stored[0].user_key, 10)
    await text_index.rebuild()
    after = await text_index.search("kayak river", stored[0].user_key, 10)
    assert keys(after) == keys(before) == [stored[0].key, stored[2].key]
    assert [s for _, s in after] == pytest.approx([s for _, s in before])
    assert await text_index.integrity_check() == []
