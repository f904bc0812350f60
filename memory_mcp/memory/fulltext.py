"""What full-text search sees of a memory.

Its content, its entity refs and the day it became true written out as words ('8 May 2023'), so
that a question naming a day, month or year finds what happened then. A memory's context (text that
situates it, such as the message it answers) is indexed beside this, where a word counts only
``context_weight`` of one of the memory's own. Every text index indexes this same text.
"""

from __future__ import annotations

from datetime import UTC, datetime

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def date_words(epoch: float) -> str:
    """A moment as the words a question about it would use: '8 May 2023' (UTC)."""
    day = datetime.fromtimestamp(epoch, UTC)
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def search_text(content: str, entity_refs: list[str], valid_from: float) -> str:
    return " ".join([content, *entity_refs, date_words(valid_from)])
