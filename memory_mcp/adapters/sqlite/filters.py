"""A :class:`~memory_mcp.memory.ports.Selection` as an SQL condition over ``memories m``.

This is where the visibility and time rules meet SQLite: each clause below states one of them
(see :mod:`memory_mcp.memory.scope` for the rule in words).
"""

from __future__ import annotations

from typing import Any

from ...memory.ports import MemoryFilter, Selection
from ...memory.scope import ID_FIELDS

# A current version: not closed by a successor, and not expired (at the time given as parameter).
CLOSED_NOT = "m.valid_until IS NULL"
EXPIRED_NOT = "(m.expires_at IS NULL OR m.expires_at > ?)"
CURRENT = f"{CLOSED_NOT} AND {EXPIRED_NOT}"


def where(within: Selection) -> tuple[str, list[Any]]:
    """The condition and its parameters."""
    if len(within.filters) == 1:
        return _clause(within.filters[0], within.user_key, within.now)
    parts = [_clause(flt, within.user_key, within.now) for flt in within.filters]
    # user_key again outside the OR, so that SQLite can use the (user_key, ...) indexes.
    sql = "m.user_key = ? AND (" + " OR ".join(f"({c})" for c, _ in parts) + ")"
    return sql, [within.user_key, *(p for _, params in parts for p in params)]


def _clause(flt: MemoryFilter, user_key: int, now: float) -> tuple[str, list[Any]]:
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
        clauses.append(
            "EXISTS (SELECT 1 FROM json_each(m.entity_refs) e WHERE e.value IN "
            f"({', '.join('?' for _ in flt.entity_refs)}))"
        )
        params += list(flt.entity_refs)
    return " AND ".join(clauses), params


def _one_of(column: str, values: Any) -> str:
    return f"{column} IN ({', '.join('?' for _ in values)})" if values else "0"
