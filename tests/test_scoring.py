"""The ordering properties of hybrid ranking (memory_mcp.memory.scoring and DESIGN.md, "Categories
and ranking"): with the weights at 0 the fused score alone (cosine plus relative BM25 by default,
plain RRF with fusion="rrf"); importance, then recency, break ties. Unit tests of the functions,
then the same rules seen through recall.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from memory_mcp import HierarchicalMemory
from memory_mcp.memory.scoring import estimate_tokens, reciprocal_rank_fusion, score_fusion, weigh

WEIGHTS = {"importance_weight": 0.3, "recency_weight": 0.1, "half_life_days": 30.0}


def _order(scores: dict[int, float]) -> list[int]:
    return sorted(scores, key=lambda k: -scores[k])


# -- reciprocal rank fusion -------------------------------------------------------------------------


def test_rrf_sums_one_over_k_plus_rank_over_the_rankings_that_contain_a_key() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)
    assert fused == pytest.approx({1: 1 / 61 + 1 / 62, 2: 1 / 62, 3: 1 / 63 + 1 / 61})


def test_rrf_ranks_count_from_one() -> None:
    assert reciprocal_rank_fusion([[7]], k=1) == {7: 0.5}


def test_rrf_of_no_rankings_or_empty_rankings_is_empty() -> None:
    assert reciprocal_rank_fusion([]) == {}
    assert reciprocal_rank_fusion([[], []]) == {}


def test_rrf_of_a_single_ranking_keeps_its_order() -> None:
    ranking = [5, 3, 9, 1, 4]
    assert _order(reciprocal_rank_fusion([ranking])) == ranking


def test_rrf_default_k_is_60() -> None:
    assert reciprocal_rank_fusion([[1]]) == {1: pytest.approx(1 / 61)}


@pytest.mark.parametrize("k", [1, 10, 60, 1000])
def test_a_key_in_both_rankings_beats_a_key_at_the_same_rank_in_one_ranking(k: int) -> None:
    # "both" is at rank r in the first ranking and anywhere in the second; "one" is at rank r in
    # the second ranking only. Whatever r and wherever "both" sits in the second list, it wins.
    for r, s in itertools.product(range(1, 8), range(1, 40)):
        if s == r:
            continue
        first = list(range(100, 100 + r - 1)) + [1]  # key 1 ("both") at rank r
        second = list(range(200, 200 + 40))
        second[r - 1] = 2  # key 2 ("one") at rank r
        second[s - 1] = 1  # key 1 also at rank s
        fused = reciprocal_rank_fusion([first, second], k=k)
        assert fused[1] > fused[2], (k, r, s)


@pytest.mark.parametrize("k", [1, 60])
def test_mirrored_ranks_tie_and_a_better_rank_in_both_rankings_wins(k: int) -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 2, 1]], k=k)
    assert fused[1] == pytest.approx(fused[3])  # mirrored ranks tie
    assert reciprocal_rank_fusion([[1, 2], [1, 2]], k=k)[1] > reciprocal_rank_fusion([[1, 2], [1, 2]], k=k)[2]


# -- score fusion -----------------------------------------------------------------------------------


def test_score_fusion_adds_cosine_and_bm25_relative_to_the_best() -> None:
    fused = score_fusion({1: 0.5, 2: 0.3}, {2: 4.0, 3: 8.0}, text_weight=1.0)
    assert fused == pytest.approx({1: 0.5, 2: 0.3 + 0.5, 3: 1.0})


def test_score_fusion_weighs_text_and_counts_negative_cosine_as_zero() -> None:
    assert score_fusion({1: -0.2}, {1: 2.0}, text_weight=0.5) == pytest.approx({1: 0.5})
    assert score_fusion({1: 0.4}, {}, text_weight=2.0) == pytest.approx({1: 0.4})
    assert score_fusion({}, {}) == {}


def test_score_fusion_keeps_how_much_better_a_text_match_is() -> None:
    # Ranks alone would tie 1 and 2 (each first on one side); the scores do not.
    fused = score_fusion({1: 0.40, 2: 0.38}, {2: 9.0, 1: 1.0}, text_weight=1.0)
    assert fused[2] > fused[1]


# -- weigh ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("importance", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("age_days", [0.0, 1.0, 365.0])
def test_with_both_weights_zero_the_score_is_plain_rrf(importance: float, age_days: float) -> None:
    assert weigh(0.0321, importance=importance, age_days=age_days, importance_weight=0.0,
                 recency_weight=0.0, half_life_days=30.0) == 0.0321


def test_with_both_weights_zero_the_order_is_the_rrf_order() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3, 4], [4, 3, 5]], k=60)
    importance = {1: 0.0, 2: 1.0, 3: 0.2, 4: 0.9, 5: 0.5}
    age = {1: 400.0, 2: 0.0, 3: 5.0, 4: 90.0, 5: 0.1}
    weighed = {
        key: weigh(score, importance=importance[key], age_days=age[key], importance_weight=0.0,
                   recency_weight=0.0, half_life_days=30.0)
        for key, score in fused.items()
    }
    assert _order(weighed) == _order(fused)


@pytest.mark.parametrize("importance_weight", [0.05, 0.3, 2.0])
def test_at_equal_ranks_the_more_important_memory_ranks_first(importance_weight: float) -> None:
    rrf = 1 / 61
    levels = [0.0, 0.1, 0.5, 0.51, 0.9, 1.0]
    scores = [
        weigh(rrf, importance=i, age_days=3.0, importance_weight=importance_weight, recency_weight=0.1,
              half_life_days=30.0)
        for i in levels
    ]
    assert all(a < b for a, b in zip(scores, scores[1:]))


@pytest.mark.parametrize("recency_weight", [0.01, 0.1, 1.0])
def test_at_equal_ranks_and_importance_the_more_recent_memory_ranks_first(recency_weight: float) -> None:
    rrf = 1 / 61
    ages = [0.0, 0.5, 1.0, 7.0, 30.0, 365.0]  # youngest first
    scores = [
        weigh(rrf, importance=0.5, age_days=a, importance_weight=0.3, recency_weight=recency_weight,
              half_life_days=30.0)
        for a in ages
    ]
    assert all(a > b for a, b in zip(scores, scores[1:]))


def test_recency_halves_at_the_half_life() -> None:
    fresh = weigh(1.0, importance=0.0, age_days=0.0, importance_weight=0.0, recency_weight=1.0, half_life_days=10.0)
    half = weigh(1.0, importance=0.0, age_days=10.0, importance_weight=0.0, recency_weight=1.0, half_life_days=10.0)
    assert fresh == pytest.approx(2.0) and half == pytest.approx(1.5)


def test_a_memory_dated_in_the_future_is_no_fresher_than_one_made_now() -> None:
    now = weigh(1 / 61, importance=0.5, age_days=0.0, **WEIGHTS)
    future = weigh(1 / 61, importance=0.5, age_days=-3.0, **WEIGHTS)
    assert future == now


def test_the_score_follows_the_documented_formula() -> None:
    score = weigh(0.03, importance=0.8, age_days=15.0, importance_weight=0.3, recency_weight=0.1,
                  half_life_days=30.0)
    assert score == pytest.approx(0.03 * (1 + 0.3 * 0.8) * (1 + 0.1 * 0.5 ** 0.5))


def test_weigh_is_monotone_in_the_fused_score() -> None:
    low = weigh(1 / 62, importance=0.5, age_days=1.0, **WEIGHTS)
    high = weigh(1 / 61, importance=0.5, age_days=1.0, **WEIGHTS)
    assert high > low


def test_estimate_tokens_is_about_four_characters_per_token_and_never_zero() -> None:
    assert estimate_tokens("") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100


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
