"""PostgresTextIndex: full text on ``tsvector`` and GIN, ranked by BM25 over one user's memories.

PostgreSQL's own ``ts_rank`` knows nothing of document frequency, and its statistics would be the
whole table's. So, as on SQLite, each query word is looked up on its own in the GIN indexes of
the user's memories (the memory itself, and its context), all words in one statement, and BM25 is
computed from that user's counts only (``bm25.py``, shared by both engines). Of a word in more than
``posting_cap`` memories only the newest are scored; its document frequency counts them all. A word is turned into a query by
``phraseto_tsquery``, which never parses operators, so any text is safe; a run of a script
written without spaces becomes the phrase of its characters, as on SQLite. Words are stemmed
(English), accents are ignored and stopwords stay in the index (a query drops them itself).
"""

from __future__ import annotations

from ...memory.ports import Selection
from .. import bm25
from ..words import plain, query_terms
from .store import TEXT_CONFIG, PostgresMemoryStore, where

_QUERY_OF_TERM = f"phraseto_tsquery('{TEXT_CONFIG}', t.term)"


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

            # Every word's postings in one statement: its newest memories (at most the cap), whether
            # each holds it in the memory itself, how many of the user's memories hold it, and each
            # memory's length and whether the selection takes it.
            condition, params = where(within) if within is not None else ("TRUE", [])
            found = await db.rows(
                "SELECT t.n, p.key, p.in_body, p.df, p.n_tokens, p.selected "
                "FROM unnest(?::text[]) WITH ORDINALITY AS t(term, n) CROSS JOIN LATERAL ("
                f"SELECT m.key, m.body_tsv @@ q.q AS in_body, count(*) OVER () AS df, m.n_tokens, {condition} AS selected "
                f"FROM memories m, {_QUERY_OF_TERM} AS q(q) WHERE m.user_key = ? "
                "AND (m.body_tsv @@ q.q OR m.context_tsv @@ q.q) ORDER BY m.key DESC LIMIT ?) p",
                (terms, *params, user_key, self._cap),
            )
        hits = bm25.Hits.of([
            (n - 1, key, 1.0 if in_body else self._context_weight, length, selected)
            for n, key, in_body, _, length, selected in found
        ])
        frequencies = {n - 1: int(df) for n, _, _, df, _, _ in found}  # counted before the cap
        return bm25.rank(hits, len(terms), n_docs, avgdl, count, frequencies)

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
