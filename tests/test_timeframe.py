"""The time a query names (memory_mcp.memory.timeframe): which span each way of naming a time
gives, how near a memory's time lies to it, and, through recall with the real model on both
storage engines, that hybrid recall prefers what was said then, by the documented score."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import weighed_scores

from memory_mcp.memory.dialogue import asked
from memory_mcp.memory.timeframe import AFTER_DAYS, BEFORE_DAYS, TIME_WEIGHT, named_span, near

NOW = datetime(2026, 12, 8, 15, 30, tzinfo=UTC)  # a Tuesday


def _span(query: str) -> tuple[str, str] | None:
    found = named_span(query, NOW.timestamp())
    if found is None:
        return None
    start, end = (datetime.fromtimestamp(t, UTC) for t in found)
    assert start.time() == end.time() == datetime.min.time()  # whole days, in UTC
    return start.date().isoformat(), end.date().isoformat()


@pytest.mark.parametrize(("query", "span"), [
    ("What did Maria donate to the shelter on 3 June, 2023?", ("2023-06-03", "2023-06-04")),
    ("what happened on the 3rd of June 2023", ("2023-06-03", "2023-06-04")),
    ("June 3rd, 2023", ("2023-06-03", "2023-06-04")),
    ("Jun 3 2023", ("2023-06-03", "2023-06-04")),
    ("Sept. 5, 2023", ("2023-09-05", "2023-09-06")),
    ("the meeting of 2023-06-03", ("2023-06-03", "2023-06-04")),
    ("2023/6/3", ("2023-06-03", "2023-06-04")),
    ("What did Maria donate in December 2023?", ("2023-12-01", "2024-01-01")),
    ("in february of 2024", ("2024-02-01", "2024-03-01")),
    ("the 2023-06 report", ("2023-06-01", "2023-07-01")),
    ("Where did I travel in 2021?", ("2021-01-01", "2022-01-01")),
    # Without a year: the latest such day that is not after now.
    ("what did I say on June 3", ("2026-06-03", "2026-06-04")),
    ("on 25 December", ("2025-12-25", "2025-12-26")),
    ("on 29 February", ("2024-02-29", "2024-03-01")),
    # From now.
    ("what did we decide today", ("2026-12-08", "2026-12-09")),
    ("Yesterday I told you something", ("2026-12-07", "2026-12-08")),
    ("last night", ("2026-12-07", "2026-12-08")),
    ("3 days ago", ("2026-12-05", "2026-12-06")),
    ("a week ago", ("2026-11-28", "2026-12-05")),
    ("this week", ("2026-12-07", "2026-12-14")),
    ("last week", ("2026-11-30", "2026-12-07")),
    ("last month", ("2026-11-01", "2026-12-01")),
    ("this year", ("2026-01-01", "2027-01-01")),
    ("last year", ("2025-01-01", "2026-01-01")),
    # Several times: from the earliest to the latest.
    ("between May 2023 and 3 July 2023", ("2023-05-01", "2023-07-04")),
    # No such day: what remains of it that names a time.
    ("31 June 2023", ("2023-06-01", "2023-07-01")),
])
def test_each_way_of_naming_a_time_gives_its_span(query: str, span: tuple[str, str]) -> None:
    assert _span(query) == span


@pytest.mark.parametrize("query", [
    "May I ask what my favourite colour is?", "Let's march on", "Which city did Nate move to?", "", "??",
    "call 555-0123 at 10:30", "room 12 of 40",
])
def test_a_query_naming_no_time_has_no_span(query: str) -> None:
    assert _span(query) is None


def test_near_is_one_inside_and_halves_every_half_life_outside_longer_after_than_before() -> None:
    day = 86400.0
    start = datetime(2023, 12, 1, tzinfo=UTC).timestamp()
    month = (start, start + 31 * day)
    assert near(start, month) == near(month[1] - 1, month) == 1.0
    assert near(month[1] + 62 * day, month) == pytest.approx(0.5)  # after: twice the span's length
    assert near(start - 15.5 * day, month) == pytest.approx(0.5)  # before: half of it
    one_day = (start, start + day)  # a short span: at least the floors
    assert near(start + day + AFTER_DAYS * day, one_day) == pytest.approx(0.5)
    assert near(start - BEFORE_DAYS * day, one_day) == pytest.approx(0.5)
    assert near(start + 10 * day, one_day) > near(start - 10 * day, one_day)


async def test_hybrid_recall_prefers_what_was_said_at_the_named_time_by_the_documented_score(
    open_memory: Callable[..., Any],
) -> None:
    memory = await open_memory()
    try:
        said = {
            datetime(2023, 12, 14, tzinfo=UTC): "Maria: I donated winter coats to the homeless shelter.",
            datetime(2023, 6, 20, tzinfo=UTC): "Maria: I donated my old books to the homeless shelter downtown.",
            datetime(2022, 3, 2, tzinfo=UTC): "Maria: I donated canned food to the homeless shelter.",
            datetime(2024, 2, 10, tzinfo=UTC): "Maria: The shelter thanked everyone who donated last winter.",
        }
        for when, text in said.items():
            await memory.add(text, user_id="u", valid_from=when)
        query = "What did Maria donate to the homeless shelter in December 2023?"
        without = "What did Maria donate to the homeless shelter?"

        plain = await memory.recall(without, user_id="u", top_k=10, min_relevance=0)
        dated = await memory.recall(query, user_id="u", top_k=10, min_relevance=0)
        assert len(dated) == len(said)
        assert plain[0].content != said[datetime(2023, 12, 14, tzinfo=UTC)]  # words and meaning alone pick another
        assert dated[0].content == said[datetime(2023, 12, 14, tzinfo=UTC)]

        # Each score, computed again from the result's own matches, importance, recency and time.
        now = datetime.now(UTC)
        span = named_span(query, now.timestamp())
        assert span is not None
        weighed = weighed_scores(dated, memory.config, now)
        for r in dated:
            by_time = 1 - TIME_WEIGHT * (1 - near(r.memory.valid_from.timestamp(), span))
            assert asked(r.content) == 0  # statements: the conversation stage leaves them be
            assert r.score == pytest.approx(weighed[r.id] * by_time, abs=1e-4), r.content
        assert [r.score for r in dated] == sorted((r.score for r in dated), reverse=True)

        # The semantic and text modes keep their one match as the score.
        for mode in ("semantic", "text"):
            for r in await memory.search(query, user_id="u", top_k=10, mode=mode, min_relevance=0):
                assert r.score == pytest.approx(r.relevance)
    finally:
        await memory.close()


async def test_a_time_named_from_now_outweighs_recency(open_memory: Callable[..., Any]) -> None:
    memory = await open_memory()
    try:
        now = datetime.now(UTC)
        old = await memory.add("I went hiking in the Alps with my brother.", user_id="u",
                               valid_from=now - timedelta(days=90))
        new = await memory.add("I went hiking in the Scottish Highlands with friends.", user_id="u",
                               valid_from=now - timedelta(hours=1))
        recent = await memory.recall("Where did I go hiking?", user_id="u", min_relevance=0)
        assert [r.id for r in recent][:2] == [new.id, old.id]  # no time named: the newer first
        named = await memory.recall("Where did I go hiking three months ago?", user_id="u", min_relevance=0)
        assert [r.id for r in named][:2] == [old.id, new.id]
    finally:
        await memory.close()
