"""The change feed and the ids in use, read with the same SQL in every engine.

Each function takes the engine's ``rows(sql, params)`` (``?`` placeholders; PostgreSQL numbers
them) and returns what the store port promises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from ..memory.ports import Change

Rows = Callable[[str, Iterable[Any]], Awaitable[list[Any]]]


async def changes_since(rows: Rows, seq: int, user_key: int | None, limit: int | None) -> list[Change]:
    where, params = ("c.seq > ?", [seq]) if user_key is None else ("c.user_key = ? AND c.seq > ?", [user_key, seq])
    if limit is not None:
        params.append(limit)
    found = await rows(
        "SELECT c.seq, c.user_key, c.memory_key, c.memory_id, c.op, u.user_id FROM changes c "
        f"JOIN users u ON u.user_key = c.user_key WHERE {where} ORDER BY c.seq"
        + (" LIMIT ?" if limit is not None else ""),
        params,
    )
    return [Change(int(s), int(u), int(k), str(i), o, str(who)) for s, u, k, i, o, who in found]


async def user_ids(rows: Rows, prefix: str, limit: int) -> list[str]:
    # substr, not LIKE: a prefix is text, never a pattern, and matches case exactly in both engines.
    found = await rows(
        "SELECT user_id FROM users WHERE substr(user_id, 1, ?) = ? ORDER BY user_id LIMIT ?",
        (len(prefix), prefix, limit),
    )
    return [str(r[0]) for r in found]


async def scope_ids(
    rows: Rows, user_key: int, column: Literal["session_id", "agent_id"], prefix: str, limit: int
) -> list[str]:
    assert column in ("session_id", "agent_id")  # a column name cannot be a parameter
    found = await rows(
        f"SELECT DISTINCT {column} FROM memories WHERE user_key = ? AND {column} IS NOT NULL "
        f"AND substr({column}, 1, ?) = ? ORDER BY {column} LIMIT ?",
        (user_key, len(prefix), prefix, limit),
    )
    return [str(r[0]) for r in found]
