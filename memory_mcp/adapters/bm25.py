"""BM25 over one user's memories, shared by every text index.

An index finds each query word's postings (the user's memories that hold it, in the memory
itself or only in its context) and the user's counts; this module turns them into scores. Each
word counts once per memory (memories are short statements) and a word found only in the context
counts ``context_weight`` of one. An index may return only the newest of a word's memories (a cap,
so that a common word cannot make one query score the whole table) as long as the word's document
frequency still counts them all. Scoring is vectorised: a query whose words are in thousands of
memories is scored in well under a millisecond.

Scores are on the query's own scale: BM25 divided by the sum of the query words' IDF, what a
memory of average length holding every word of the query once would score. 1 (or a little more,
for a shorter memory) means it holds the whole query, 0.5 about half of it, rare words counting
more. A query word no memory holds counts in that sum too: a query half made of unknown words
matches at most about half.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# BM25 constants, as in FTS5 and most engines.
K1 = 1.2
B = 0.75


@dataclass
class Hits:
    """The postings of a query's words, one row per (word, memory) found.

    ``term`` is the word's number in the query, ``weight`` how much the word counts there (1 in the
    memory itself, ``context_weight`` in its context only), ``length`` the memory's length in
    tokens and ``selected`` whether the search's selection takes the memory (a word's document
    frequency counts every memory that holds it, selected or not)."""

    term: np.ndarray
    key: np.ndarray
    weight: np.ndarray
    length: np.ndarray
    selected: np.ndarray

    @classmethod
    def of(cls, rows: Sequence[Sequence[object]]) -> Hits:
        """From rows of (term, key, weight, length, selected); a word found in a memory more than
        once (in the memory and in its context) is kept once, with its larger weight."""
        table = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        order = np.lexsort((-table[:, 2], table[:, 1], table[:, 0]))
        table = table[order]
        first = np.ones(len(table), dtype=bool)
        first[1:] = (table[1:, 0] != table[:-1, 0]) | (table[1:, 1] != table[:-1, 1])
        table = table[first]
        return cls(
            term=table[:, 0].astype(np.int64), key=table[:, 1].astype(np.int64), weight=table[:, 2],
            length=table[:, 3], selected=table[:, 4] != 0,
        )


def rank(
    hits: Hits, n_terms: int, n_docs: int, avgdl: float, count: int, frequencies: dict[int, int] | None = None
) -> list[tuple[int, float]]:
    """The best ``count`` (key, score) among the selected memories, best first (ties: newest),
    scored relative to the whole query (see the module's docstring).

    A word's document frequency is the number of memories found for it unless ``frequencies``
    (term -> count) gives it, as it must for a word whose postings were capped."""
    if not len(hits.key) or count <= 0:
        return []
    df = np.bincount(hits.term, minlength=n_terms).astype(np.float64)
    for term, frequency in (frequencies or {}).items():
        df[term] = frequency
    idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
    chosen = hits.selected & (hits.weight > 0)
    term, key, tf, dl = hits.term[chosen], hits.key[chosen], hits.weight[chosen], hits.length[chosen]
    if not len(key):
        return []
    norm = K1 * (1 - B + B * dl / avgdl)
    contribution = idf[term] * tf * (K1 + 1) / (tf + norm)
    keys, at = np.unique(key, return_inverse=True)
    scores = np.bincount(at, weights=contribution, minlength=len(keys))
    positive = scores > 0
    keys, scores = keys[positive], scores[positive] / idf.sum()
    best = np.lexsort((-keys, -scores))[:count]
    return [(int(keys[i]), float(scores[i])) for i in best]
