"""PostgresTextIndex: full text on ``tsvector`` and GIN, ranked by BM25 over one user's memories.

PostgreSQL's own ``ts_rank`` knows nothing of document frequency, and its statistics would be the
whole table's. So, as on SQLite, each query word is looked up on its own in the GIN indexes of
the user's memories (the memory itself, then its context) and BM25 is computed from that user's
counts only (``bm25.py``, shared by both engines). A word is turned into a query by
``phraseto_tsquery``, which never parses operators, so any text is safe; a run of a script
written without spaces becomes the phrase of its characters, as on SQLite. Words are stemmed
(English), accents are ignored and stopwords stay in the index (a query drops them itself).
"""

from __future__ import annotations

from ...memory.ports import Selection
from .. import bm25
from ..words import plain, query_terms
from .store import TEXT_CONFIG, PostgresMemoryStore, where

_QUERY = f"phraseto_tsquery('{TEXT_CONFIG}', ?)"


class PostgresTextIndex:
    """BM25 over the ``body_tsv`` and ``context_tsv`` columns of ``memories``."""

    def __init__(self, store: PostgresMemoryStore, *, posting_cap: int = 1000, context_weight: float = 0.5):
        self._store = store
        self._cap = posting_cap
        self._context_weight = context_weight

    async def search(
        self, query: str, user_key: int, count: int, within: Selection | None = None
    ) -> list[tuple[int, float]]:
        terms = [t for t in (plain(term) for term in query_terms(query)[:32]) if t]
        if not terms or count <= 0:
            return []
        async with self._store.reading() as db:
            n_docs, n_tokens = await db.user_counts(user_key)
            if n_docs == 0:
                return []
            avgdl = max(n_tokens / n_docs, 1.0)

            async def newest(term: str, column: bm25.Column, cap: int) -> list[int]:
                found = await db.rows(
                    f"SELECT key FROM memories WHERE user_key = ? AND {column}_tsv @@ {_QUERY} "
                    "ORDER BY key DESC LIMIT ?",
                    (user_key, term, cap),
                )
                return [int(r[0]) for r in found]

            async def count_all(term: str) -> int:
                return int(await db.scalar(
                    f"SELECT count(*) FROM memories WHERE user_key = ? AND (body_tsv @@ {_QUERY} "
                    f"OR context_tsv @@ {_QUERY})",
                    (user_key, term, term),
                ))

            matched = await bm25.match(
                terms, n_docs, newest, count_all, cap=self._cap, context_weight=self._context_weight
            )
            if not matched:
                return []
            condition, params = where(within) if within is not None else ("TRUE", [])
            found = await db.rows(
                f"SELECT m.key, m.n_tokens FROM memories m WHERE m.key = ANY(?::bigint[]) AND {condition}",
                [list(matched), *params],
            )
            lengths = {int(k): int(n) for k, n in found}
        return bm25.rank(matched, lengths, avgdl, count)

    async def rebuild(self) -> None:
        """Rebuild the GIN indexes (the ``tsvector`` columns are generated from the text)."""
        async with self._store.transaction() as db:
            await db.run("REINDEX INDEX memories_body_tsv")
            await db.run("REINDEX INDEX memories_context_tsv")

    async def integrity_check(self) -> list[str]:
        async with self._store.reading() as db:
            users = await db.rows(
                "SELECT u.user_id FROM users u LEFT JOIN (SELECT user_key, count(*) AS n, sum(n_tokens) AS t "
                "FROM memories GROUP BY user_key) m ON m.user_key = u.user_key "
                "WHERE u.doc_count != coalesce(m.n, 0) OR u.token_total != coalesce(m.t, 0)"
            )
        return [f"full-text counts of user {r[0]!r} differ from the store" for r in users]
