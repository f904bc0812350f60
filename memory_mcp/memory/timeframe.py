"""The time a query names, and hybrid recall's preference for what was said then.

A query may say when: "What did Maria donate in December 2023?", "What did I tell you on 3 June
2023?", "What did we decide yesterday?". A memory's time is its ``valid_from`` (when it was said,
or became true), so hybrid recall weighs each candidate by how near that lies to the named time::

    score'(m) = score(m) * (1 - TIME_WEIGHT * (1 - near(m)))

``near(m)`` is 1 inside the named span and halves every half-life outside it. People tell of what
happened after it happened ("last month I ran a marathon") and seldom before, so the half-life
after the span is the longer: twice the span's length and at least ``AFTER_DAYS``, against half its
length and at least ``BEFORE_DAYS`` before it. A memory far from the named time keeps
``1 - TIME_WEIGHT`` of its score: a close match in words and meaning still outranks a loose one
from the right day. The weight and half-lives were chosen on LoCoMo's development split
(``docs/benchmarks/locomo-rerank.md``).

The times understood are English and in UTC:

- a day: "3 June 2023", "3rd of June, 2023", "June 3, 2023", "Jun 3 2023", "2023-06-03"; without
  a year ("on June 3") the latest such day that is not after now;
- a month: "June 2023", "June of 2023", "2023-06"; a year: "in 2023" (1900 to 2099, alone);
- from now: "today", "tonight", "this morning", "yesterday", "last night", "3 days ago", "a week
  ago", "this week", "last week" (Monday to Sunday), "this month", "last month", "this year",
  "last year".

A query naming several times names the span from the earliest to the latest of them.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from .models import Memory

TIME_WEIGHT = 0.3
BEFORE_DAYS = 3.0
AFTER_DAYS = 14.0

Span = tuple[float, float]  # [start, end) in seconds since the epoch

_DAY = 86400.0
_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): number for number, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_NTH = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}


def _days(start: date, days: int) -> Span:
    at = datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()
    return at, at + days * _DAY


def _month(year: int, month: int) -> Span:
    return _days(date(year, month, 1), calendar.monthrange(year, month)[1])


def _year(year: int) -> Span:
    return _days(date(year, 1, 1), (date(year + 1, 1, 1) - date(year, 1, 1)).days)


def _latest(month: int, day: int, today: date) -> date:
    """The latest ``day`` of ``month`` that is not after ``today`` (a 29 February back to a leap year)."""
    for year in range(today.year, today.year - 8, -1):
        try:
            found = date(year, month, day)
        except ValueError:
            continue
        if found <= today:
            return found
    raise ValueError("no such day")


def _ago(match: re.Match[str], today: date) -> Span:
    count = match["count"].lower()
    unit = _UNIT_DAYS[match["unit"].lower()]
    middle = today - timedelta(days=(int(count) if count.isdigit() else _COUNTS[count]) * unit)
    return _days(middle - timedelta(days=unit // 2), unit)


def _relative(word: str, today: date) -> Span:
    word = " ".join(word.lower().split())
    monday = today - timedelta(days=today.weekday())
    if word in ("today", "tonight", "this morning", "this afternoon", "this evening"):
        return _days(today, 1)
    if word in ("yesterday", "last night"):
        return _days(today - timedelta(days=1), 1)
    if word == "this week":
        return _days(monday, 7)
    if word == "last week":
        return _days(monday - timedelta(days=7), 7)
    if word == "this month":
        return _month(today.year, today.month)
    if word == "last month":
        return _month(today.year - (today.month == 1), (today.month - 2) % 12 + 1)
    return _year(today.year - (word == "last year"))


def _month_of(match: re.Match[str]) -> int:
    return _MONTHS[match["month"].lower()]


# Most specific first: each match is blanked out before the next pattern looks, so "3 June 2023"
# is one day, not also a month and a year.
_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str], date], Span]]] = [
    (re.compile(r"\b(?P<year>\d{4})[-/](?P<month>\d{1,2})[-/](?P<day>\d{1,2})\b"),
     lambda m, _: _days(date(int(m["year"]), int(m["month"]), int(m["day"])), 1)),
    (re.compile(rf"\b{_NTH}(?:\s+of)?\s+{_MONTH},?\s+{_YEAR}\b", re.I),
     lambda m, _: _days(date(int(m["year"]), _month_of(m), int(m["day"])), 1)),
    (re.compile(rf"\b{_MONTH}\s+{_NTH},?\s+{_YEAR}\b", re.I),
     lambda m, _: _days(date(int(m["year"]), _month_of(m), int(m["day"])), 1)),
    (re.compile(r"\b(?P<year>\d{4})-(?P<month>\d{1,2})\b"),
     lambda m, _: _month(int(m["year"]), int(m["month"]))),
    (re.compile(rf"\b{_MONTH},?\s+(?:of\s+)?{_YEAR}\b", re.I),
     lambda m, _: _month(int(m["year"]), _month_of(m))),
    (re.compile(rf"\b{_NTH}(?:\s+of)?\s+{_MONTH}(?!\w)", re.I),
     lambda m, today: _days(_latest(_month_of(m), int(m["day"]), today), 1)),
    (re.compile(rf"\b{_MONTH}\s+{_NTH}\b", re.I),
     lambda m, today: _days(_latest(_month_of(m), int(m["day"]), today), 1)),
    (re.compile(rf"\b{_YEAR}\b"),
     lambda m, _: _year(int(m["year"]))),
    (re.compile(r"\b(?P<count>\d{1,3}|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\s+"
                r"(?P<unit>day|week|month|year)s?\s+ago\b", re.I), _ago),
    (re.compile(r"\b(?:today|tonight|yesterday|last\s+night|this\s+(?:morning|afternoon|evening)|"
                r"(?:this|last)\s+(?:week|month|year))\b", re.I),
     lambda m, today: _relative(m[0], today)),
]


def named_span(query: str, now: float) -> Span | None:
    """The span of time the query names (see the module's docstring), or None if it names none."""
    today = datetime.fromtimestamp(now, UTC).date()
    spans: list[Span] = []
    for pattern, span_of in _PATTERNS:
        def take(match: re.Match[str], span_of: Callable[[re.Match[str], date], Span] = span_of) -> str:
            try:
                spans.append(span_of(match, today))
            except (ValueError, KeyError, OverflowError):  # "2023-13-45", "31 June 2023": no such day
                return match[0]
            return " " * len(match[0])
        query = pattern.sub(take, query)
    if not spans:
        return None
    return min(start for start, _ in spans), max(end for _, end in spans)


def near(at: float, span: Span) -> float:
    """How near a time lies to the span, 1 inside it, halving every half-life outside it."""
    start, end = span
    length = (end - start) / _DAY
    if at < start:
        return float(0.5 ** ((start - at) / _DAY / max(length / 2, BEFORE_DAYS)))
    if at >= end:
        return float(0.5 ** ((at - end) / _DAY / max(2 * length, AFTER_DAYS)))
    return 1.0


def factor(at: float, span: Span) -> float:
    """What a memory of this time keeps of its score (1 - TIME_WEIGHT .. 1); shown beside a result
    so that a person can see why it ranks where it does."""
    return 1.0 - TIME_WEIGHT * (1.0 - near(at, span))


def toward_named_time(
    ranked: list[tuple[int, float, float]], rows: dict[int, Memory], query: str, now: float
) -> list[tuple[int, float, float]]:
    """(key, score, relevance) best first, each score weighed by how near the memory's time lies
    to the time the query names; unchanged when it names none."""
    span = named_span(query, now)
    if span is None:
        return ranked
    rescored = [(key, score * factor(rows[key].valid_from.timestamp(), span), relevance) for key, score, relevance in ranked]
    rescored.sort(key=lambda ranking: -ranking[1])
    return rescored
