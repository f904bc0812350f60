"""SQLiteMemoryStore: memories, their vectors and their history in one SQLite file (aiosqlite).

The store is the single source of truth; the vector and text indexes are derived from it. One
connection per store, in WAL mode so readers never block the writer. Every writing transaction
starts with ``BEGIN IMMEDIATE``: a deferred transaction that later needs the write lock fails at
once with "database is locked", whatever the busy timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import numpy as np

from ..memory.models import Memory, MemoryCategory, ScopeLevel, utc_from_epoch
from .sqlite_schema import MIGRATIONS

log = logging.getLogger(__name__)

_COLUMNS = (
    "key", "id", "user_key", "session_id", "agent_id", "turn_id", "category", "content", "importance",
    "entity_refs", "metadata", "provenance", "created_at", "valid_from", "valid_until", "expires_at",
    "supersedes", "superseded_by", "origin_level", "origin_session_id", "origin_agent_id",
    "origin_turn_id", "promoted_at", "reinforcement_count", "context",
)
_SELECT = (
    "SELECT " + ", ".join(f"m.{c}" for c in _COLUMNS) + ", m.embedding IS NOT NULL, u.user_id "
    "FROM memories m JOIN users u ON u.user_key = m.user_key"
)


def _row_to_memory(row: Sequence[Any]) -> tuple[int, Memory]:
    (key, mid, _uk, session_id, agent_id, turn_id, category, content, importance, entity_refs, metadata,
     provenance, created_at, valid_from, valid_until, expires_at, supersedes, superseded_by, origin_level,
     o_session, o_agent, o_turn, promoted_at, reinforcement, context, embedded, user_id) = row
    memory = Memory(
        id=mid, user_id=user_id, session_id=session_id, agent_id=agent_id, turn_id=turn_id,
        content=content, category=MemoryCategory(category), importance=importance,
        entity_refs=json.loads(entity_refs), metadata=json.loads(metadata),
        provenance=json.loads(provenance), created_at=utc_from_epoch(created_at),
        valid_from=utc_from_epoch(valid_from), valid_until=utc_from_epoch(valid_until),
        expires_at=utc_from_epoch(expires_at), supersedes=supersedes, superseded_by=superseded_by,
        origin_level=ScopeLevel(origin_level) if origin_level else None,
        origin_session_id=o_session, origin_agent_id=o_agent, origin_turn_id=o_turn,
        promoted_at=utc_from_epoch(promoted_at), reinforcement_count=reinforcement, context=context,
        embedded=bool(embedded),
    )
    return key, memory


class SQLiteMemoryStore:
    """Durable storage: CRUD, filtering, supersession and the change log, over one connection."""

    def __init__(self, db_path: str | Path, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 10_000):
        self.db_path = Path(db_path)
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None
        # One connection is shared by every coroutine; the lock keeps a transaction's statements
        # from interleaving with another coroutine's.
        self._lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self.db_path.parent and not self.db_path.parent.exists():
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self.db_path, isolation_level=None)
        # busy_timeout first: switching to WAL itself needs a lock another process may hold.
        await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        await conn.execute("PRAGMA journal_size_limit = 67108864")
        await conn.execute("PRAGMA foreign_keys = ON")
        self._conn = conn
        await self._migrate()

    async def close(self) -> None:
        if self._conn is not None:
            async with self._lock:
                try:
                    await self._conn.execute("PRAGMA optimize")
                finally:
                    await self._conn.close()
                    self._conn = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("the store is closed")
        return self._conn

    async def _migrate(self) -> None:
        async with self.transaction() as db:
            (version,) = await (await db.execute("PRAGMA user_version")).fetchone()  # type: ignore[misc]
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.db_path} has schema version {version}, newer than this memory_mcp "
                    f"({len(MIGRATIONS)}); upgrade memory_mcp"
                )
            for number in range(version, len(MIGRATIONS)):
                log.info("migrating %s to schema version %d", self.db_path, number + 1)
                for statement in _split_sql(MIGRATIONS[number]):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number + 1}")

    # -- transactions ----------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A writing transaction: all or nothing, holding SQLite's write lock from the start."""
        async with self._lock:
            db = self.conn
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            else:
                await db.execute("COMMIT")

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """A consistent read: one snapshot across several statements."""
        async with self._lock:
            db = self.conn
            await db.execute("BEGIN")
            try:
                yield db
            finally:
                await db.execute("COMMIT")

    # -- meta and users ----------------------------------------------------------------------

    async def get_meta(self, db: aiosqlite.Connection, key: str) -> str | None:
        row = await (await db.execute("SELECT value FROM meta WHERE key = ?", (key,))).fetchone()
        return None if row is None else str(row[0])

    async def set_meta(self, db: aiosqlite.Connection, key: str, value: str) -> None:
        await db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    async def user_key(self, db: aiosqlite.Connection, user_id: str, *, create: bool = False) -> int | None:
        row = await (await db.execute("SELECT user_key FROM users WHERE user_id = ?", (user_id,))).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            return None
        cursor = await db.execute("INSERT INTO users(user_id) VALUES (?)", (user_id,))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def user_counts(self, db: aiosqlite.Connection, user_key: int) -> tuple[int, int]:
        row = await (
            await db.execute("SELECT doc_count, token_total FROM users WHERE user_key = ?", (user_key,))
        ).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    # -- memories ------------------------------------------------------------------------------

    async def insert(self, db: aiosqlite.Connection, row: dict[str, Any]) -> int:
        """Insert one memory row (a dict of column values); returns its integer key."""
        row = dict(row)
        for name in ("entity_refs", "metadata", "provenance"):
            if not isinstance(row.get(name, ""), str):
                row[name] = json.dumps(row[name], ensure_ascii=False, sort_keys=True)
        names = list(row)
        cursor = await db.execute(
            f"INSERT INTO memories({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
            list(row.values()),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def update(self, db: aiosqlite.Connection, key: int, **values: Any) -> None:
        sets = ", ".join(f"{name} = ?" for name in values)
        await db.execute(f"UPDATE memories SET {sets} WHERE key = ?", [*values.values(), key])

    async def select(
        self, db: aiosqlite.Connection, where: str = "1", params: Iterable[Any] = (), tail: str = ""
    ) -> list[tuple[int, Memory]]:
        cursor = await db.execute(f"{_SELECT} WHERE {where} {tail}", list(params))
        return [_row_to_memory(row) for row in await cursor.fetchall()]

    async def get(self, db: aiosqlite.Connection, memory_id: str) -> tuple[int, int, Memory] | None:
        """(key, user_key, memory) of the memory with this public id, or None."""
        cursor = await db.execute(f"{_SELECT} WHERE m.id = ?", (memory_id,))
        row = await cursor.fetchone()
        if row is None:
            return None
        key, memory = _row_to_memory(row)
        return key, int(row[2]), memory

    async def scalar(self, db: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> Any:
        row = await (await db.execute(sql, list(params))).fetchone()
        return None if row is None else row[0]

    async def delete(self, db: aiosqlite.Connection, keys: Sequence[int]) -> int:
        if not keys:
            return 0
        cursor = await db.execute(
            "DELETE FROM memories WHERE key IN (SELECT value FROM json_each(?))", (json.dumps(list(keys)),)
        )
        return cursor.rowcount

    # -- vectors -------------------------------------------------------------------------------

    async def embeddings(
        self, db: aiosqlite.Connection, keys: Sequence[int]
    ) -> list[tuple[int, bytes]]:
        cursor = await db.execute(
            "SELECT key, embedding FROM memories WHERE embedding IS NOT NULL "
            "AND key IN (SELECT value FROM json_each(?))",
            (json.dumps(list(keys)),),
        )
        return [(int(k), bytes(b)) for k, b in await cursor.fetchall()]

    async def user_embeddings(self, db: aiosqlite.Connection, user_key: int) -> tuple[np.ndarray, list[bytes]]:
        cursor = await db.execute(
            "SELECT key, embedding FROM memories WHERE user_key = ? AND embedding IS NOT NULL", (user_key,)
        )
        rows = await cursor.fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.uint64, count=len(rows)), [bytes(r[1]) for r in rows]

    async def pending_embeddings(self, db: aiosqlite.Connection, limit: int) -> list[tuple[int, str]]:
        cursor = await db.execute(
            "SELECT key, content FROM memories WHERE embedding IS NULL ORDER BY key LIMIT ?", (limit,)
        )
        return [(int(k), str(c)) for k, c in await cursor.fetchall()]

    # -- change log ----------------------------------------------------------------------------

    async def last_change(self, db: aiosqlite.Connection, user_key: int | None = None) -> int:
        if user_key is None:
            value = await self.scalar(db, "SELECT COALESCE(MAX(seq), 0) FROM changes")
        else:
            value = await self.scalar(
                db, "SELECT COALESCE(MAX(seq), 0) FROM changes WHERE user_key = ?", (user_key,)
            )
        return int(value)

    async def changes_since(
        self, db: aiosqlite.Connection, seq: int, user_key: int | None = None
    ) -> list[tuple[int, int, str, str]]:
        """(seq, memory_key, memory_id, op) after ``seq``, in order."""
        if user_key is None:
            cursor = await db.execute(
                "SELECT seq, memory_key, memory_id, op FROM changes WHERE seq > ? ORDER BY seq", (seq,)
            )
        else:
            cursor = await db.execute(
                "SELECT seq, memory_key, memory_id, op FROM changes WHERE user_key = ? AND seq > ? ORDER BY seq",
                (user_key, seq),
            )
        return [(int(s), int(k), str(i), str(o)) for s, k, i, o in await cursor.fetchall()]


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--") and not buffer.strip():
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements

