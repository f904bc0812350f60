"""The ordering properties of hybrid ranking seen through recall (see docs/design.md, "Recall and
ranking"; the functions alone are tested in rules/test_fusion.py): scores are the documented
formula over the real indexes, and a memory both sides find outranks one-sided hits.
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


async def test_hybrid_recall_puts_a_memory_found_by_both_sides_above_one_sided_hits(
    memory: HierarchicalMemory,
) -> None:
    for note in _NOTES:
        await memory.add(note, user_id="u")
    results = await memory.recall("favourite programming language", user_id="u", top_k=10)
    assert len(results) == len(_NOTES)
    both = [r for r in results if r.similarity is not None and r.text_score is not None]
    one_sided = [r for r in results if r.similarity is None or r.text_score is None]
    assert [r.content for r in both] == ["Her favourite tea is jasmine green tea"]
    assert results[0].content == "Her favourite tea is jasmine green tea"
    assert results.index(both[-1]) < min(results.index(r) for r in one_sided)
    # Semantically alone the Python memory is closer: the fusion, not similarity, put the tea first.
    python = next(r for r in results if r.content.startswith("Codes mostly in Python"))
    assert python.similarity is not None and python.similarity > results[0].similarity
    assert python.text_score is None
    semantic = await memory.search("favourite programming language", user_id="u", top_k=10)
    assert semantic[0].content.startswith("Codes mostly in Python")


async def test_hybrid_scores_with_zero_weights_are_the_rrf_of_the_semantic_and_text_rankings(
    open_memory: Callable[..., Any],
) -> None:
    memory = await open_memory(fusion="rrf", importance_weight=0.0, recency_weight=0.0)
    try:
        for i, note in enumerate(_NOTES + ["Drinks favourite espresso every morning"]):
            await memory.add(note, user_id="u", importance=i / 10)
        query = "favourite programming language"
        semantic = [r.memory.id for r in await memory.search(query, user_id="u", top_k=30)]
        text = [r.memory.id for r in await memory.text_search(query, user_id="u", top_k=30)]
        assert len(text) == 2
        results = await memory.recall(query, user_id="u", top_k=30)
        expected: dict[str, float] = {}
        for ranking in (semantic, text):
            for rank, memory_id in enumerate(ranking, start=1):
                expected[memory_id] = expected.get(memory_id, 0.0) + 1 / (memory.config.rrf_k + rank)
        assert {r.memory.id: r.score for r in results} == pytest.approx(expected)
        assert [r.score for r in results] == pytest.approx(sorted(expected.values(), reverse=True))
    finally:
        await memory.close()


async def test_hybrid_scores_with_zero_weights_are_cosine_plus_relative_bm25(
    open_memory: Callable[..., Any],
) -> None:
    memory = await open_memory(importance_weight=0.0, recency_weight=0.0, text_weight=0.7)
    try:
        for note in _NOTES + ["Drinks favourite espresso every morning", "Her favourite language is Rust"]:
            await memory.add(note, user_id="u")
        query = "favourite programming language"
        cosine = {r.memory.id: r.similarity for r in await memory.search(query, user_id="u", top_k=30)}
        bm25 = {r.memory.id: r.score for r in await memory.text_search(query, user_id="u", top_k=30)}
        assert len(bm25) == 3 and len(cosine) == 6
        results = await memory.recall(query, user_id="u", top_k=30)
        best = max(bm25.values())
        expected = {i: max(c, 0.0) + 0.7 * bm25.get(i, 0.0) / best for i, c in cosine.items()}
        assert {r.memory.id: r.score for r in results} == pytest.approx(expected)
        assert [r.score for r in results] == pytest.approx(sorted(expected.values(), reverse=True))
        assert {r.memory.id: r.similarity for r in results} == pytest.approx(cosine)
    finally:
        await memory.close()


async def test_hybrid_scores_weigh_importance_as_documented(memory: HierarchicalMemory) -> None:
    for i, note in enumerate(_NOTES):
        await memory.add(note, user_id="u", importance=0.2 * i)
    query = "favourite programming language"
    cosine = {r.memory.id: r.similarity for r in await memory.search(query, user_id="u", top_k=30)}
    bm25 = {r.memory.id: r.score for r in await memory.text_search(query, user_id="u", top_k=30)}
    config = memory.config
    results = await memory.recall(query, user_id="u", top_k=30)
    assert len(results) == len(_NOTES)
    best = max(bm25.values())
    for r in results:
        fused = max(cosine[r.memory.id], 0.0) + config.text_weight * bm25.get(r.memory.id, 0.0) / best
        weights = (1 + config.importance_weight * r.memory.importance) * (1 + config.recency_weight)
        # The memories are seconds old: their recency factor is 1 to well within the tolerance.
        assert r.score == pytest.approx(fused * weights, rel=1e-6)


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
