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
import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from .sqlite_store import SQLiteMemoryStore

# Words that tell memories apart too rarely to be worth a posting-list scan.
STOPWORDS = frozenset(
    ["a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves", "s", "t", "don"]
)

_WORD = re.compile(r"\w+", re.UNICODE)
# Scripts written without spaces between words (Han, kana, Hangul): FTS5's unicode61 would make a
# whole sentence one token, so each character is indexed as a token and a query word becomes a
# phrase of its characters, which matches it anywhere inside a sentence.
_UNSPACED = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af])")


def searchable(text: str) -> str:
    """The text as the full-text index stores it (unspaced scripts split into characters)."""
    return _UNSPACED.sub(r" \1 ", text)


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def date_words(epoch: float) -> str:
    """A moment as the words a question about it would use: '8 May 2023' (UTC)."""
    day = datetime.fromtimestamp(epoch, UTC)
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


# BM25 constants, as in FTS5 and most engines.
K1 = 1.2
B = 0.75


def query_terms(text: str) -> list[str]:
    """The distinct words of a query worth matching, in order; stopwords only if nothing else.

    A run of an unspaced script becomes one term, the phrase of its characters."""
    terms = []
    for run in _WORD.findall(text):
        run = run.lower()
        terms.append(" ".join(_WORD.findall(searchable(run))) if _UNSPACED.search(run) else run)
    words = list(dict.fromkeys(terms))
    kept = [w for w in words if w not in STOPWORDS]
    return kept or words


def count_tokens(text: str) -> int:
    """Tokens of already searchable text (see ``searchable``), for BM25's document length."""
    return len(_WORD.findall(text))


class Fts5TextIndex:
    """BM25 over the ``memories_fts`` table the schema's triggers maintain."""

    def __init__(self, store: SQLiteMemoryStore, *, posting_cap: int = 1000, context_weight: float = 0.5):
        self._store = store
        self._cap = posting_cap
        self._context_weight = context_weight

    async def search(
        self, query: str, user_key: int, count: int, allowed_sql: tuple[str, list[Any]] | None = None
    ) -> list[tuple[int, float]]:
        terms = query_terms(query)[:32]
        if not terms or count <= 0:
            return []
        async with self._store.reading() as db:
            n_docs, n_tokens = await self._store.user_counts(db, user_key)
            if n_docs == 0:
                return []
            avgdl = max(n_tokens / n_docs, 1.0)
            # A user who holds every row needs no confining: FTS5 would intersect each word's
            # postings with the owner token's, as long as the table (twice the time at 100k).
            everyone = await self._store.scalar(db, "SELECT sum(doc_count) FROM users")
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
                    df = await self._store.scalar(
                        db, "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?",
                        (f"{owner}{{body context}} : {phrase}",),
                    )
                idf = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
                for key, tf in found.items():
                    matched[key].append((idf, tf))
            if not matched:
                return []
            where, params = allowed_sql or ("1", [])
            cursor = await db.execute(
                f"SELECT m.key, m.n_tokens FROM memories m WHERE m.key IN (SELECT value FROM json_each(?)) "
                f"AND {where}",
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
        async with self._store.transaction() as db:
            await db.execute("INSERT INTO memories_fts(memories_fts) VALUES ('rebuild')")

    async def integrity_check(self) -> None:
        async with self._store.transaction() as db:
            await db.execute("INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)")

