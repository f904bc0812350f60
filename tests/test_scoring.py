"""The ordering properties of hybrid ranking seen through recall (see docs/design.md, "Recall and
ranking"; the functions alone are tested in rules/test_fusion.py): scores are the documented
formula over the real indexes and lie on 0..1, a memory both sides find outranks one-sided hits,
and the default relevance floor keeps a query about nothing stored from returning noise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from memory_mcp import HierarchicalMemory

# -- through recall ---------------------------------------------------------------------------------


_NOTES = [  # the memory both sides find is the oldest, so recency cannot be what lifts it
    "Her favourite tea is jasmine green tea",
    "Codes mostly in Python and enjoys writing Python scripts",
    "Uses a mechanical keyboard with brown switches",
    "Went hiking in the Alps last summer",
]


async def test_hybrid_recall_lifts_a_memory_by_the_share_of_the_query_it_holds(
    memory: HierarchicalMemory,
) -> None:
    for note in _NOTES:
        await memory.add(note, user_id="u")
    # The tea holds half this query's words: the fusion puts it above the closer Python memory.
    query = "favourite green programming language"
    results = await memory.recall(query, user_id="u", top_k=10, min_relevance=0)
    assert len(results) == len(_NOTES)
    both = [r for r in results if r.similarity is not None and r.text_score is not None]
    assert [r.content for r in both] == ["Her favourite tea is jasmine green tea"]
    assert results[0].content == "Her favourite tea is jasmine green tea"
    python = next(r for r in results if r.content.startswith("Codes mostly in Python"))
    assert python.similarity is not None and python.similarity > results[0].similarity
    assert python.text_score is None
    semantic = await memory.search(query, user_id="u", top_k=10)
    assert semantic[0].content.startswith("Codes mostly in Python")
    # One common word of three does not lift it above a memory much closer in meaning.
    fewer = await memory.recall("favourite programming language", user_id="u", top_k=10, min_relevance=0)
    tea = next(r for r in fewer if r.content.startswith("Her favourite tea"))
    assert fewer[0].content.startswith("Codes mostly in Python")
    assert tea.text_score is not None and tea.text_score < both[0].text_score


async def test_hybrid_scores_with_zero_weights_are_the_rrf_of_the_semantic_and_text_rankings(
    open_memory: Callable[..., Any],
) -> None:
    memory = await open_memory(fusion="rrf", importance_weight=0.0, recency_weight=0.0)
    try:
        for i, note in enumerate(_NOTES + ["Drinks favourite espresso every morning"]):
            await memory.add(note, user_id="u", importance=i / 10)
        query = "favourite programming language"
        semantic = [r.memory.id for r in await memory.search(query, user_id="u", top_k=30, min_relevance=0)]
        text = [r.memory.id for r in await memory.text_search(query, user_id="u", top_k=30)]
        assert len(text) == 2
        results = await memory.recall(query, user_id="u", top_k=30, min_relevance=0)
        expected: dict[str, float] = {}
        for ranking in (semantic, text):
            for rank, memory_id in enumerate(ranking, start=1):
                expected[memory_id] = expected.get(memory_id, 0.0) + 1 / (memory.config.rrf_k + rank)
        best = 2 / (memory.config.rrf_k + 1)  # first in both rankings
        expected = {memory_id: value / best for memory_id, value in expected.items()}
        assert {r.memory.id: r.score for r in results} == pytest.approx(expected)
        for r in results:  # relevance is the stronger match, whatever the fusion
            assert r.relevance == pytest.approx(max(r.similarity or 0.0, r.text_score or 0.0, 0.0))
        assert [r.score for r in results] == pytest.approx(sorted(expected.values(), reverse=True))
    finally:
        await memory.close()


async def test_hybrid_scores_with_zero_weights_are_the_weighted_mean_of_cosine_and_the_share_of_words(
    open_memory: Callable[..., Any],
) -> None:
    memory = await open_memory(importance_weight=0.0, recency_weight=0.0, text_weight=0.7)
    try:
        for note in _NOTES + ["Drinks favourite espresso every morning", "Her favourite language is Rust"]:
            await memory.add(note, user_id="u")
        query = "favourite programming language"
        cosine = {
            r.memory.id: r.similarity for r in await memory.search(query, user_id="u", top_k=30, min_relevance=0)
        }
        words = {r.memory.id: r.score for r in await memory.text_search(query, user_id="u", top_k=30)}
        assert len(words) == 3 and len(cosine) == 6
        assert all(0 < w <= 1 for w in words.values())
        results = await memory.recall(query, user_id="u", top_k=30, min_relevance=0)
        expected = {i: (max(c, 0.0) + 0.7 * words.get(i, 0.0)) / 1.7 for i, c in cosine.items()}
        assert {r.memory.id: r.score for r in results} == pytest.approx(expected)
        assert [r.score for r in results] == pytest.approx(sorted(expected.values(), reverse=True))
        assert {r.memory.id: r.similarity for r in results} == pytest.approx(cosine)
    finally:
        await memory.close()


async def test_hybrid_scores_weigh_importance_as_documented(memory: HierarchicalMemory) -> None:
    for i, note in enumerate(_NOTES):
        await memory.add(note, user_id="u", importance=0.2 * i)
    query = "favourite programming language"
    cosine = {r.memory.id: r.similarity for r in await memory.search(query, user_id="u", top_k=30, min_relevance=0)}
    words = {r.memory.id: r.score for r in await memory.text_search(query, user_id="u", top_k=30)}
    config = memory.config
    results = await memory.recall(query, user_id="u", top_k=30, min_relevance=0)
    assert len(results) == len(_NOTES)
    for r in results:
        tw = config.text_weight
        cos, said = max(cosine[r.memory.id], 0.0), words.get(r.memory.id, 0.0)
        # The memories are seconds old: their recency factor is 1 to well within the tolerance.
        weight = (1 + config.importance_weight * r.memory.importance) / (1 + config.importance_weight)
        assert r.score == pytest.approx((cos + tw * said) / (1 + tw) * weight, rel=1e-6)
        assert r.relevance == pytest.approx(max(cos, said), rel=1e-6)
        assert 0 <= r.score <= r.relevance <= 1


async def test_a_text_only_hit_is_scored_by_its_stored_vector_and_min_similarity_applies_to_it(
    open_memory: Callable[..., Any],
) -> None:
    memory = await open_memory(duplicate_similarity=1.0)  # the near-identical fillers stay apart
    try:
        far = await memory.add("Invoice prefix ZX for the quarterly accounts", user_id="u")
        for i in range(40):  # more nearer memories than hybrid recall asks the semantic side for
            await memory.add(f"Likes hiking mountain trail number {i}", user_id="u")
        query = "hiking trail zx"
        semantic = await memory.search(query, user_id="u", top_k=30)
        assert far.id not in [r.memory.id for r in semantic]
        results = await memory.recall(query, user_id="u", top_k=10)
        assert results[0].memory.id == far.id  # its rare word makes it the best text match
        hit = results[0]
        assert hit.text_score is not None and hit.similarity is not None
        assert hit.similarity < min(r.similarity for r in semantic)
        strict = await memory.recall(query, user_id="u", top_k=10, min_similarity=hit.similarity + 1e-6)
        assert far.id not in [r.memory.id for r in strict] and len(strict) == 10
    finally:
        await memory.close()


# -- the scale and the floor ------------------------------------------------------------------------


_LIFE = [
    "Alice is allergic to peanuts and carries an epipen",
    "Alice's daughter Mia starts school in September",
    "Alice runs the Berlin marathon every autumn",
    "Alice prefers aisle seats on long flights",
    "Alice's favourite dish is her grandmother's lasagne",
]


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "text"])
async def test_every_score_lies_on_zero_to_one(memory: HierarchicalMemory, mode: str) -> None:
    for note in _LIFE:
        await memory.add(note, user_id="alice", importance=0.9)
    for query in ["peanut allergy", "Alice marathon autumn Berlin", "what does Alice eat", "zzz qqq"]:
        for r in await memory.recall(query, user_id="alice", top_k=10, mode=mode, min_relevance=0):
            assert 0 <= r.score <= r.relevance <= 1, (query, r)
            assert r.text_score is None or 0 < r.text_score <= 1


async def test_a_memory_holding_every_word_of_the_query_matches_it_fully_by_words(memory: HierarchicalMemory) -> None:
    for note in _LIFE:
        await memory.add(note, user_id="alice")
    whole = await memory.text_search("Berlin marathon", user_id="alice")
    half = await memory.text_search("Berlin opera", user_id="alice")  # 'opera' is in no memory
    assert [r.content for r in whole] == [_LIFE[2]] and whole[0].score == pytest.approx(1.0)
    assert [r.content for r in half] == [_LIFE[2]] and half[0].score < 0.75


@pytest.mark.parametrize("mode", ["hybrid", "semantic"])
async def test_a_query_about_nothing_stored_finds_nothing_and_a_related_one_still_finds(
    open_memory: Callable[..., Any], mode: str
) -> None:
    memory = await open_memory(min_relevance=0.2)  # the MCP server's floor
    try:
        for note in _LIFE:
            await memory.add(note, user_id="alice")
        unrelated = "How does TCP congestion control work?"
        assert await memory.recall(unrelated, user_id="alice", mode=mode) == []
        noise = await memory.recall(unrelated, user_id="alice", mode=mode, min_relevance=0)
        assert len(noise) == len(_LIFE)  # without the floor, the nearest vectors come back
        assert max(r.relevance for r in noise) < 0.2
        found = await memory.recall("Does Alice have any food allergies?", user_id="alice", mode=mode)
        assert found and found[0].content == _LIFE[0] and found[0].relevance >= 0.2
    finally:
        await memory.close()


async def test_the_library_keeps_the_nearest_memories_by_default(memory: HierarchicalMemory) -> None:
    # The documented with_memory example: a true match that MiniLM puts below any useful floor.
    await memory.add("I prefer Go for performance-critical code", user_id="bob", importance=0.9)
    found = await memory.recall("What language for my new microservice?", user_id="bob")
    assert [r.content for r in found] == ["I prefer Go for performance-critical code"]
    assert memory.config.min_relevance == 0 and found[0].relevance < 0.2


async def test_full_text_has_no_default_floor_but_an_explicit_one_applies(open_memory: Callable[..., Any]) -> None:
    memory = await open_memory(min_relevance=0.2)
    try:
        for note in _LIFE:
            await memory.add(note, user_id="alice")
        query = "school seats marathon peanuts lasagne epipen flights autumn daughter grandmother tractor violin"
        found = await memory.text_search(query, user_id="alice", top_k=10)
        assert len(found) == len(_LIFE) and min(r.score for r in found) < 0.2
        floor = sorted(r.score for r in found)[2]
        kept = await memory.recall(query, user_id="alice", top_k=10, mode="text", min_relevance=floor)
        assert sorted(r.id for r in kept) == sorted(r.id for r in found if r.score >= floor)
        assert len(kept) == len(_LIFE) - 2
    finally:
        await memory.close()


@pytest.mark.parametrize("bad", [-0.1, 1.5, "high", True])
async def test_a_bad_min_relevance_names_the_argument_and_its_range(memory: HierarchicalMemory, bad: Any) -> None:
    from memory_mcp.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="min_relevance must be a number from 0 to 1"):
        await memory.recall("anything", user_id="alice", min_relevance=bad)
