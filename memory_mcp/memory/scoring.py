"""How recall scores and orders memories: every score lies on a fixed scale of 0 to 1.

A memory matches a query in two ways, each measured on 0..1:

- its meaning: the cosine similarity of its vector to the query's (below 0 counts as 0);
- its words: how much of the query it holds, BM25 relative to the query itself (see
  :mod:`memory_mcp.adapters.bm25`: 1 when it holds every query word, rare words counting more;
  capped at 1).

Its **relevance** is the stronger of the two: a paraphrase sharing no word is as relevant as its
meaning says, a memory naming the query's rare words as relevant as they say. Recall leaves out
what is less relevant than its floor (``min_relevance``; ``MemoryConfig.min_relevance``, which the
library leaves at 0 and the MCP server sets to 0.2). By default the floor applies where the query
was embedded: the nearest vectors always exist, related or not, so a query about nothing stored
would find its nearest noise. Full text alone only finds memories that hold a query word, and has
no default floor.

The **score** orders the answer. The semantic and text modes score by their one match. Hybrid
recall (``fusion="score"``, the default) fuses both as their weighted mean::

    fused(m) = (max(cos(m), 0) + text_weight * min(words(m), 1)) / (1 + text_weight)

so a memory that matches in meaning and in words outranks one that matches in one way only, by as
much as each match says (not by one rank, as rank fusion would). ``fusion="rrf"`` uses reciprocal
rank fusion instead, relative to its best possible value (first in both rankings), which keeps
the order and loses the meaning::

    rrf(m) = sum over the rankings r that contain m of  1 / (k + rank_r(m))      (rank from 1)
    fused(m) = rrf(m) / (2 / (k + 1))

Importance and recency then weigh the fused score::

    score(m) = fused(m) * (1 + importance_weight * importance(m)) / (1 + importance_weight)
                        * (1 + recency_weight * 0.5 ** (age_days(m) / half_life_days)) / (1 + recency_weight)

so a memory of importance 1 made today keeps its whole fused score and a less important or older
one gives up to ``importance_weight / (1 + importance_weight)`` and ``recency_weight / (1 +
recency_weight)`` of it. With both weights at 0 the order is the fused order. At an equal fused
score the more important memory and, at equal importance, the more recent one comes first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60) -> dict[int, float]:
    """Fused score of every key in any ranking (each ranking best first): RRF over the best it
    could be, first in every ranking."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    best = len(rankings) / (k + 1)
    return {key: value / best for key, value in fused.items()}


def score_fusion(
    similarity: Mapping[int, float], words: Mapping[int, float], text_weight: float = 1.0
) -> dict[int, float]:
    """Fused score of every key either side scored: the weighted mean of its cosine similarity
    (below 0 counts as 0) and its share of the query's words (capped at 1)."""
    fused: dict[int, float] = {}
    for key in dict.fromkeys([*similarity, *words]):
        semantic = max(similarity.get(key, 0.0), 0.0)
        fused[key] = (semantic + text_weight * min(words.get(key, 0.0), 1.0)) / (1.0 + text_weight)
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
    """The score of one memory from its fused score, importance and age: never above the fused score."""
    by_importance, by_recency = factors(
        importance=importance, age_days=age_days, importance_weight=importance_weight,
        recency_weight=recency_weight, half_life_days=half_life_days,
    )
    return fused * by_importance * by_recency


def factors(
    *, importance: float, age_days: float, importance_weight: float, recency_weight: float, half_life_days: float
) -> tuple[float, float]:
    """The two factors (each 0..1) by which importance and recency weigh a fused score; shown
    beside a result so that a person can see why it ranks where it does."""
    recency = 0.5 ** (max(age_days, 0.0) / half_life_days)
    return ((1.0 + importance_weight * importance) / (1.0 + importance_weight),
            (1.0 + recency_weight * recency) / (1.0 + recency_weight))


def estimate_tokens(text: str) -> int:
    """A cheap, model-independent token estimate (about four characters per token)."""
    return max(1, (len(text) + 3) // 4)
