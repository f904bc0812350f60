"""How full text splits text into words, for indexing and for queries (as FTS5's ``unicode61``
tokenizer does), shared by every text index; scripts written without spaces are split into characters first."""

from __future__ import annotations

import re
import unicodedata

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


_LONGEST = 2000


def plain(text: str) -> str:
    """Searchable text as FTS5's ``unicode61`` tokenizer (``remove_diacritics 2``) sees it: its
    words, without accents, one space apart; for engines whose own parser splits text otherwise
    (PostgreSQL reads 'v1.2', 'a@b.c' or '/usr/bin' as one token)."""
    decomposed = unicodedata.normalize("NFKD", searchable(text))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    # PostgreSQL leaves words over 2047 characters out of a tsvector: a longer one is kept as
    # a phrase of pieces, and a query for it (made by this same function) matches that phrase.
    return " ".join(w[i : i + _LONGEST] for w in _WORD.findall(stripped.replace("_", " ")) for i in range(0, len(w), _LONGEST))
