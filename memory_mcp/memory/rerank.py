"""Reranking (``MemoryConfig.rerank``): the best few candidates of hybrid recall, reordered by how
closely the query's words are matched, word by word, by each memory's.

A memory's vector is one mean of its tokens' vectors, so a memory about many things matches each of
them weakly. Late interaction (ColBERT's MaxSim) keeps the tokens apart: every query token finds
its most similar token in the memory, and those maxima are averaged. The token vectors come from
the same embedding model, in context (the model's last layer), so "paint" matches "painting" and
"canvas" more than "car". Each query token counts as much as it is rare among the candidates
(its IDF over their tokens): a word that every candidate holds cannot tell them apart.

Each of the best ``rerank_depth`` candidates (at least ``top_k``) gets two such matches, against
the memory alone and against the memory with its context (the better of the two for each query
token), and a new score, still on 0..1::

    score'(m) = (score(m) + CONTENT_WEIGHT * tokens(m) + CONTEXT_WEIGHT * tokens(m + context))
                / (1 + CONTENT_WEIGHT + CONTEXT_WEIGHT)

where ``score`` is hybrid recall's (see :mod:`.scoring`) and ``tokens`` the weighted mean of the
query tokens' best cosines (below 0 counts as 0). The candidates' tokens go through the model at
query time; a cache keeps them (keyed by the text) so that memories recalled again cost nothing.
The weights were chosen on LoCoMo's development split (``docs/benchmarks/locomo-rerank.md``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from .models import Memory
from .ports import TokenEmbedder, TokenVectors

CONTENT_WEIGHT = 1.0
CONTEXT_WEIGHT = 0.5


class TokenCache:
    """Texts' token vectors (kept as float16), the most recently used first out, bounded in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[str, TokenVectors] = OrderedDict()

    def get(self, text: str) -> TokenVectors | None:
        found = self._items.get(text)
        if found is not None:
            self._items.move_to_end(text)
        return found

    def put(self, text: str, tokens: TokenVectors) -> None:
        kept = TokenVectors(tokens.ids, tokens.vectors.astype(np.float16))
        cost = kept.ids.nbytes + kept.vectors.nbytes + len(text)
        if cost > self.max_bytes or text in self._items:
            return
        self._items[text] = kept
        self.size += cost
        while self.size > self.max_bytes:
            old_text, old = self._items.popitem(last=False)
            self.size -= old.ids.nbytes + old.vectors.nbytes + len(old_text)

    def __len__(self) -> int:
        return len(self._items)


async def rerank(
    embedder: TokenEmbedder,
    cache: TokenCache,
    query: str,
    head: Sequence[tuple[int, float, float]],
    rows: dict[int, Memory],
) -> list[tuple[int, float, float]]:
    """``head`` ((key, score, relevance), best first) reordered by the scores above."""
    if not head:
        return []
    texts = [query] + [t for k, _, _ in head for t in (rows[k].content, rows[k].context) if t]
    tokens = {text: cache.get(text) for text in texts[1:]}
    missing = list(dict.fromkeys(t for t, found in tokens.items() if found is None))
    computed = await embedder.token_vectors([query, *missing])
    for text, found in zip(missing, computed[1:], strict=True):
        tokens[text] = found
        cache.put(text, found)
    q = computed[0]
    if not len(q.ids):
        return list(head)
    own = [tokens[rows[k].content] for k, _, _ in head]
    around = [tokens[rows[k].context] if rows[k].context else None for k, _, _ in head]
    holding = [set(o.ids.tolist()) | (set(a.ids.tolist()) if a else set()) for o, a in zip(own, around, strict=True)]
    weights = _rarity(q.ids, holding)
    rescored = []
    for (key, score, relevance), o, a in zip(head, own, around, strict=True):
        in_memory = _best_matches(q.vectors, o.vectors)
        with_context = in_memory if a is None else np.maximum(in_memory, _best_matches(q.vectors, a.vectors))
        matched = max(float(weights @ in_memory), 0.0), max(float(weights @ with_context), 0.0)
        new = (score + CONTENT_WEIGHT * matched[0] + CONTEXT_WEIGHT * matched[1]) / (1 + CONTENT_WEIGHT + CONTEXT_WEIGHT)
        rescored.append((key, new, relevance))
    rescored.sort(key=lambda ranking: -ranking[1])
    return rescored


def _best_matches(query: np.ndarray, memory: np.ndarray) -> np.ndarray:
    """For each query token, its best cosine with a token of the memory (0 if it has none)."""
    if not len(memory):
        return np.zeros(len(query), dtype=np.float32)
    return (query @ memory.astype(np.float32).T).max(axis=1)


def _rarity(query_ids: np.ndarray, candidates: list[set[int]]) -> np.ndarray:
    """Weights of the query tokens, summing to 1: each token's IDF among the candidates (BM25's)."""
    n = len(candidates)
    df = np.array([sum(1 for c in candidates if t in c) for t in query_ids.tolist()], dtype=np.float64)
    idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
    total = idf.sum()
    return (idf / total if total > 0 else np.full(len(idf), 1.0 / len(idf))).astype(np.float32)
