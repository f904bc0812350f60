"""Recall and ranking: candidates from both indexes, fused, weighed, cut to ``top_k`` and a budget.

Hybrid recall (the default) asks the text index and the vector index for candidates among what is
visible from the position, scores what only full text found semantically too (from its stored
vector), fuses both scores (see :mod:`memory_mcp.memory.scoring`), weighs the result by importance
and recency, and by how near it lies to a time the query names (see
:mod:`memory_mcp.memory.timeframe`). With ``MemoryConfig.rerank`` the best few are then reordered
token by token (see :mod:`memory_mcp.memory.rerank`). Last, a question gives way to the turn that
answers it (see :mod:`memory_mcp.memory.dialogue`). While the embedder is still loading, hybrid
recall answers from full text alone.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import numpy as np

from .dialogue import answers_first
from .models import Memory, SearchResult
from .parts import Parts
from .ports import MemoryFilter, Selection, Vector, VectorFilter
from .rerank import rerank
from .scope import Position
from .scoring import estimate_tokens, reciprocal_rank_fusion, score_fusion, weigh
from .timeframe import toward_named_time

SearchMode = Literal["hybrid", "semantic", "text"]


async def find(
    parts: Parts,
    query: str,
    position: Position,
    flt: MemoryFilter,
    now: float,
    embedding: asyncio.Future[Vector] | None,
    *,
    mode: str,
    top_k: int,
    min_similarity: float,
    min_relevance: float | None,
    token_budget: int | None,
) -> tuple[int | None, list[SearchResult]]:
    """The user's key (None if the user has stored nothing) and the ranked results. ``flt`` has
    been checked; ``embedding`` is the query's vector on its way, or None for full text alone."""
    user_key = await parts.user_key(position.user_id)
    if user_key is None:
        return None, []
    within = Selection(user_key, (flt,), now)
    semantic: list[tuple[int, float]] = []
    text: list[tuple[int, float]] = []
    depth = max(top_k * 3, 30) if mode == "hybrid" else top_k
    if mode in ("hybrid", "text"):
        text = await parts.text_index.search(query, user_key, depth, within)
    vector: Vector | None = None
    if embedding is not None:
        vector = (await embedding)[0]
        semantic = await nearest(parts, vector, within, depth)
        if min_similarity > 0:
            semantic = [(k, s) for k, s in semantic if s >= min_similarity]

    similarity = dict(semantic)
    words = dict(text)
    keys = list(dict.fromkeys([k for k, _ in semantic] + [k for k, _ in text]))
    if mode == "hybrid" and vector is not None:
        # What only full text found is scored semantically too, from its stored vector.
        similarity.update(await similarities(parts, vector, [k for k in keys if k not in similarity]))
        if min_similarity > 0:  # a memory not embedded yet has no similarity to pass
            keys = [k for k in keys if similarity.get(k, -1.0) >= min_similarity]
    async with parts.store.reading() as db:
        rows = await db.by_keys(keys)
    ranked = rank(
        parts, keys, rows, similarity, words, [k for k, _ in semantic], [k for k, _ in text], mode, now, min_relevance,
        vector is not None,
    )
    if mode == "hybrid":
        ranked = toward_named_time(ranked, rows, query, now)
    if parts.token_cache is not None and mode == "hybrid" and vector is not None:  # rerank is on
        head = ranked[:max(parts.config.rerank_depth, top_k)]
        ranked = await rerank(parts.embedder, parts.token_cache, query, head, rows)  # type: ignore[arg-type]
    if mode == "hybrid":
        ranked = answers_first(ranked, rows)
    return user_key, within_budget(ranked, rows, similarity, words, top_k, token_budget)


