"""BM25 over one user's memories, shared by every text index.

An index supplies the postings (which of the user's memories hold a word, newest first, in the
memory itself or in its context) and the user's counts; this module turns them into scores. Each
word counts once per memory (memories are short statements), a word found only in the context
counts ``context_weight`` of one, and of a word in more than ``cap`` memories only the newest are
scored, while its document frequency still counts them all: a common word cannot make one query
score the whole table.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

# BM25 constants, as in FTS5 and most engines.
K1 = 1.2
B = 0.75

Column = Literal["body", "context"]
# (word, column, at most n) -> keys of the user's memories holding the word there, newest first
Newest = Callable[[str, Column, int], Awaitable[list[int]]]
# word -> how many of the user's memories hold it, in either column
CountAll = Callable[[str], Awaitable[int]]


async def match(
    terms: Iterable[str], n_docs: int, newest: Newest, count_all: CountAll, *, cap: int, context_weight: float
) -> dict[int, list[tuple[float, float]]]:
    """key -> (idf, how much the word counts there) for each query word the memory holds."""
    matched: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for term in terms:
        found: dict[int, float] = {}
        capped = False
        for column, weight in (("context", context_weight), ("body", 1.0)):  # the body's weight wins
            keys = await newest(term, column, cap)  # type: ignore[arg-type]
            capped |= len(keys) == cap
            found.update((key, weight) for key in keys)
        if not found:
            continue
        df = await count_all(term) if capped else len(found)
        idf = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
        for key, tf in found.items():
            matched[key].append((idf, tf))
    return matched


def rank(
    matched: dict[int, list[tuple[float, float]]], lengths: dict[int, int], avgdl: float, count: int
) -> list[tuple[int, float]]:
    """The best ``count`` (key, score) of the memories in ``lengths`` (key -> length in tokens)."""
    scored = []
    for key, dl in lengths.items():
        norm = K1 * (1 - B + B * dl / avgdl)
        score = sum(idf * tf * (K1 + 1) / (tf + norm) for idf, tf in matched[key] if tf > 0)
        if score > 0:
            scored.append((key, score))
    scored.sort(key=lambda kv: (-kv[1], -kv[0]))
    return scored[:count]
