"""Reranking (``rerank=True``): hybrid recall's best candidates reordered by late interaction over
the embedding model's token vectors, with the real model, on both storage engines; its cache; and
a configuration it cannot serve, said in one line by the library and by the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memory_mcp import HierarchicalMemory, MemoryConfig
from memory_mcp.errors import EmbedderError
from memory_mcp.memory.ports import TokenVectors
from memory_mcp.memory.rerank import CONTENT_WEIGHT, CONTEXT_WEIGHT, TokenCache

# One user's memories, sharing much of their vocabulary, some with the conversation around them.
MEMORIES = [
    ("I painted a sunset over the lake last weekend, in watercolours.", "We talked about hobbies."),
    ("My sister paints portraits and sells them at the market.", None),
    ("The lake house needs a new coat of paint before summer.", "Planning repairs for the lake house."),
    ("I went running by the lake on Saturday morning.", None),
    ("We watched the sunset from the pier after dinner.", "A trip to the coast with friends."),
    ("I started a pottery class on Tuesday evenings.", None),
    ("My daughter drew a picture of our dog for school.", "She was proud of her drawing."),
    ("I bought new brushes and a watercolour pad at the art shop.", None),
    ("The art museum has an exhibition of landscape paintings this month.", None),
    ("I fixed the fence by the lake house with my brother.", None),
]
QUERIES = ["What did I paint last weekend?", "Who sells portraits?", "What needs painting before summer?",
           "What art supplies did I buy?", "Where did we watch the sunset?"]


async def _stored(open_memory: Any, **settings: Any) -> HierarchicalMemory:
    memory = await open_memory(**settings)
    for content, context in MEMORIES:
        await memory.add(content, "u", context=context)
    return memory


async def test_reranked_scores_are_the_hybrid_score_and_the_token_matches_weighed_as_documented(
    open_memory: Any, embedder: Any
) -> None:
    plain = await _stored(open_memory)
    try:
        before = {q: await plain.search(q, "u", top_k=6, mode="hybrid") for q in QUERIES}
    finally:
        await plain.close()
    reranking = await open_memory(rerank=True, rerank_depth=6)
    try:
        for query in QUERIES:
            after = await reranking.search(query, "u", top_k=6, mode="hybrid")
            assert {r.id for r in after} == {r.id for r in before[query]}  # the same candidates, reordered
            q = (await embedder.token_vectors([query]))[0]
            memories = {r.id: r.memory for r in before[query]}
            own = {i: (await embedder.token_vectors([m.content]))[0] for i, m in memories.items()}
            around = {i: (await embedder.token_vectors([m.context]))[0] if m.context else None
                      for i, m in memories.items()}
            # each query token weighs its IDF among the candidates' tokens (memory and context)
            holding = [set(own[i].ids.tolist()) | (set(around[i].ids.tolist()) if around[i] else set()) for i in memories]
            df = np.array([sum(t in h for h in holding) for t in q.ids.tolist()])
            idf = np.log(1 + (len(holding) - df + 0.5) / (df + 0.5))
            weights = idf / idf.sum()
            for result in after:
                best_own = (q.vectors @ own[result.id].vectors.T).max(axis=1)
                best = best_own if around[result.id] is None else np.maximum(
                    best_own, (q.vectors @ around[result.id].vectors.T).max(axis=1))
                hybrid = next(r.score for r in before[query] if r.id == result.id)
                expected = (hybrid + CONTENT_WEIGHT * max(weights @ best_own, 0) + CONTEXT_WEIGHT * max(weights @ best, 0)) \
                    / (1 + CONTENT_WEIGHT + CONTEXT_WEIGHT)
                assert result.score == pytest.approx(expected, abs=2e-3), (query, result.content)
            assert [r.score for r in after] == sorted((r.score for r in after), reverse=True)
            assert all(0 <= r.score <= 1 for r in after)
    finally:
        await reranking.close()


async def test_rerank_reorders_what_hybrid_recall_ranks_and_leaves_the_other_modes_alone(open_memory: Any) -> None:
    plain = await _stored(open_memory)
    try:
        hybrid = [[r.id for r in await plain.recall(q, "u", top_k=5)] for q in QUERIES]
        others = [[r.id for r in await plain.search(q, "u", top_k=5, mode=m)] for q in QUERIES for m in ("semantic", "text")]
    finally:
        await plain.close()
    reranking = await open_memory(rerank=True)
    try:
        reranked = [[r.id for r in await reranking.recall(q, "u", top_k=5)] for q in QUERIES]
        assert [[r.id for r in await reranking.search(q, "u", top_k=5, mode=m)] for q in QUERIES
                for m in ("semantic", "text")] == others
    finally:
        await reranking.close()
    assert reranked != hybrid  # it does reorder
    assert reranked[0][0] == hybrid[0][0]  # and the memory that answers the first question stays first


class _Counting:
    """The session's embedder, counting the texts whose tokens it is asked for."""

    def __init__(self, inner: Any):
        self._inner = inner
        self.texts: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def token_vectors(self, texts: list[str]) -> list[TokenVectors]:
        self.texts.extend(texts)
        return await self._inner.token_vectors(texts)

    async def aclose(self) -> None:
        pass


