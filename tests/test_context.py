"""A memory's context: text that situates it, searched with less weight than the memory itself.

``add(context=...)`` and ``add_conversation`` (each turn with its neighbours as context) store it
in its own column; full text finds the memory by its context's words, a word of the memory itself
counts for more than one only in its context, the vector is the content's alone, and export and
import carry it. A database made before contexts had their own column (schema version 1) is
migrated in place and keeps finding what it found.
"""

from __future__ import annotations

import io
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memory_mcp import HierarchicalMemory, InvalidArgumentError
from memory_mcp.adapters.sqlite.schema import MIGRATIONS, split_sql


def _ids(results: list[Any]) -> list[str]:
    return [r.memory.id for r in results]


async def test_a_word_of_the_memory_itself_outranks_the_same_word_only_in_a_context(
    memory: HierarchicalMemory,
) -> None:
    # Same length, same words but one: the word sits in one memory's content, in the other's context.
    own = await memory.add("Booked the ferry ticket", user_id="u", context="plans for the long summer")
    situated = await memory.add("Booked the summer ticket", user_id="u", context="plans for the long ferry")
    found = await memory.text_search("ferry", user_id="u")
    assert _ids(found) == [own.id, situated.id]
    assert found[0].text_score > found[1].text_score > 0


async def test_context_weight_one_counts_a_context_word_like_a_word_of_the_memory(
    open_memory: Callable[..., Any],
) -> None:
    memory = await open_memory(context_weight=1.0)
    try:
        a = await memory.add("Booked the ferry ticket", user_id="u", context="plans for the long summer")
        b = await memory.add("Booked the summer ticket", user_id="u", context="plans for the long ferry")
        found = await memory.text_search("ferry", user_id="u")
        assert {r.memory.id for r in found} == {a.id, b.id}
        assert found[0].text_score == pytest.approx(found[1].text_score)
    finally:
        await memory.close()


async def test_a_word_in_both_the_memory_and_its_context_counts_once(memory: HierarchicalMemory) -> None:
    # Contents of the same length; one also has the word in its context. Counted twice, it would
    # score higher.
    both = await memory.add("Booked the ferry ticket", user_id="u", context="the ferry leaves at noon")
    plain = await memory.add("Painted our ferry blue", user_id="u", context="plans for the long summer")
    await memory.add("Walked the dog", user_id="u")
    found = await memory.text_search("ferry", user_id="u")
    assert {r.memory.id for r in found} == {both.id, plain.id}
    assert found[0].text_score == pytest.approx(found[1].text_score)


async def test_the_vector_is_the_contents_alone(memory: HierarchicalMemory) -> None:
    plain = await memory.add("Chocolate and vanilla swirl", user_id="a")
    situated = await memory.add("Chocolate and vanilla swirl", user_id="b", context="What did you cook on Friday?")
    (a,) = await memory.search("vanilla swirl", user_id="a")
    (b,) = await memory.search("vanilla swirl", user_id="b")
    assert (a.memory.id, b.memory.id) == (plain.id, situated.id)
    assert a.similarity == pytest.approx(b.similarity, abs=1e-6)


async def test_add_conversation_stores_each_turn_with_its_neighbours_as_context(memory: HierarchicalMemory) -> None:
    turns = [{"content": f"turn {name}"} for name in ("one", "two", "three", "four", "five")]
    turns[4] = {"content": "turn five", "context": "its own context", "category": "decision"}
    stored = await memory.add_conversation(turns, window=1, user_id="u", session_id="s")
    assert [m.content for m in stored] == [t["content"] for t in turns]
    assert [m.context for m in stored] == [
        "turn two", "turn one\nturn three", "turn two\nturn four", "turn three\nturn five", "its own context",
    ]
    assert {m.session_id for m in stored} == {"s"} and stored[4].category == "decision"
    alone = await memory.add_conversation([{"content": "turn six"}, {"content": "turn seven"}], window=0, user_id="v")
    assert [m.context for m in alone] == [None, None]


