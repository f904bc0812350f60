"""How hybrid recall orders memories.

Semantic (cosine) and full-text (BM25) rankings are fused with reciprocal rank fusion, which needs
no calibration between the two scores' scales::

    rrf(m)   = sum over the rankings r that contain m of  1 / (k + rank_r(m))      (rank from 1)
    score(m) = rrf(m) * (1 + importance_weight * importance(m))
                      * (1 + recency_weight * 0.5 ** (age_days(m) / half_life_days))

With both weights at 0 the order is plain RRF. With equal ranks, the more important memory and,
at equal importance, the more recent one comes first. A memory found by both rankings beats one
found at the same rank by only one.
"""

from __future__ import annotations

from collections.abc import Sequence


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60) -> dict[int, float]:
    """RRF score of every key in any ranking (each ranking best first)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return fused


def weigh(
    rrf: float,
    *,
    importance: float,
    age_days: float,
    importance_weight: float,
    recency_weight: float,
    half_life_days: float,
) -> float:
    """The final score of one memory from its fused score, importance and age."""
    recency = 0.5 ** (max(age_days, 0.0) / half_life_days)
    return rrf * (1.0 + importance_weight * importance) * (1.0 + recency_weight * recency)


def estimate_tokens(text: str) -> int:
    """A cheap, model-independent token estimate (about four characters per token)."""
    return max(1, (len(text) + 3) // 4)
