"""The change feed and the ids in use, read with the same SQL in every engine.

``FeedReads`` is mixed into each engine's session, which supplies ``rows(sql, params)`` and
``scalar(sql, params)`` (``?`` placeholders; PostgreSQL numbers them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from ..memory.ports import Change, ScopeCount
from .selection import CURRENT


class FeedReads:
    """The store port's change-feed and id-listing reads, over the session's own ``rows``."""

    async def rows(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        raise NotImplementedError

    async def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        raise NotImplementedError

    async def last_change(self, user_key: int | None = None) -> int:
        if user_key is None:
            return int(await self.scalar("SELECT COALESCE(MAX(seq), 0) FROM changes"))
        return int(await self.scalar("SELECT COALESCE(MAX(seq), 0) FROM changes WHERE user_key = ?", (user_key,)))

    async def changes_since(self, seq: int, user_key: int | None = None, limit: int | None = None) -> list[Change]:
        """The change log after ``seq``, in commit order (the writing transaction logs it)."""
        where, params = ("c.seq > ?", [seq]) if user_key is None else ("c.user_key = ? AND c.seq > ?", [user_key, seq])
        if limit is not None:
            params.append(limit)
        found = await self.rows(
            "SELECT c.seq, c.user_key, c.memory_key, c.memory_id, c.op, u.user_id FROM changes c "
            f"JOIN users u ON u.user_key = c.user_key WHERE {where} ORDER BY c.seq"
            + (" LIMIT ?" if limit is not None else ""),
            params,
        )
        return [Change(int(s), int(u), int(k), str(i), o, str(who)) for s, u, k, i, o, who in found]

    async def user_ids(self, prefix: str, limit: int) -> list[str]:
        # substr, not LIKE: a prefix is text, never a pattern, and matches case exactly in both engines.
        found = await self.rows(
            "SELECT user_id FROM users WHERE substr(user_id, 1, ?) = ? ORDER BY user_id LIMIT ?",
            (len(prefix), prefix, limit),
        )
        return [str(r[0]) for r in found]

    async def scope_ids(
        self, user_key: int, column: Literal["session_id", "agent_id"], prefix: str, limit: int
    ) -> list[str]:
        assert column in ("session_id", "agent_id")  # a column name cannot be a parameter
        found = await self.rows(
            f"SELECT DISTINCT {column} FROM memories WHERE user_key = ? AND {column} IS NOT NULL "
            f"AND substr({column}, 1, ?) = ? ORDER BY {column} LIMIT ?",
            (user_key, len(prefix), prefix, limit),
        )
        return [str(r[0]) for r in found]

    async def scope_counts(self, user_key: int, now: float, limit: int) -> list[ScopeCount]:
        found = await self.rows(
            f"SELECT m.session_id, m.agent_id, m.turn_id, count(*), sum(CASE WHEN {CURRENT} THEN 1 ELSE 0 END), "
            "sum(CASE WHEN m.valid_until IS NOT NULL THEN 1 ELSE 0 END) "
            "FROM memories m WHERE m.user_key = ? GROUP BY m.session_id, m.agent_id, m.turn_id "
            "ORDER BY m.session_id NULLS FIRST, m.agent_id NULLS FIRST, m.turn_id NULLS FIRST LIMIT ?",
            (now, user_key, limit),
        )
        return [ScopeCount(s, a, t, int(current), int(closed), int(total)) for s, a, t, total, current, closed in found]
