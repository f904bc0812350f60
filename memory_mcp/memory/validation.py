"""Every check of what a caller passes in, in one place.

Each function takes a value as a caller gave it and returns it in the form the rules use, or raises
an error from :mod:`memory_mcp.errors` whose message names the problem and, where there is one,
the fix. Nothing here touches storage: arguments are refused before anything is stored.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from ..errors import (
    ContentTooLongError,
    EmptyContentError,
    InvalidArgumentError,
    InvalidImportanceError,
    InvalidMemoryError,
    InvalidTimeError,
    MissingUserError,
    UnknownCategoryError,
)
from .models import MemoryCategory, ScopeLevel
from .ports import MemoryFilter
from .scope import ID_FIELDS, Position

E = TypeVar("E", bound=StrEnum)

MAX_ID_CHARS = 256
MAX_TOP_K = 1000
MAX_ENTITY_REFS = 100
MAX_JSON_CHARS = 16_000
CLOCK_SKEW_S = 300  # a valid_from this far ahead of our clock is a mistake, not skew


@contextmanager
def item(number: int) -> Iterator[None]:
    """An invalid item of a batch is named by its number, in the same error type."""
    try:
        yield
    except InvalidMemoryError as exc:
        raise type(exc)(f"item {number}: {exc}") from None


def clip(value: Any, limit: int = 80, *, plain: bool = False) -> str:
    """A bad value as shown in an error: its repr (or text), cut short, since errors travel into a
    model's context."""
    text = str(value) if plain else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_id(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentError(f"{name} is empty")
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgumentError(f"{name} is longer than {MAX_ID_CHARS} characters")
    if any(ord(c) < 32 for c in value):
        raise InvalidArgumentError(f"{name} contains control characters")
    if not encodable(value):
        raise InvalidArgumentError(f"{name} contains lone surrogates (broken UTF-16), which are not text")
    return value


def position(
    user_id: Any, session_id: Any = None, agent_id: Any = None, turn_id: Any = None
) -> Position:
    """The position a call names; ``user_id`` is required."""
    if user_id is None or (isinstance(user_id, str) and not user_id.strip()):
        raise MissingUserError("user_id is required: every memory belongs to a user")
    check_id(user_id, "user_id")
    for name, value in zip(ID_FIELDS, (session_id, agent_id, turn_id), strict=True):
        if value is not None:
            check_id(value, name)
    return Position(user_id, session_id, agent_id, turn_id)


def text(value: Any, name: str, max_chars: int) -> str:
    """Text a caller gives to be stored: a string, stripped, without NUL, within the size limit."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a string, got {type(value).__name__}")
    value = value.strip()
    if "\x00" in value:
        raise InvalidArgumentError(f"{name} contains a NUL character")
    if len(value) > max_chars:
        raise ContentTooLongError(
            f"{name} is {len(value)} characters long; the limit is {max_chars} "
            "(MemoryConfig.max_content_chars): store a shorter summary of the fact"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(f"{name} is not valid text ({exc.reason})") from exc
    return value


def content(value: Any, max_chars: int) -> str:
    found = text(value, "content", max_chars)
    if not found:
        raise EmptyContentError("content is empty: there is nothing to remember")
    return found


def context(value: Any, max_chars: int) -> str | None:
    return None if value is None else text(value, "context", max_chars) or None


def query(value: Any) -> str:
    """A search query; lone surrogates (broken UTF-16 from a client) cannot be tokenized and are
    replaced."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"query must be a string, got {type(value).__name__}")
    return value.encode("utf-8", "replace").decode("utf-8")


def category(value: Any) -> MemoryCategory:
    return _one_of(MemoryCategory, value, "category", UnknownCategoryError)


def scope_level(value: Any) -> ScopeLevel:
    return _one_of(ScopeLevel, value, "scope level", InvalidArgumentError)


def _one_of(kind: type[E], value: Any, name: str, error: type[InvalidArgumentError | UnknownCategoryError]) -> E:
    """A value of an enumeration, given as its value in any case."""
    try:
        return kind(value.lower() if isinstance(value, str) else value)
    except ValueError:
        names = ", ".join(member.value for member in kind)
        raise error(f"unknown {name} {clip(value)}; use one of: {names}") from None


def fraction(value: Any, name: str, error: type[InvalidMemoryError] = InvalidArgumentError) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise error(f"{name} must be a number from 0 to 1, got {clip(value)}")
    return float(value)


def importance(value: Any, name: str = "importance") -> float:
    return fraction(value, name, InvalidImportanceError)


def similarity(value: Any, name: str = "min_similarity") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1.0 <= float(value) <= 1.0:
        raise InvalidArgumentError(f"{name} must be between -1 and 1, got {clip(value)}")
    return float(value)


def count(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgumentError(f"{name} must be an integer from {low} to {high}, got {clip(value)}")
    return value


def limit(value: Any) -> int | None:
    """A page size; None means no limit."""
    return None if value is None else count(value, "limit", 1, 10**6)


def sequence(value: Any, name: str) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | set | frozenset):
        raise InvalidArgumentError(f"{name} must be a list, got {type(value).__name__}")
    return list(value)


def entity_refs(value: Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    refs = sequence(value, "entity_refs")
    if len(refs) > MAX_ENTITY_REFS:
        raise InvalidArgumentError(f"entity_refs holds more than {MAX_ENTITY_REFS} entries")
    for ref in refs:
        if (not isinstance(ref, str) or not ref.strip() or len(ref) > MAX_ID_CHARS or not encodable(ref)
                or "\x00" in ref):
            raise InvalidArgumentError(
                f"each entity ref must be a non-empty string of at most {MAX_ID_CHARS} characters of text "
                "(no NUL), "
                f"got {clip(ref)}"
            )
    return list(dict.fromkeys(r.strip() for r in refs))


def json_object(value: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """A JSON object (metadata, provenance) as stored: serialisable, text, bounded in size."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"{name} must be an object (a dict), got {type(value).__name__}")
    try:
        encoded = json.dumps(dict(value), ensure_ascii=False, allow_nan=False)
        encoded.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"{name} contains lone surrogates (broken UTF-16), which are not text") from None
    except RecursionError:
        raise InvalidArgumentError(f"{name} is nested too deeply") from None
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{name} must be JSON-serialisable: {clip(str(exc), 200)}") from None
    if len(encoded) > MAX_JSON_CHARS:
        raise InvalidArgumentError(f"{name} is larger than {MAX_JSON_CHARS} characters of JSON")
    return dict(json.loads(encoded))


def parse_time(value: Any, name: str = "as_of") -> float:
    """A point in time as epoch seconds, from a datetime, epoch number or ISO 8601 string."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, bool):
        raise InvalidTimeError(f"{name} must be a datetime, ISO 8601 string or epoch seconds, got {clip(value)}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value < 10**11:
            raise InvalidTimeError(f"{name}={clip(value)} is not a usable epoch time")
        return float(value)
    if isinstance(value, str):
        try:
            return parse_time(datetime.fromisoformat(value.strip().replace("Z", "+00:00")), name)
        except ValueError:
            raise InvalidTimeError(
                f"{name}={clip(value)} is not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)"
            ) from None
    raise InvalidTimeError(
        f"{name} must be a datetime, ISO 8601 string or epoch seconds, got {type(value).__name__}"
    )


def valid_from(value: Any) -> float | None:
    """When a fact became true: not in the future (beyond clock skew)."""
    if value is None:
        return None
    since = parse_time(value, "valid_from")
    if since > time.time() + CLOCK_SKEW_S:
        raise InvalidTimeError(f"valid_from={clip(value)} lies in the future")
    return since


def search_mode(mode: Any) -> None:
    if mode not in ("hybrid", "semantic", "text"):
        raise InvalidArgumentError(f"unknown search mode {clip(mode)}; use 'hybrid', 'semantic' or 'text'")


def memory_filter(flt: MemoryFilter) -> MemoryFilter:
    """The filter with every field checked and in the form the stores translate: categories and
    levels as their enum values, ``as_of`` as epoch seconds, entity refs cleaned."""
    for name in ID_FIELDS:
        value = getattr(flt, name)
        if value is not None:
            check_id(value, name)
    return replace(
        flt,
        as_of=None if flt.as_of is None else parse_time(flt.as_of),
        categories=None if flt.categories is None
        else [category(c).value for c in sequence(flt.categories, "categories")],
        scope_levels=None if flt.scope_levels is None
        else [scope_level(s).value for s in sequence(flt.scope_levels, "scope_levels")],
        min_importance=None if flt.min_importance is None else importance(flt.min_importance, "min_importance"),
        entity_refs=entity_refs(flt.entity_refs) if flt.entity_refs else None,
    )
