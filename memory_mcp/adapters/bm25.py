"""BM25 over one user's memories, shared by every text index.

An index supplies each query word's postings (which of the user's memories hold it, in the memory
itself or only in its context, and how many do) and the user's counts; this module turns them
into scores. Each word counts once per memory (memories are short statements) and a word found
only in the context counts ``context_weight`` of one. An index may score only the newest of a
word's memories (a cap, so that a common word cannot make one query score the whole table) as
long as the word's document frequency still counts them all.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

# BM25 constants, as in FTS5 and most engines.
K1 = 1.2
B = 0.75

# One query word's postings: key -> how much the word counts in that memory (1 in the memory
# itself, ``context_weight`` in its context only), and how many of the user's memories hold it.
Postings = tuple[dict[int, float], int]


def weigh(postings: Iterable[Postings], n_docs: int) -> dict[int, list[tuple[float, float]]]:
    """key -> (idf, how much the word counts there) for each query word the memory holds."""
    matched: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for found, df in postings:
        if not found:
            continue
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
