"""A :class:`~memory_mcp.memory.ports.Selection` as an SQL condition over ``memories m``.

This is where the visibility and time rules meet SQL: each clause below states one of them (see
:mod:`memory_mcp.memory.scope` for the rule in words). Both engines use it: parameters are ``?``
(PostgreSQL's store numbers them), and only the test of a JSON list of entity refs differs, so each
engine passes its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..memory.ports import MemoryFilter, Selection
from ..memory.scope import ID_FIELDS

# A current version: not closed by a successor, and not expired (at the time given as parameter).
CLOSED_NOT = "m.valid_until IS NULL"
EXPIRED_NOT = "(m.expires_at IS NULL OR m.expires_at > ?)"
CURRENT = f"{CLOSED_NOT} AND {EXPIRED_NOT}"


# (column, how many values) -> a condition true when the column's JSON list holds any of the values
AnyOf = Callable[[str, int], str]


def json_each_any(column: str, n: int) -> str:
    """SQLite's test of a JSON list."""
    return f"EXISTS (SELECT 1 FROM json_each({column}) e WHERE e.value IN ({', '.join('?' for _ in range(n))}))"


def where(within: Selection, any_of: AnyOf = json_each_any) -> tuple[str, list[Any]]:
    """The condition and its parameters."""
    if len(within.filters) == 1:
        return _clause(within.filters[0], within.user_key, within.now, any_of)
    parts = [_clause(flt, within.user_key, within.now, any_of) for flt in within.filters]
    # user_key again outside the OR, so that the database can use the (user_key, ...) indexes.
    sql = "m.user_key = ? AND (" + " OR ".join(f"({c})" for c, _ in parts) + ")"
    return sql, [within.user_key, *(p for _, params in parts for p in params)]


def _clause(flt: MemoryFilter, user_key: int, now: float, any_of: AnyOf) -> tuple[str, list[Any]]:
    clauses = ["m.user_key = ?"]
    params: list[Any] = [user_key]
    for name in ID_FIELDS:
        value = getattr(flt, name)
        if flt.all_levels:
            if value is not None:  # the subtree below the position
                clauses.append(f"m.{name} = ?")
                params.append(value)
        elif value is None:  # visible from the position: absent, or the position's own
            clauses.append(f"m.{name} IS NULL")
        else:
            clauses.append(f"(m.{name} IS NULL OR m.{name} = ?)")
            params.append(value)
    if flt.as_of is not None:
        clauses.append(
            "m.valid_from <= ? AND (m.valid_until IS NULL OR m.valid_until > ?) "
            "AND (m.expires_at IS NULL OR m.expires_at > ?)"
        )
        params += [flt.as_of, flt.as_of, flt.as_of]
    elif flt.superseded_only:
        clauses.append("m.valid_until IS NOT NULL")
        if not flt.include_expired:
            clauses.append(EXPIRED_NOT)
            params.append(now)
    elif not flt.include_superseded and not flt.include_expired:
        clauses.append(CURRENT)
        params.append(now)
    elif not flt.include_superseded:
        clauses.append(CLOSED_NOT)
    elif not flt.include_expired:
        clauses.append(EXPIRED_NOT)
        params.append(now)
    if flt.categories is not None:
        clauses.append(_one_of("m.category", flt.categories))
        params += list(flt.categories)
    if flt.scope_levels is not None:
        clauses.append(_one_of("m.scope_level", flt.scope_levels))
        params += list(flt.scope_levels)
    if flt.min_importance is not None:
        clauses.append("m.importance >= ?")
        params.append(flt.min_importance)
    if flt.entity_refs:
        clauses.append(any_of("m.entity_refs", len(flt.entity_refs)))
        params += list(flt.entity_refs)
    return " AND ".join(clauses), params


def _one_of(column: str, values: Any) -> str:
    return f"{column} IN ({', '.join('?' for _ in values)})" if values else "FALSE"
