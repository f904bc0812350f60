"""SQLiteMemoryStore: memories, their vectors and their history in one SQLite file (aiosqlite).

The store is the single source of truth; the vector and text indexes are derived from it. One
connection per store, in WAL mode so readers never block the writer. Every writing transaction
starts with ``BEGIN IMMEDIATE``: a deferred transaction that later needs the write lock fails at
once with "database is locked", whatever the busy timeout. ``busy_timeout`` is set before the
switch to WAL, which itself needs a lock another process may hold.

Every store operation of the ports is a method of :class:`SQLiteSession`, the object a
transaction or a read hands out; all of the SQL memory_mcp runs on SQLite is here, in
``filters.py`` (selections), ``fts5.py`` (full text) and ``schema.py`` (tables and triggers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import numpy as np
import numpy.typing as npt

from ...errors import StorageError
from ...memory.models import Memory, MemoryStats
from ...memory.ports import BrokenLink, Move, NewVersion, Selection, Stored, Vector, VectorFile
from ..feed import FeedReads
from ..rows import COLUMNS, stored, version_row
from ..selection import where
from .schema import MIGRATIONS, split_sql

log = logging.getLogger(__name__)

_SELECT = (
    "SELECT " + ", ".join(f"m.{c}" for c in COLUMNS) + ", m.embedding IS NOT NULL, "
    # A subquery, not a join: with a join the planner may loop over users first and sort a
    # user's every row for a page of a listing instead of reading them in index order.
    "(SELECT u.user_id FROM users u WHERE u.user_key = m.user_key) FROM memories m"
)
_KEYS = "(SELECT value FROM json_each(?))"  # a list of keys passed as one JSON parameter


def _read_only_place(path: Path) -> bool:
    """Whether ``path`` (or the nearest directory of it that exists) is on a read-only filesystem."""
    for place in (path, *path.parents):
        try:
            return bool(os.statvfs(place).f_flag & os.ST_RDONLY)
        except OSError:
            continue
    return False


def _cannot_open(path: Path, exc: BaseException) -> str:
    """One line: which file, what is wrong with it, what to do."""
    said = str(exc).strip() or type(exc).__name__
    if _read_only_place(path):
        fix = ("it is on a read-only filesystem: remount it writable, or choose another --db-path "
               "(MEMORY_MCP_DB_PATH) on a writable disk")
    elif "not a database" in said or "malformed" in said:
        fix = ("it is damaged or not a memory database: restore it from a backup or an export "
               "(memory-mcp import), or move it aside to start a new one")
    elif "readonly" in said or "read-only" in said or isinstance(exc, PermissionError):
        fix = "it or its directory cannot be written: make them writable, or choose another --db-path"
    elif "directory" in said:
        fix = "give --db-path (MEMORY_MCP_DB_PATH) a file name, not a directory"
    else:
        fix = "check that its directory exists and can be written, or choose another --db-path"
    return f"cannot open the memory database {path} ({said}): {fix}"


def _cannot_write(path: Path, exc: sqlite3.Error) -> StorageError | None:
    """A write that failed for a cause outside the program, as one line that names the cause and
    the fix (None for any other error: that one is a bug and keeps its traceback)."""
    said = str(exc)
    if "disk is full" in said:
        why = f"the disk holding the memory database {path} is full: free some space and try again"
    elif "readonly" in said:
        why = f"the memory database {path} has become read-only: make it and its directory writable again"
    elif "disk I/O error" in said:
        why = f"the disk holding the memory database {path} reported an I/O error: check the disk, then try again"
    elif "database is locked" in said:
        why = f"the memory database {path} stayed locked by another process: try again"
    else:
        return None
    return StorageError(f"{why} (nothing of this change was stored; what was stored before is intact)")


def _keys(keys: Iterable[int]) -> str:
    return json.dumps([int(k) for k in keys])


# How many rows written between two looks at the planner's statistics, and how many rows of each
# index ANALYZE reads (an estimate from a sample: enough for the planner, and bounded in time).
ANALYSE_EVERY = 1000
ANALYSIS_LIMIT = 1000


class SQLiteMemoryStore:
    """Durable storage over one connection; :meth:`transaction` and :meth:`reading` hand out a
    :class:`SQLiteSession` that carries out the store operations."""

    def __init__(self, db_path: str | Path, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 10_000):
        self.db_path = Path(db_path)
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None
        # One connection is shared by every coroutine; the lock keeps a transaction's statements
        # from interleaving with another coroutine's.
        self._lock = asyncio.Lock()
        self._analysed_at = 0  # the connection's total_changes when the statistics were last looked at

    @property
    def location(self) -> str:
        return str(self.db_path)

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (and create or migrate) the database. A file that cannot be opened, is not a
        database or cannot be written is one StorageError naming the file and what to do, and
        leaves nothing running (a connection's thread would keep the process alive)."""
        conn: aiosqlite.Connection | None = None
        try:
            if self.db_path.is_dir():
                raise sqlite3.OperationalError("it is a directory")
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            connecting = aiosqlite.connect(self.db_path, isolation_level=None)
            try:
                conn = await connecting
            except BaseException:
                # aiosqlite stops its thread after a failed connect without waiting; if the event
                # loop ends first, that thread dies printing a traceback: wait for it here.
                await asyncio.to_thread(connecting._thread.join, 10)
                raise
            await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            await conn.execute("PRAGMA journal_size_limit = 67108864")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
            self._conn = conn
            await self._migrate()
        except (sqlite3.Error, OSError) as exc:
            self._conn = None
            if conn is not None:
                await conn.close()
            raise StorageError(_cannot_open(self.db_path, exc)) from None

    async def close(self) -> None:
        if self._conn is not None:
            async with self._lock:
                try:
                    await self._conn.execute("PRAGMA optimize")
                except sqlite3.OperationalError as exc:  # only statistics for the planner: skip them
                    log.info("statistics not updated on closing %s: %s", self.db_path, exc)
                finally:
                    await self._conn.close()
                    self._conn = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("the store is closed")
        return self._conn

    async def _migrate(self) -> None:
        async with self._locked("BEGIN IMMEDIATE") as db:
            (version,) = await (await db.execute("PRAGMA user_version")).fetchone()  # type: ignore[misc]
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.db_path} has schema version {version}, newer than this memory_mcp "
                    f"({len(MIGRATIONS)}); upgrade memory_mcp"
                )
            for number in range(version, len(MIGRATIONS)):
                log.info("migrating %s to schema version %d", self.db_path, number + 1)
                for statement in split_sql(MIGRATIONS[number]):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number + 1}")

    # -- transactions ----------------------------------------------------------------------

    @asynccontextmanager
    async def _locked(self, begin: str) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            db = self.conn
            try:
                try:
                    await db.execute(begin)
                except BaseException as exc:
                    if not isinstance(exc, sqlite3.Error):
                        # Cancelled while BEGIN was on its way to the connection's thread (anyio
                        # cancels every await of a cancelled scope): it runs all the same, so a
                        # ROLLBACK queued after it ends what it starts.
                        with contextlib.suppress(sqlite3.Error):
                            await db.execute("ROLLBACK")
                    raise
                try:
                    yield db
                except BaseException:
                    if db.in_transaction:  # SQLite may have rolled back by itself (a full disk)
                        await db.execute("ROLLBACK")
                    raise
                else:
                    await db.execute("COMMIT")
                    if begin == "BEGIN IMMEDIATE":
                        await self._keep_statistics(db)
            except sqlite3.OperationalError as exc:
                if (error := _cannot_write(self.db_path, exc)) is None:
                    raise
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise error from None

    async def _keep_statistics(self, db: aiosqlite.Connection) -> None:
        """Let SQLite refresh the query planner's statistics as the data grows (``PRAGMA optimize``
        analyses only a table that has none or has grown 25-fold since, so it is free most times).
        Without statistics the planner may read a query's memories through the user's index, every
        one of them, rather than by key: a process that had just stored 30k memories of one user
        recalled in 15.6 ms (p50), 12.0 once analysed (statistics are also taken at close)."""
        if db.total_changes - self._analysed_at < ANALYSE_EVERY:
            return
        self._analysed_at = db.total_changes
        try:
            await db.execute("PRAGMA optimize")
        except sqlite3.OperationalError as exc:  # only statistics for the planner: skip them
            log.info("statistics not updated for %s: %s", self.db_path, exc)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SQLiteSession]:
        """A writing transaction: all or nothing, holding SQLite's write lock from the start."""
        async with self._locked("BEGIN IMMEDIATE") as db:
            yield SQLiteSession(db)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[SQLiteSession]:
        """A consistent read: one snapshot across several statements."""
        async with self._locked("BEGIN") as db:
            yield SQLiteSession(db)


