"""How hybrid recall orders memories.

The semantic side scores a memory by its cosine similarity to the query, the full-text side by
BM25. By default (``fusion="score"``) the two scores are added, BM25 taken relative to the best
BM25 of the query so that both lie on a scale of about 0 to 1::

    fused(m) = max(cos(m), 0) + text_weight * bm25(m) / max over the candidates of bm25

A memory only one side found scores 0 on the other. Unlike rank fusion this keeps how much better
one memory matches than the next: a memory that shares the query's rare words outranks one that
only shares its common ones by as much as BM25 says, not by one rank. ``fusion="rrf"`` uses
reciprocal rank fusion instead, which needs no scores at all::

    rrf(m)   = sum over the rankings r that contain m of  1 / (k + rank_r(m))      (rank from 1)

Either way, importance and recency then weigh the fused score::

    score(m) = fused(m) * (1 + importance_weight * importance(m))
                        * (1 + recency_weight * 0.5 ** (age_days(m) / half_life_days))

With both weights at 0 the order is the fused order. At an equal fused score the more important
memory and, at equal importance, the more recent one comes first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60) -> dict[int, float]:
    """RRF score of every key in any ranking (each ranking best first)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return fused


def score_fusion(
    similarity: Mapping[int, float], text: Mapping[int, float], text_weight: float = 1.0
) -> dict[int, float]:
    """Fused score of every key either side scored: cosine (below 0 counts as 0) plus
    ``text_weight`` times BM25 relative to the best BM25 among ``text``."""
    best = max(text.values(), default=0.0)
    fused: dict[int, float] = {}
    for key in dict.fromkeys([*similarity, *text]):
        relative = text.get(key, 0.0) / best if best > 0 else 0.0
        fused[key] = max(similarity.get(key, 0.0), 0.0) + text_weight * relative
    return fused


def weigh(
    fused: float,
    *,
    importance: float,
    age_days: float,
    importance_weight: float,
    recency_weight: float,
    half_life_days: float,
) -> float:
    """The final score of one memory from its fused score, importance and age."""
    recency = 0.5 ** (max(age_days, 0.0) / half_life_days)
    return fused * (1.0 + importance_weight * importance) * (1.0 + recency_weight * recency)


def estimate_tokens(text: str) -> int:
    """A cheap, model-independent token estimate (about four characters per token)."""
    return max(1, (len(text) + 3) // 4)
