"""Fts5TextIndex: full-text search with BM25 computed over one user's memories only.

FTS5's own ``bm25()`` takes its document frequencies and average length from the whole table, so
another user's memories would shift this user's ranking. Instead every MATCH is confined to one
user inside FTS5 (each row carries its owner as a token, ``u<user_key>``) and BM25 is computed here
from that user's counts (kept by triggers in ``users``). Each query word is matched on its own and
quoted, so no user text is ever parsed as FTS5 syntax: punctuation, quotes, ``AND``/``NOT``/``NEAR``,
empty strings and any script are safe. Stopwords are dropped before the query reaches FTS5, and of a
word in more than ``posting_cap`` of the user's memories only the newest are scored (its document
frequency still counts them all), so a common word cannot make a query score the whole table.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import aiosqlite

from ...memory.ports import Selection
from .filters import where
from .store import SQLiteMemoryStore
from .words import query_terms

# BM25 constants, as in FTS5 and most engines.
K1 = 1.2
B = 0.75


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
            db = session.conn
            n_docs, n_tokens = await session.user_counts(user_key)
            if n_docs == 0:
                return []
            avgdl = max(n_tokens / n_docs, 1.0)
            # A user who holds every row needs no confining: FTS5 would intersect each word's
            # postings with the owner token's, as long as the table (twice the time at 100k).
            everyone = await session.scalar("SELECT sum(doc_count) FROM users")
            owner = "" if everyone == n_docs else f"owner : u{user_key} AND "
            # key -> (idf, how much the word counts there) for each query word the memory holds
            matched: dict[int, list[tuple[float, float]]] = defaultdict(list)
            for term in terms:
                # A quoted string is a phrase of the tokenizer's tokens: never an operator.
                phrase = '"' + term.replace('"', '""') + '"'
                found: dict[int, float] = {}  # key -> how much the word counts in it
                capped = False
                for column, weight in (("context", self._context_weight), ("body", 1.0)):
                    # A word in very many of the user's memories tells them apart little: only its
                    # newest ones are scored, which bounds the work of a query.
                    cursor = await db.execute(
                        "SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? ORDER BY rowid DESC LIMIT ?",
                        (f"{owner}{column} : {phrase}", self._cap),
                    )
                    rows = await cursor.fetchall()
                    capped |= len(rows) == self._cap
                    found.update((int(rowid), weight) for (rowid,) in rows)
                if not found:
                    continue
                df = len(found)
                if capped:  # its weight still comes from every memory holding it (counting is cheap)
                    df = int(await session.scalar(
                        "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?",
                        (f"{owner}{{body context}} : {phrase}",),
                    ))
                idf = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
                for key, tf in found.items():
                    matched[key].append((idf, tf))
            if not matched:
                return []
            condition, params = where(within) if within is not None else ("1", [])
            cursor = await db.execute(
                f"SELECT m.key, m.n_tokens FROM memories m WHERE m.key IN (SELECT value FROM json_each(?)) "
                f"AND {condition}",
                [json.dumps(list(matched)), *params],
            )
            lengths = {int(k): int(n) for k, n in await cursor.fetchall()}
        scored = []
        for key, dl in lengths.items():
            norm = K1 * (1 - B + B * dl / avgdl)
            # Each word counted once per memory (term frequency 1, or the context's weight when only
            # the context holds it): memories are short statements. The length is the memory's own.
            score = sum(idf * tf * (K1 + 1) / (tf + norm) for idf, tf in matched[key] if tf > 0)
            scored.append((key, score))
        scored = [kv for kv in scored if kv[1] > 0]
        scored.sort(key=lambda kv: (-kv[1], -kv[0]))
        return scored[:count]

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
