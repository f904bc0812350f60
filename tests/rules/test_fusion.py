"""The ordering properties of hybrid ranking, as pure functions (memory_mcp.memory.scoring): with the
weights at 0 the relevance alone (the weighted mean of cosine and the query's share of words by
default, RRF relative to its best with fusion="rrf"); importance, then recency, break ties; every
value on 0..1. No model is loaded here; ``test_scoring.py`` checks the same rules through recall.
"""

from __future__ import annotations

import itertools

import pytest

from memory_mcp.memory.scoring import estimate_tokens, reciprocal_rank_fusion, score_fusion, weigh

WEIGHTS = {"importance_weight": 0.3, "recency_weight": 0.1, "half_life_days": 30.0}


def _order(scores: dict[int, float]) -> list[int]:
    return sorted(scores, key=lambda k: -scores[k])


# -- reciprocal rank fusion -------------------------------------------------------------------------


def test_rrf_sums_one_over_k_plus_rank_over_the_rankings_that_contain_a_key_relative_to_the_best() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)
    best = 2 / 61
    assert fused == pytest.approx({1: (1 / 61 + 1 / 62) / best, 2: 1 / 62 / best, 3: (1 / 63 + 1 / 61) / best})


def test_rrf_ranks_count_from_one_and_first_everywhere_is_one() -> None:
    assert reciprocal_rank_fusion([[7]], k=1) == {7: 1.0}
    assert reciprocal_rank_fusion([[7, 8], [7]], k=1) == {7: 1.0, 8: pytest.approx((1 / 3) / 1.0)}


def test_rrf_of_no_rankings_or_empty_rankings_is_empty() -> None:
    assert reciprocal_rank_fusion([]) == {}
    assert reciprocal_rank_fusion([[], []]) == {}


def test_rrf_of_a_single_ranking_keeps_its_order() -> None:
    ranking = [5, 3, 9, 1, 4]
    assert _order(reciprocal_rank_fusion([ranking])) == ranking


def test_rrf_default_k_is_60() -> None:
    assert reciprocal_rank_fusion([[1, 2]]) == {1: pytest.approx(1.0), 2: pytest.approx(61 / 62)}


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


def test_score_fusion_is_the_weighted_mean_of_cosine_and_the_share_of_words() -> None:
    fused = score_fusion({1: 0.5, 2: 0.3}, {2: 0.4, 3: 0.8}, text_weight=1.0)
    assert fused == pytest.approx({1: 0.25, 2: 0.35, 3: 0.4})
    assert score_fusion({1: 0.6}, {1: 0.2}, text_weight=0.5) == pytest.approx({1: (0.6 + 0.1) / 1.5})


def test_score_fusion_counts_negative_cosine_as_zero_and_caps_words_at_one() -> None:
    assert score_fusion({1: -0.2}, {1: 0.5}, text_weight=0.5) == pytest.approx({1: 0.25 / 1.5})
    assert score_fusion({1: 0.4}, {}, text_weight=2.0) == pytest.approx({1: 0.4 / 3})
    assert score_fusion({1: 1.0}, {1: 1.3}, text_weight=0.7) == pytest.approx({1: 1.0})
    assert score_fusion({}, {}) == {}


def test_score_fusion_keeps_how_much_better_a_text_match_is() -> None:
    # Ranks alone would tie 1 and 2 (each first on one side); the scores do not.
    fused = score_fusion({1: 0.40, 2: 0.38}, {2: 0.9, 1: 0.1}, text_weight=1.0)
    assert fused[2] > fused[1]


@pytest.mark.parametrize("text_weight", [0.0, 0.7, 3.0])
def test_score_fusion_stays_within_zero_and_one(text_weight: float) -> None:
    values = [-1.0, -0.3, 0.0, 0.2, 0.99, 1.0]
    for cos, words in itertools.product(values, [0.0, 0.3, 1.0, 1.7]):
        assert 0.0 <= score_fusion({1: cos}, {1: words}, text_weight)[1] <= 1.0


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
    assert fresh == pytest.approx(1.0) and half == pytest.approx(0.75)


def test_an_important_memory_made_now_keeps_its_whole_relevance_and_no_score_exceeds_it() -> None:
    assert weigh(0.62, importance=1.0, age_days=0.0, **WEIGHTS) == pytest.approx(0.62)
    for importance, age in itertools.product([0.0, 0.5, 1.0], [0.0, 3.0, 900.0]):
        assert 0.0 <= weigh(0.62, importance=importance, age_days=age, **WEIGHTS) <= 0.62


def test_a_memory_dated_in_the_future_is_no_fresher_than_one_made_now() -> None:
    now = weigh(1 / 61, importance=0.5, age_days=0.0, **WEIGHTS)
    future = weigh(1 / 61, importance=0.5, age_days=-3.0, **WEIGHTS)
    assert future == now


def test_the_score_follows_the_documented_formula() -> None:
    score = weigh(0.03, importance=0.8, age_days=15.0, importance_weight=0.3, recency_weight=0.1,
                  half_life_days=30.0)
    assert score == pytest.approx(0.03 * (1 + 0.3 * 0.8) / 1.3 * (1 + 0.1 * 0.5 ** 0.5) / 1.1)


def test_weigh_is_monotone_in_the_fused_score() -> None:
    low = weigh(1 / 62, importance=0.5, age_days=1.0, **WEIGHTS)
    high = weigh(1 / 61, importance=0.5, age_days=1.0, **WEIGHTS)
    assert high > low


def test_estimate_tokens_is_about_four_characters_per_token_and_never_zero() -> None:
    assert estimate_tokens("") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100