async def test_tokens_of_a_memory_reranked_before_come_from_the_cache(db_path: Path, embedder: Any) -> None:
    counting = _Counting(embedder)
    async with await HierarchicalMemory.create(MemoryConfig(db_path=db_path, rerank=True), embedder=counting) as memory:  # type: ignore[arg-type]
        for content, context in MEMORIES:
            await memory.add(content, "u", context=context)
        first = await memory.recall(QUERIES[0], "u", top_k=5)
        asked = len(counting.texts)
        again = await memory.recall(QUERIES[0], "u", top_k=5)
    assert [r.id for r in again] == [r.id for r in first]
    assert asked > 1 + len(first)  # the query, every candidate and its context
    assert counting.texts[asked:] == [QUERIES[0]]  # the second time, the query alone


def test_the_token_cache_stays_within_its_bytes_and_drops_the_least_recently_used() -> None:
    def tokens(n: int) -> TokenVectors:
        return TokenVectors(np.arange(n, dtype=np.int64), np.ones((n, 384), dtype=np.float32))

    one = 10 * 8 + 10 * 384 * 2 + 1  # ids, float16 vectors, a one-letter text
    cache = TokenCache(max_bytes=3 * one)
    for text in "abc":
        cache.put(text, tokens(10))
    assert len(cache) == 3 and cache.size == 3 * one
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("d", tokens(10))
    assert cache.get("b") is None and all(cache.get(t) is not None for t in "acd")
    assert cache.size <= cache.max_bytes
    cache.put("e", tokens(1000))  # larger than the whole cache: not kept, nothing dropped for it
    assert cache.get("e") is None and len(cache) == 3
    assert cache.get("a").vectors.dtype == np.float16  # type: ignore[union-attr]


async def test_rerank_with_an_embedder_that_has_no_token_vectors_is_refused_with_the_fix(tmp_path: Path) -> None:
    config = MemoryConfig(db_path=tmp_path / "m.db", rerank=True, embedder_backend="openai", openai_api_key="k")
    with pytest.raises(EmbedderError, match=r"MEMORY_MCP_RERANK=false"):
        await HierarchicalMemory.create(config)
    assert not (tmp_path / "m.db").exists()


@pytest.mark.slow
@pytest.mark.parametrize("setting", [
    {"MEMORY_MCP_RERANK": "true", "MEMORY_MCP_EMBEDDER_BACKEND": "ollama"},
    {"MEMORY_MCP_EMBEDDER_MODEL": "no-such-model"},  # the local backend runs its packaged model only
])
def test_the_server_says_an_embedder_setting_it_cannot_serve_in_one_line(tmp_path: Path, setting: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "memory_mcp", "serve", "--db-path", str(tmp_path / "m.db")],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, env={**os.environ, **setting},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("memory-mcp: ") and ("MEMORY_MCP_RERANK=false" in last or "sentence-transformers" in last)