def rank(
    parts: Parts,
    keys: list[int],
    rows: dict[int, Memory],
    similarity: dict[int, float],
    words: dict[int, float],
    semantic_order: list[int],
    text_order: list[int],
    mode: str,
    now: float,
    min_relevance: float | None,
    embedded: bool,
) -> list[tuple[int, float, float]]:
    """(key, score, relevance) best first, none less relevant than ``min_relevance`` (by default
    ``MemoryConfig.min_relevance`` where the query was embedded, else none). A memory's relevance
    is the stronger of its two matches, meaning (cosine) and words (see :mod:`.scoring`); its score
    is that match alone in the semantic and text modes, and in hybrid mode both fused, then
    weighed. Without the query's vector (``embedded`` False: the model is not ready) hybrid recall
    has only the words."""
    keys = [k for k in keys if k in rows]
    config = parts.config
    meaning = {k: max(similarity.get(k, 0.0), 0.0) for k in keys} if embedded else {}
    said = {k: min(words.get(k, 0.0), 1.0) for k in keys} if mode != "semantic" else {}
    relevance = {k: max(meaning.get(k, 0.0), said.get(k, 0.0)) for k in keys}
    if min_relevance is None:  # nearest neighbours always exist, related or not; a word match is one
        min_relevance = config.min_relevance if embedded else 0.0
    keys = [k for k in keys if relevance[k] >= min_relevance]
    if mode != "hybrid" or not embedded:  # one side alone, in its own order (BM25's, past the cap at 1)
        return [(k, relevance[k], relevance[k]) for k in keys]
    if config.fusion == "rrf":
        fused = reciprocal_rank_fusion([semantic_order, text_order], config.rrf_k)
    else:
        fused = score_fusion(similarity, words, config.text_weight)
    ranked = []
    for k in keys:
        m = rows[k]
        ranked.append((k, weigh(
            fused[k], importance=m.importance, age_days=(now - m.valid_from.timestamp()) / 86400,
            importance_weight=config.importance_weight, recency_weight=config.recency_weight,
            half_life_days=config.recency_half_life_days,
        ), relevance[k]))
    ranked.sort(key=lambda ranking: -ranking[1])
    return ranked


def within_budget(
    ranked: list[tuple[int, float, float]],
    rows: dict[int, Memory],
    similarity: dict[int, float],
    words: dict[int, float],
    top_k: int,
    token_budget: int | None,
) -> list[SearchResult]:
    """The best ``top_k`` results whose contents fit in ``token_budget`` (estimated) tokens: one too
    long to fit is skipped, and shorter ones after it may still fit."""
    results: list[SearchResult] = []
    budget = token_budget
    for key, score, relevance in ranked:
        memory = rows[key]
        if budget is not None:
            cost = estimate_tokens(memory.content)
            if cost > budget:
                continue
            budget -= cost
        results.append(SearchResult(
            memory=memory, score=score, relevance=relevance, similarity=similarity.get(key),
            text_score=None if key not in words else min(words[key], 1.0),
        ))
        if len(results) == top_k:
            break
    return results


async def nearest(parts: Parts, vector: Vector, within: Selection, want: int) -> list[tuple[int, float]]:
    """Up to ``want`` nearest vectors in the selection: HNSW has no filter, so ask for more until
    enough pass (or the user's index is exhausted)."""
    index = parts.vectors
    assert index is not None
    count = max(want * 4, 64)
    while True:
        found = await index.search(vector, count, VectorFilter(user_key=within.user_key))
        if not found:
            return []
        async with parts.store.reading() as db:
            allowed = await db.filter_keys([k for k, _ in found], within)
        passing = [(k, s) for k, s in found if k in allowed]
        if len(passing) >= want or len(found) < count:
            return passing[:want]
        count *= 4


async def similarities(parts: Parts, vector: Vector, keys: list[int]) -> dict[int, float]:
    """Cosine similarity of the query to the stored vectors of these memories (those that have one)."""
    if not keys:
        return {}
    async with parts.store.reading() as db:
        stored = await db.embeddings(keys)
    if not stored:
        return {}
    order = list(stored)
    matrix = np.stack([stored[k] for k in order])
    query = np.asarray(vector, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(query))
    cosines = (matrix @ query) / np.maximum(norms, 1e-12)
    return {key: float(c) for key, c in zip(order, cosines, strict=True)}
