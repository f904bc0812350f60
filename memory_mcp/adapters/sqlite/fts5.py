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

import aiosqlite

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
            db = session.conn
            n_docs, n_tokens = await session.user_counts(user_key)
            if n_docs == 0:
                return []
            avgdl = max(n_tokens / n_docs, 1.0)
            # A user who holds every row needs no confining: FTS5 would intersect each word's
            # postings with the owner token's, as long as the table (twice the time at 100k).
            everyone = await session.scalar("SELECT sum(doc_count) FROM users")
            owner = "" if everyone == n_docs else f"owner : u{user_key} AND "

            async def postings(term: str) -> bm25.Postings:
                # A quoted string is a phrase of the tokenizer's tokens: never an operator.
                phrase = '"' + term.replace('"', '""') + '"'
                found: dict[int, float] = {}  # key -> how much the word counts in it
                capped = False
                for column, weight in (("context", self._context_weight), ("body", 1.0)):  # the body wins
                    # Of a word in very many of the user's memories only the newest are scored.
                    cursor = await db.execute(
                        "SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? ORDER BY rowid DESC LIMIT ?",
                        (f"{owner}{column} : {phrase}", self._cap),
                    )
                    rows = await cursor.fetchall()
                    capped |= len(rows) == self._cap
                    found.update((int(rowid), weight) for (rowid,) in rows)
                if not capped:
                    return found, len(found)
                # Its weight still comes from every memory holding it (counting is cheap).
                return found, int(await session.scalar(
                    "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?",
                    (f"{owner}{{body context}} : {phrase}",),
                ))

            matched = bm25.weigh([await postings(term) for term in terms], n_docs)
            if not matched:
                return []
            condition, params = where(within) if within is not None else ("1", [])
            cursor = await db.execute(
                f"SELECT m.key, m.n_tokens FROM memories m WHERE m.key IN (SELECT value FROM json_each(?)) "
                f"AND {condition}",
                [json.dumps(list(matched)), *params],
            )
            lengths = {int(k): int(n) for k, n in await cursor.fetchall()}
        return bm25.rank(matched, lengths, avgdl, count)

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