class SQLiteSession(FeedReads):
    """The store operations, run inside one transaction or snapshot of ``conn``."""

    def __init__(self, conn: aiosqlite.Connection):
        self.conn = conn

    # One trip to SQLite's thread each: the statement and its rows together.
    async def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """The first column of the first row (the SQLite package's own helper, not a port operation)."""
        row = await self.row(sql, params)
        return None if row is None else row[0]

    async def row(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """The first row, or None."""
        found = await self.rows(sql, params)
        return found[0] if found else None

    async def rows(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        return list(await self.conn.execute_fetchall(sql, list(params)))

    async def _select(self, condition: str, params: Iterable[Any] = (), tail: str = "") -> list[Stored]:
        return [stored(row) for row in await self.rows(f"{_SELECT} WHERE {condition} {tail}", params)]

    # -- meta and users ----------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        value = await self.scalar("SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    async def set_meta(self, key: str, value: str) -> None:
        await self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    async def user_key(self, user_id: str) -> int | None:
        value = await self.scalar("SELECT user_key FROM users WHERE user_id = ?", (user_id,))
        return None if value is None else int(value)

    async def ensure_user(self, user_id: str) -> int:
        found = await self.user_key(user_id)
        if found is not None:
            return found
        cursor = await self.conn.execute("INSERT INTO users(user_id) VALUES (?)", (user_id,))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def user_keys(self) -> list[int]:
        return [int(k) for (k,) in await self.rows("SELECT user_key FROM users")]

    async def user_counts(self, user_key: int) -> tuple[int, int]:
        """How many rows of the user the text index holds, and their summed lengths (for BM25)."""
        row = await self.row("SELECT doc_count, token_total FROM users WHERE user_key = ?", (user_key,))
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    # -- reading memories --------------------------------------------------------------------

    async def get(self, memory_id: str) -> Stored | None:
        found = await self._select("m.id = ?", (memory_id,))
        return found[0] if found else None

    async def by_keys(self, keys: Sequence[int]) -> dict[int, Memory]:
        return {s.key: s.memory for s in await self._select(f"m.key IN {_KEYS}", (_keys(keys),))}

    async def contents(self, keys: Sequence[int]) -> dict[int, str]:
        rows = await self.rows(f"SELECT key, content FROM memories WHERE key IN {_KEYS}", (_keys(keys),))
        return {int(k): str(c) for k, c in rows}

    async def known_hashes(self, user_key: int, content_hashes: Sequence[str]) -> set[str]:
        rows = await self.rows(
            "SELECT DISTINCT content_hash FROM memories WHERE user_key = ? AND content_hash IN "
            "(SELECT value FROM json_each(?))",
            (user_key, json.dumps(list(content_hashes))),
        )
        return {str(h) for (h,) in rows}

    async def filter_keys(self, keys: Sequence[int], within: Selection) -> set[int]:
        condition, params = where(within)
        rows = await self.rows(
            f"SELECT m.key FROM memories m WHERE m.key IN {_KEYS} AND {condition}", [_keys(keys), *params]
        )
        return {int(k) for (k,) in rows}

    async def select(self, within: Selection, *, limit: int | None = None, offset: int = 0) -> list[Memory]:
        condition, params = where(within)
        tail = f"ORDER BY m.created_at DESC, m.key DESC LIMIT {-1 if limit is None else int(limit)} OFFSET {int(offset)}"
        if all(f.all_levels and f.session_id is None and f.agent_id is None and f.turn_id is None
               for f in within.filters):
            # A listing of a user's whole memory reads the listing index in its order, which holds
            # every other column it may test. The planner's statistics (the closed versions' many
            # distinct times) may otherwise make it skip-scan another index and sort every row.
            rows = await self.rows(f"{_SELECT} INDEXED BY memories_listing WHERE {condition} {tail}", params)
            return [stored(row).memory for row in rows]
        return [s.memory for s in await self._select(condition, params, tail)]

    async def select_keys(self, within: Selection) -> list[int]:
        condition, params = where(within)
        return [int(k) for (k,) in await self.rows(f"SELECT m.key FROM memories m WHERE {condition}", params)]

    async def same_text(self, within: Selection, content_hash: str) -> Stored | None:
        condition, params = where(within)
        found = await self._select(f"{condition} AND m.content_hash = ?", [*params, content_hash], "ORDER BY m.key LIMIT 1")
        return found[0] if found else None

    async def chain_key(self, key: int) -> int:
        return int(await self.scalar("SELECT COALESCE(chain_key, key) FROM memories WHERE key = ?", (key,)))

    async def chain(self, chain_key: int) -> list[Stored]:
        return await self._select("m.key = ? OR m.chain_key = ?", (chain_key, chain_key), "ORDER BY m.valid_from, m.key")

    async def current_in_chain(self, chain_key: int) -> str | None:
        value = await self.scalar(
            "SELECT id FROM memories WHERE (key = ? OR chain_key = ?) AND valid_until IS NULL", (chain_key, chain_key)
        )
        return None if value is None else str(value)

    async def find_idempotent(self, user_key: int, idempotency_key: str) -> Memory | None:
        memory_id = await self.scalar(
            "SELECT memory_id FROM idempotency_keys WHERE user_key = ? AND key = ?", (user_key, idempotency_key)
        )
        found = await self.get(str(memory_id)) if memory_id else None
        return found.memory if found else None

    async def count_memories(self) -> int:
        return int(await self.scalar("SELECT count(*) FROM memories"))

    async def stats(self, user_key: int | None, now: float) -> MemoryStats:
        if user_key is None:
            scope, params = "1", []
            users = await self.scalar("SELECT count(*) FROM users WHERE doc_count > 0")
        else:
            scope, params = "m.user_key = ?", [user_key]
            users = 1
        # One pass over memories_kinds, in its order (no sorting): every count is a sum of its groups.
        rows = await self.rows(
            "SELECT m.category, m.scope_level, count(*), sum(m.valid_until IS NOT NULL), "
            f"coalesce(sum(m.valid_until IS NULL AND m.expires_at <= ?), 0) FROM memories m WHERE {scope} "
            "GROUP BY m.category, m.scope_level",
            [now, *params],
        )
        total = superseded = expired = 0
        by: dict[str, dict[str, int]] = {"category": {}, "scope_level": {}}
        for category, level, count, closed, ended in rows:
            total, superseded, expired = total + count, superseded + closed, expired + ended
            if count - closed - ended:
                for column, name in (("category", str(category)), ("scope_level", str(level))):
                    by[column][name] = by[column].get(name, 0) + count - closed - ended
        return MemoryStats(
            total=total, current=total - superseded - expired, superseded=superseded, expired=expired,
            categories=by["category"], scope_levels=by["scope_level"], users=int(users or 0),
        )

    async def broken_links(self) -> list[BrokenLink]:
        rows = await self.rows(
            "SELECT m.id, m.superseded_by FROM memories m WHERE m.superseded_by IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM memories n WHERE n.id = m.superseded_by AND n.user_key = m.user_key)"
        )
        found = [BrokenLink(str(old), str(new), "successor_missing") for old, new in rows]
        rows = await self.rows(
            "SELECT n.id, n.supersedes FROM memories n JOIN memories m ON m.id = n.supersedes "
            "WHERE m.superseded_by IS NOT n.id OR m.valid_until IS NULL"
        )
        return found + [BrokenLink(str(new), str(old), "predecessor_not_closed") for new, old in rows]

    async def page(self, after_key: int, user_key: int | None, limit: int) -> list[Stored]:
        if user_key is None:
            return await self._select("m.key > ?", (after_key,), f"ORDER BY m.key LIMIT {int(limit)}")
        return await self._select(
            "m.key > ? AND m.user_key = ?", (after_key, user_key), f"ORDER BY m.key LIMIT {int(limit)}"
        )

    # -- writing memories ----------------------------------------------------------------------

    async def insert(self, version: NewVersion) -> int:
        chain_key = None
        if version.memory.supersedes is not None:
            chain_key = await self.scalar(
                "SELECT COALESCE(chain_key, key) FROM memories WHERE id = ? AND user_key = ?",
                (version.memory.supersedes, version.user_key),
            )
        row = version_row(version, chain_key)
        row["embedding"] = None if version.embedding is None else np.asarray(version.embedding, np.float32).tobytes()
        cursor = await self.conn.execute(
            f"INSERT INTO memories({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def reinforce(self, key: int, importance: float) -> None:
        await self.conn.execute(
            "UPDATE memories SET reinforcement_count = reinforcement_count + 1, importance = max(importance, ?) "
            "WHERE key = ?",
            (importance, key),
        )

    async def move(self, key: int, move: Move) -> None:
        to = move.to
        values: dict[str, Any] = {
            "session_id": to.session_id, "agent_id": to.agent_id, "turn_id": to.turn_id,
            "scope_level": to.level.value, "promoted_at": move.promoted_at, "expires_at": move.expires_at,
        }
        if move.origin is not None:
            values.update(
                origin_level=move.origin.level.value, origin_session_id=move.origin.session_id,
                origin_agent_id=move.origin.agent_id, origin_turn_id=move.origin.turn_id,
            )
        sets = ", ".join(f"{name} = ?" for name in values)
        await self.conn.execute(f"UPDATE memories SET {sets} WHERE key = ?", [*values.values(), key])

    async def absorb(
        self, keep: int, within: Selection, content_hash: str, similar: Sequence[int], now: float
    ) -> int:
        condition, params = where(within)
        cursor = await self.conn.execute(
            f"UPDATE memories AS m SET valid_until = ?, superseded_by = (SELECT id FROM memories WHERE key = ?) "
            f"WHERE {condition} AND m.key != ? AND (m.content_hash = ? OR m.key IN {_KEYS})",
            [now, keep, *params, keep, content_hash, _keys(similar)],
        )
        if cursor.rowcount > 0:
            await self.conn.execute(
                "UPDATE memories SET reinforcement_count = reinforcement_count + ? WHERE key = ?",
                (cursor.rowcount, keep),
            )
        return int(cursor.rowcount)

    async def close_version(self, key: int, until: float, successor_id: str) -> bool:
        cursor = await self.conn.execute(
            "UPDATE memories SET valid_until = ?, superseded_by = ? WHERE key = ? AND valid_until IS NULL",
            (until, successor_id, key),
        )
        return cursor.rowcount == 1

    async def relink_around(self, stored: Stored, same_chain: bool) -> None:
        m, user_key = stored.memory, stored.user_key
        if m.supersedes is not None:
            await self.conn.execute(
                "UPDATE memories SET superseded_by = ? WHERE id = ? AND user_key = ?",
                (m.superseded_by, m.supersedes, user_key),
            )
        if same_chain:
            await self.conn.execute(
                "UPDATE memories SET supersedes = ? WHERE id = ? AND user_key = ?",
                (m.supersedes, m.superseded_by, user_key),
            )
            if m.supersedes is None:  # the chain's first version goes: its successor is the new root
                await self.conn.execute(
                    "UPDATE memories SET chain_key = (SELECT key FROM memories WHERE id = ?) WHERE chain_key = ?",
                    (m.superseded_by, stored.key),
                )
                await self.conn.execute("UPDATE memories SET chain_key = NULL WHERE id = ?", (m.superseded_by,))

    async def expire_other_turns(self, user_key: int, session_id: str, turn_id: str, now: float) -> None:
        await self.conn.execute(
            "UPDATE memories SET expires_at = ? WHERE user_key = ? AND session_id = ? AND turn_id IS NOT NULL "
            "AND turn_id != ? AND (expires_at IS NULL OR expires_at > ?)",
            (now, user_key, session_id, turn_id, now),
        )

    async def put_idempotent(self, user_key: int, idempotency_key: str, memory_id: str, now: float) -> None:
        await self.conn.execute(
            "INSERT OR IGNORE INTO idempotency_keys(user_key, key, memory_id, created_at) VALUES (?, ?, ?, ?)",
            (user_key, idempotency_key, memory_id, now),
        )

    async def record_recall(self, key: int, position_key: str) -> int:
        await self.conn.execute(
            "INSERT OR IGNORE INTO recalls(memory_key, position) VALUES (?, ?)", (key, position_key)
        )
        return int(await self.scalar("SELECT count(*) FROM recalls WHERE memory_key = ?", (key,)))

    async def forget_recalls(self, key: int) -> None:
        await self.conn.execute("DELETE FROM recalls WHERE memory_key = ?", (key,))

    async def delete(self, keys: Sequence[int]) -> int:
        if not keys:
            return 0
        cursor = await self.conn.execute(f"DELETE FROM memories WHERE key IN {_KEYS}", (_keys(keys),))
        return int(cursor.rowcount)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        await self.conn.execute("SAVEPOINT one")
        try:
            yield
        except BaseException:
            await self.conn.execute("ROLLBACK TO one")
            raise
        finally:
            await self.conn.execute("RELEASE one")

    # -- vectors -------------------------------------------------------------------------------

    async def embeddings(self, keys: Sequence[int]) -> dict[int, Vector]:
        rows = await self.rows(
            f"SELECT key, embedding FROM memories WHERE embedding IS NOT NULL AND key IN {_KEYS}", (_keys(keys),)
        )
        return {int(k): np.frombuffer(b, dtype=np.float32) for k, b in rows}

    async def user_embeddings(self, user_key: int) -> tuple[npt.NDArray[np.uint64], Vector]:
        rows = await self.rows(
            "SELECT key, embedding FROM memories WHERE user_key = ? AND embedding IS NOT NULL", (user_key,)
        )
        keys = np.fromiter((r[0] for r in rows), dtype=np.uint64, count=len(rows))
        if not rows:
            return keys, np.zeros((0, 0), dtype=np.float32)
        return keys, np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype=np.float32).reshape(len(rows), -1)

    async def embedded_keys(self, user_key: int) -> set[int]:
        rows = await self.rows("SELECT key FROM memories WHERE user_key = ? AND embedding IS NOT NULL", (user_key,))
        return {int(k) for (k,) in rows}

    async def embedded_count(self, user_key: int) -> int:
        return int(await self.scalar(
            "SELECT count(*) FROM memories WHERE user_key = ? AND embedding IS NOT NULL", (user_key,)
        ))

    async def pending_embeddings(self, limit: int) -> list[tuple[int, str]]:
        rows = await self.rows("SELECT key, content FROM memories WHERE embedding IS NULL ORDER BY key LIMIT ?", (limit,))
        return [(int(k), str(c)) for k, c in rows]

    async def set_embeddings(self, vectors: Sequence[tuple[int, Vector]]) -> None:
        await self.conn.executemany(
            "UPDATE memories SET embedding = ? WHERE key = ? AND embedding IS NULL",
            [(np.asarray(v, dtype=np.float32).tobytes(), key) for key, v in vectors],
        )

    async def drop_embeddings(self) -> None:
        await self.conn.execute("UPDATE memories SET embedding = NULL WHERE embedding IS NOT NULL")
        await self.conn.execute("DELETE FROM vector_index_files")

    async def vector_file(self, user_key: int) -> VectorFile | None:
        row = await self.row(
            "SELECT user_key, file_name, seq, count, crc32, size, model, dim FROM vector_index_files "
            "WHERE user_key = ?",
            (user_key,),
        )
        return None if row is None else VectorFile(*row)

    async def record_vector_file(self, record: VectorFile) -> tuple[bool, str | None]:
        previous = await self.scalar("SELECT file_name FROM vector_index_files WHERE user_key = ?", (record.user_key,))
        cursor = await self.conn.execute(
            "INSERT INTO vector_index_files(user_key, file_name, seq, count, crc32, size, model, dim) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(user_key) DO UPDATE SET file_name = excluded.file_name, seq = excluded.seq, "
            "count = excluded.count, crc32 = excluded.crc32, size = excluded.size, "
            "model = excluded.model, dim = excluded.dim "
            "WHERE excluded.seq >= vector_index_files.seq OR vector_index_files.model != excluded.model "
            "OR vector_index_files.dim != excluded.dim",
            tuple(record),
        )
        recorded = cursor.rowcount > 0
        return recorded, str(previous) if recorded and previous is not None else None

    # The change log and the ids in use: FeedReads (adapters/feed.py).