async def test_add_conversation_finds_a_short_answer_by_the_question_before_it(memory: HierarchicalMemory) -> None:
    stored = await memory.add_conversation(
        [
            {"content": "Nate: Which city did you move to last spring?"},
            {"content": "Joanna: Lisbon, and I love it."},
            {"content": "Nate: My turtles are doing great by the way."},
            {"content": "Joanna: Glad to hear, they are so cute."},
            {"content": "Nate: I started a new video game tournament."},
        ],
        window=1, user_id="u",
    )
    found = await memory.recall("Which city did Joanna move to?", user_id="u", top_k=2)
    assert stored[1].id in _ids(found)


@pytest.mark.parametrize("window", [-1, 51, 1.5, "2", True])
async def test_add_conversation_refuses_a_bad_window_and_stores_nothing(memory: HierarchicalMemory, window: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="window"):
        await memory.add_conversation([{"content": "hello"}], window=window, user_id="u")
    assert await memory.get_all("u") == []


async def test_add_conversation_refuses_a_bad_turn_before_storing_any(memory: HierarchicalMemory) -> None:
    with pytest.raises(InvalidArgumentError, match="content"):
        await memory.add_conversation([{"content": "fine"}, {"content": 42}], user_id="u")
    assert await memory.get_all("u") == []


async def test_add_conversation_cuts_a_context_longer_than_the_limit(open_memory: Callable[..., Any]) -> None:
    memory = await open_memory(max_content_chars=100)
    try:
        stored = await memory.add_conversation([{"content": "a" * 90}, {"content": "b"}, {"content": "c" * 90}],
                                               window=1, user_id="u")
        assert stored[1].context == ("a" * 90 + "\n" + "c" * 90)[:100]
    finally:
        await memory.close()


async def test_export_and_import_carry_the_context(
    memory: HierarchicalMemory, open_memory: Callable[..., Any], tmp_path: Path
) -> None:
    m = await memory.add("Lisbon, and I love it.", user_id="u", context="Which city did you move to?")
    out = io.StringIO()
    await memory.export_jsonl(out)
    other = await open_memory(db_path=tmp_path / "other.db")
    try:
        report = await other.import_jsonl(io.StringIO(out.getvalue()))
        assert report.imported == 1
        assert (await other.get(m.id)).context == "Which city did you move to?"
        assert _ids(await other.text_search("which city", user_id="u")) == [m.id]
    finally:
        await other.close()


@pytest.mark.sqlite_only  # SQLite schema version 1
async def test_a_version_1_database_is_migrated_and_keeps_its_contexts_searchable(
    open_memory: Callable[..., Any], db_path: Path
) -> None:
    # Schema version 1 kept a memory's context inside search_text.
    with sqlite3.connect(db_path) as db:
        for statement in split_sql(MIGRATIONS[0]):
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO users(user_id) VALUES ('u')")
        now = time.time()
        db.execute(
            "INSERT INTO memories(id, user_key, scope_level, category, content, search_text, content_hash, "
            "importance, created_at, valid_from, n_tokens) VALUES ('m1', 1, 'user', 'fact', 'Lisbon.', "
            "'Lisbon. Which city did you move to?', 'h', 0.5, ?, ?, 7)",
            (now, now),
        )
    memory = await open_memory()
    try:
        with sqlite3.connect(db_path) as db:
            assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        assert _ids(await memory.text_search("which city", user_id="u")) == ["m1"]
        assert (await memory.get("m1")).context is None
        new = await memory.add("Porto, for a while.", user_id="u", context="Which town came before?")
        assert _ids(await memory.text_search("town", user_id="u")) == [new.id]
        await memory.wait_until_ready()
        problems = await memory.check()
        assert not problems["links"] and not problems.get("text_index")
    finally:
        await memory.close()
