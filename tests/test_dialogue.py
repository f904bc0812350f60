"""Conversations in hybrid recall (memory_mcp.memory.dialogue): a question gives way to the turn
that answers it. The share of a text that asks; which stored turn comes just before which, read
from the contexts ``add_conversation`` gives; and the documented scores through recall, with the
real model on both storage engines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import weighed_scores

from memory_mcp import HierarchicalMemory
from memory_mcp.memory.dialogue import ANSWER_WEIGHT, QUESTION_WEIGHT, asked, turn_before


def test_asked_is_the_share_of_characters_in_sentences_ending_with_a_question_mark() -> None:
    assert asked("What flavour did you make?") == 1.0
    assert asked("I made chocolate ice cream. It was great!") == 0.0
    assert asked("") == 0.0
    statement, question = "I made chocolate ice cream.", "Have you tried it?"
    assert asked(f"{statement} {question}") == pytest.approx(len(question) / (len(statement) + len(question)))
    assert asked("Really?!") == 1.0  # a question that exclaims is still a question
    assert asked("你做了什么口味？") == 1.0 and asked("ماذا صنعت؟") == 1.0
    assert asked("The URL is example.com/?q=1 and it works.") == 0.0  # a "?" inside a sentence asks nothing


TURNS = [
    "Nate: Hey Joanna! Sorry I haven't been around lately.",
    "Joanna: No worries! What have you been up to?",
    "Nate: I started a new job last month, so we had to move.",
    "Joanna: Congratulations! Which city did you move to for the new job?",
    "Nate: Lisbon. We found a flat near the river.",
    "Joanna: Sounds lovely. I hope to visit one day.",
]


async def _conversation(memory: HierarchicalMemory, window: int = 2) -> list[Any]:
    when = datetime(2024, 2, 25, tzinfo=UTC)
    return await memory.add_conversation([{"content": t, "valid_from": when} for t in TURNS], window=window,
                                         user_id="u")


@pytest.mark.parametrize("window", [1, 2, 3])
async def test_each_turn_knows_the_turn_just_before_it_from_the_stored_contexts(
    open_memory: Callable[..., Any], window: int
) -> None:
    memory = await open_memory()
    try:
        stored = await _conversation(memory, window)
        rows = {i: m for i, m in enumerate(stored)}  # keys in the order stored, as the store's are
        assert turn_before(list(rows), rows) == {i: i - 1 for i in range(1, len(TURNS))}
        # Only the turns present count: 3 follows 2; 2 does not follow 0 (turn 1 lies between),
        # nor 5 turn 3; and the order stored, not the order given, says which came first.
        some = [0, 2, 3, 5]
        assert turn_before(some, rows) == {3: 2}
        assert turn_before([5, 3, 2, 0], rows) == {3: 2}
        # Memories stored one by one without contexts are not turns of one conversation.
        alone = [await memory.add(t, "v") for t in TURNS]
        assert turn_before(list(range(len(alone))), dict(enumerate(alone))) == {}
    finally:
        await memory.close()


async def test_recall_puts_the_answer_above_the_question_with_the_documented_scores(
    open_memory: Callable[..., Any],
) -> None:
    memory = await open_memory()
    try:
        stored = await _conversation(memory)
        now = datetime.now(UTC)
        query = "Which city did Nate move to for his new job?"
        results = await memory.recall(query, user_id="u", top_k=10, min_relevance=0)
        assert {r.id for r in results} == {m.id for m in stored}
        order = [r.content for r in results]
        assert order.index(TURNS[4]) < order.index(TURNS[3])  # the answer before the question

        # Each score, computed again from the result's two matches by the documented formulas.
        weighed = weighed_scores(results, memory.config, now)
        before = {r.content: weighed[r.id] for r in results}
        for r in results:
            expected = before[r.content] * (1 - QUESTION_WEIGHT * asked(r.content))
            i = TURNS.index(r.content)
            if i > 0:
                question = TURNS[i - 1]
                expected += ANSWER_WEIGHT * asked(question) * max(before[question] - before[r.content], 0)
            assert r.score == pytest.approx(expected, abs=1e-4), r.content
            assert 0 <= r.score <= 1
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
        assert before[TURNS[3]] > before[TURNS[4]]  # so it is the stage that turned them round

        # The semantic and text modes keep their one match as the score.
        for mode in ("semantic", "text"):
            for r in await memory.search(query, user_id="u", top_k=10, mode=mode, min_relevance=0):
                assert r.score == pytest.approx(r.relevance)
    finally:
        await memory.close()
