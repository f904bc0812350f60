"""Fts5TextIndex: full-text search with BM25 computed over one user's memories only.

FTS5's own ``bm25()`` takes its document frequencies and average length from the whole table, so
another user's memories would shift this user's ranking. Instead every MATCH is confined to one
user inside FTS5 (each row carries its owner as a token, ``u<user_key>``) and BM25 is computed here
from that user's counts (kept by triggers in ``users``). Each query word is matched on its own and
quoted, so no user text is ever parsed as FTS5 syntax: punctuation, quotes, ``AND``/``NOT``/``NEAR``,
empty strings and any script are safe. Stopwords are dropped before the query reaches FTS5, and of a
word in more than ``posting_cap`` of the user's memories only the newest are scored (its document
frequency still counts them all), so a common word cannot make a query score the whole table. All
the words' postings come back in one statement, with each memory's length and whether the
selection takes it.
"""

from __future__ import annotations

import aiosqlite
import numpy as np

from ...memory.ports import Selection
from .. import bm25
from ..selection import where
from ..words import query_terms
from .store import SQLiteMemoryStore


class Fts5TextIndex:
    """BM25 over the ``memories_fts`` table the schema's triggers maintain."""

    def __init__(self, store: SQLiteMemoryStore, *, posting_cap: int = 1000, context_weight: float = 0.5):
        self._store = store
        self._cap = posting_cap
        self._context_weight = context_weight

    async def search(
        self, query: str, user_key: int, count: int, within: Selection | None = None
    ) -> list[tuple[int, float]]:
        terms = query_terms(query)[:32]
        if not terms or count <= 0:
            return []
        async with self._store.reading() as session:
            counts = await session.row(
                "SELECT doc_count, token_total, (SELECT sum(doc_count) FROM users) FROM users WHERE user_key = ?",
                (user_key,),
            )
            if counts is None or not counts[0]:
                return []
            n_docs, n_tokens, everyone = (int(c) for c in counts)
            # A user who holds every row needs no confining: FTS5 would intersect each word's
            # postings with the owner token's, as long as the table (twice the time at 100k).
            owner = "" if everyone == n_docs else f"owner : u{user_key} AND "
            # A quoted string is a phrase of the tokenizer's tokens: never an operator.
            phrases = ['"' + term.replace('"', '""') + '"' for term in terms]
            # Every word's newest postings (at most the cap in each column), with each memory's
            # length and whether the selection takes it, in one statement.
            parts, params = [], []
            for n, phrase in enumerate(phrases):
                for column, weight in (("context", self._context_weight), ("body", 1.0)):
                    parts.append(
                        f"SELECT * FROM (SELECT {n} AS term, rowid AS key, {float(weight)} AS weight FROM memories_fts "
                        "WHERE memories_fts MATCH ? ORDER BY rowid DESC LIMIT ?)"
                    )
                    params += [f"{owner}{column} : {phrase}", self._cap]
            condition, selection = where(within) if within is not None else ("1", [])
            # By key, SQLite would read each memory's row (its vector with it); the covering index
            # halves the join's time at 100k memories.
            rows = await session.rows(
                f"WITH hits AS ({' UNION ALL '.join(parts)}) "
                f"SELECT h.term, h.key, h.weight, m.n_tokens, {condition} "
                "FROM hits h JOIN memories m INDEXED BY memories_ranking ON m.key = h.key",
                [*params, *selection],
            )
            hits = bm25.Hits.of(rows)
            # A word that may have been capped in a column: its weight still comes from every memory
            # holding it (counted in full; exact for the others too).
            found = np.bincount(hits.term, minlength=len(terms))
            capped = [n for n in range(len(terms)) if found[n] >= self._cap]
            frequencies: dict[int, int] = {}
            if capped:
                counted = await session.row(
                    "SELECT " + ", ".join(
                        "(SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?)" for _ in capped
                    ),
                    [f"{owner}{{body context}} : {phrases[n]}" for n in capped],
                )
                frequencies = {n: int(c) for n, c in zip(capped, counted or (), strict=True)}
        return bm25.rank(hits, len(terms), n_docs, max(n_tokens / n_docs, 1.0), count, frequencies)

    async def rebuild(self) -> None:
        async with self._store.transaction() as session:
            await session.conn.execute("INSERT INTO memories_fts(memories_fts) VALUES ('rebuild')")

    async def integrity_check(self) -> list[str]:
        try:
            async with self._store.transaction() as session:
                await session.conn.execute(
                    "INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)"
                )
        except aiosqlite.DatabaseError as exc:
            return [f"full-text index differs from the store: {exc}"]
        return []
