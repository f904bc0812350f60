"""PostgresMemoryStore: memories, their vectors and their history in PostgreSQL (asyncpg, pgvector).

Many memory servers, on many machines, share one database. The rules are the SQLite engine's,
and so is the way they stay safe with many writers: every writing transaction first takes one
advisory lock (``pg_advisory_xact_lock``), held until it commits. That keeps what the rules read
and then write (is this text already stored? is this version still current? was this idempotency
key used?) true until the write lands, on every server, and it makes the change log's order the
order of commits, so a reader that has seen change n has seen every change before it. Writes are
short (no embedding inside a transaction), so the lock is held for milliseconds; reads never take
it: each read is one REPEATABLE READ snapshot, on a connection from a pool. The conditions a write
depends on are also stated in the SQL itself (a version is closed only ``WHERE valid_until IS
NULL``; idempotency keys are a primary key), so even a write outside the lock could not undo
another.

All SQL of this engine is here, in ``text.py`` (full text), ``vectors.py`` (nearest vectors) and
``schema.py`` (tables and triggers); selections come from the shared ``adapters/selection.py``,
whose ``?`` parameters are numbered here for PostgreSQL.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import socket
import struct
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

from ...errors import StorageError
from ...memory.models import Memory, MemoryStats
from ...memory.ports import BrokenLink, Move, NewVersion, Selection, Stored, Vector, VectorFile
from ..feed import FeedReads
from ..rows import COLUMNS, stored, version_row
from ..selection import CURRENT
from ..selection import where as _where
from ..words import plain
from .schema import MIGRATIONS

try:
    import asyncpg
except ImportError:  # the optional extra
    asyncpg = None

log = logging.getLogger(__name__)

# What losing the server looks like to asyncpg.
_LOST: tuple[type[BaseException], ...] = (
    (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError)
    if asyncpg is not None else ()
)

# Advisory lock keys (any 64-bit numbers no other application is likely to use).
WRITE_LOCK = 0x6D656D6F72790001
MIGRATE_LOCK = 0x6D656D6F72790002
TEXT_CONFIG = "memory_mcp_text"

_SELECT = (
    "SELECT " + ", ".join(f"m.{c}" for c in COLUMNS) + ", m.embedding IS NOT NULL, u.user_id "
    "FROM memories m JOIN users u ON u.user_key = m.user_key"
)


def _any_of(column: str, n: int) -> str:
    """PostgreSQL's test of a JSON list (``selection.where`` asks for it)."""
    return f"EXISTS (SELECT 1 FROM json_array_elements_text({column}::json) e(v) WHERE e.v IN ({', '.join('?' * n)}))"


def where(within: Selection) -> tuple[str, list[Any]]:
    return _where(within, _any_of)


@functools.lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """``?`` parameters as PostgreSQL's ``$1, $2, ...`` (no statement here has a literal ``?``)."""
    count = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


def _count(status: str) -> int:
    """The row count of a command status ('UPDATE 3', 'INSERT 0 1', 'DELETE 0')."""
    return int(status.rsplit(" ", 1)[-1]) if status and status[-1].isdigit() else 0


# -- pgvector's binary format: dimension (int16), unused (int16), then big-endian float32s --------


def _encode_vector(value: Any) -> bytes:
    array = np.asarray(value, dtype=">f4").ravel()
    return struct.pack(">HH", array.size, 0) + array.tobytes()


def _decode_vector(data: bytes) -> Vector:
    dim = struct.unpack_from(">H", data)[0]
    return np.frombuffer(data, dtype=">f4", count=dim, offset=4).astype(np.float32)


def _said(exc: BaseException) -> str:
    """What an error says, on one line (PostgreSQL adds its hints on lines of their own)."""
    return " ".join(str(exc).split())


def redact(url: str) -> str:
    """The URL as shown to people: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _where_server(url: str) -> str:
    """'host:port' (or the socket directory) a URL points at, for error messages."""
    parts = urlsplit(url)
    host = parts.hostname or (parse_qs(parts.query).get("host") or ["localhost"])[0]
    return host if host.startswith("/") else f"{host}:{parts.port or 5432}"


class PostgresMemoryStore:
    """Durable storage in a PostgreSQL database with pgvector, over a pool of connections."""

    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout_s: float = 10.0):
        self.url = url
        self._pool_size = pool_size
        self._timeout = connect_timeout_s
        self._pool: Any = None

    @property
    def location(self) -> str:
        return redact(self.url)

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if asyncpg is None:
            raise StorageError(
                "a postgresql:// database needs the optional extra: pip install 'memory_mcp[postgres]'"
            )
        conn = await self._connect()
        try:
            await self._ensure_vector_extension(conn)
            await self._migrate(conn)
        finally:
            await conn.close()
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self._pool_size, timeout=self._timeout, init=_setup_connection
            )
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
            raise self._connect_error(exc) from exc

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _connect(self) -> Any:
        try:
            return await asyncpg.connect(self.url, timeout=self._timeout)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._connect_error(exc) from exc

    def _connect_error(self, exc: BaseException) -> StorageError:
        server = _where_server(self.url)
        parts = urlsplit(self.url)
        if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
            return StorageError(
                f"PostgreSQL at {server} refused user {parts.username or '(default)'!r}: {_said(exc)}; check the user "
                "and password in the database URL (MEMORY_MCP_DATABASE_URL)"
            )
        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            return StorageError(f"{_said(exc)} at {server}: create it (CREATE DATABASE ...) or fix the database URL")
        if isinstance(exc, asyncio.TimeoutError):
            return StorageError(
                f"PostgreSQL at {server} did not answer within {self._timeout:g} s: check the host in the "
                "database URL (MEMORY_MCP_DATABASE_URL) and that the server is running and reachable"
            )
        if isinstance(exc, socket.gaierror):
            return StorageError(f"cannot resolve the PostgreSQL host {server}: check the database URL ({_said(exc)})")
        if isinstance(exc, OSError):
            return StorageError(
                f"cannot reach PostgreSQL at {server} ({exc.strerror or _said(exc)}): check the database URL "
                "(MEMORY_MCP_DATABASE_URL) and that the server is running"
            )
        return StorageError(f"cannot open the PostgreSQL database at {server}: {_said(exc)}")

    async def _ensure_vector_extension(self, conn: Any) -> None:
        if await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'vector'"):
            return
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except asyncpg.PostgresError as exc:
            raise StorageError(
                f"the database {self.location} has no pgvector extension and it could not be created ({_said(exc)}): "
                "install pgvector on the server and run CREATE EXTENSION vector; in the database as a "
                "user allowed to"
            ) from exc

    async def _migrate(self, conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY)")
            version = int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"{self.location} has schema version {version}, newer than this memory_mcp "
                    f"({len(MIGRATIONS)}); upgrade memory_mcp"
                )
            for number in range(version, len(MIGRATIONS)):
                log.info("migrating %s to schema version %d", self.location, number + 1)
                await conn.execute(MIGRATIONS[number])
                await conn.execute("INSERT INTO schema_migrations(version) VALUES ($1)", number + 1)

    # -- transactions ----------------------------------------------------------------------

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("the store is closed")
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresSession]:
        """A writing transaction: all or nothing, holding the write lock from the start."""
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
            yield PostgresSession(conn)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[PostgresSession]:
        """A consistent read: one snapshot across several statements."""
        async with self._connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield PostgresSession(conn)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection. Losing the server (a restart, a network cut) is a StorageError
        that says so; the pool connects again on the next call once the server is back."""
        try:
            async with self.pool.acquire(timeout=self._timeout) as conn:
                yield conn
        except _LOST as exc:
            raise StorageError(
                f"lost the connection to PostgreSQL at {_where_server(self.url)} ({type(exc).__name__}: "
                f"{_said(exc) or 'no answer'}): the call did not complete; retry once the server is reachable"
            ) from exc


async def _setup_connection(conn: Any) -> None:
    await conn.set_type_codec(
        "vector", schema=await _vector_schema(conn), encoder=_encode_vector, decoder=_decode_vector, format="binary"
    )


async def _vector_schema(conn: Any) -> str:
    return str(await conn.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    ))


class PostgresSession(FeedReads):
    """The store operations, run inside one transaction or snapshot of ``conn``."""

    def __init__(self, conn: Any):
        self.conn = conn

    async def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """The first column of the first row (this package's own helper, not a port operation)."""
        return await self.conn.fetchval(numbered(sql), *params)

    async def rows(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        return list(await self.conn.fetch(numbered(sql), *params))

    async def run(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run a command; how many rows it changed."""
        return _count(await self.conn.execute(numbered(sql), *params))

    async def _select(self, condition: str, params: Iterable[Any] = (), tail: str = "") -> list[Stored]:
        return [stored(tuple(row)) for row in await self.rows(f"{_SELECT} WHERE {condition} {tail}", params)]

    # -- meta and users ----------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        value = await self.scalar("SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    async def set_meta(self, key: str, value: str) -> None:
        await self.run(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def user_key(self, user_id: str) -> int | None:
        value = await self.scalar("SELECT user_key FROM users WHERE user_id = ?", (user_id,))
        return None if value is None else int(value)

    async def ensure_user(self, user_id: str) -> int:
        found = await self.scalar(
            "INSERT INTO users(user_id) VALUES (?) ON CONFLICT (user_id) DO NOTHING RETURNING user_key", (user_id,)
        )
        return int(found) if found is not None else int(await self.user_key(user_id))  # type: ignore[arg-type]

    async def user_keys(self) -> list[int]:
        return [int(r[0]) for r in await self.rows("SELECT user_key FROM users")]

    async def user_counts(self, user_key: int) -> tuple[int, int]:
        """How many rows of the user the text index holds, and their summed lengths (for BM25)."""
        found = await self.rows("SELECT doc_count, token_total FROM users WHERE user_key = ?", (user_key,))
        return (0, 0) if not found else (int(found[0][0]), int(found[0][1]))

    # -- reading memories --------------------------------------------------------------------

    async def get(self, memory_id: str) -> Stored | None:
        found = await self._select("m.id = ?", (memory_id,))
        return found[0] if found else None

    async def by_keys(self, keys: Sequence[int]) -> dict[int, Memory]:
        return {s.key: s.memory for s in await self._select("m.key = ANY(?::bigint[])", (_ints(keys),))}

    async def known_hashes(self, user_key: int, content_hashes: Sequence[str]) -> set[str]:
        rows = await self.rows(
            "SELECT DISTINCT content_hash FROM memories WHERE user_key = ? AND content_hash = ANY(?::text[])",
            (user_key, list(content_hashes)),
        )
        return {str(h) for (h,) in rows}

    async def contents(self, keys: Sequence[int]) -> dict[int, str]:
        found = await self.rows("SELECT key, content FROM memories WHERE key = ANY(?::bigint[])", (_ints(keys),))
        return {int(k): str(c) for k, c in found}

    async def filter_keys(self, keys: Sequence[int], within: Selection) -> set[int]:
        condition, params = where(within)
        found = await self.rows(
            f"SELECT m.key FROM memories m WHERE m.key = ANY(?::bigint[]) AND {condition}", [_ints(keys), *params]
        )
        return {int(r[0]) for r in found}

    async def select(self, within: Selection, *, limit: int | None = None, offset: int = 0) -> list[Memory]:
        condition, params = where(within)
        tail = f"ORDER BY m.created_at DESC, m.key DESC LIMIT {'ALL' if limit is None else int(limit)} OFFSET {int(offset)}"
        return [s.memory for s in await self._select(condition, params, tail)]

    async def select_keys(self, within: Selection) -> list[int]:
        condition, params = where(within)
        return [int(r[0]) for r in await self.rows(f"SELECT m.key FROM memories m WHERE {condition}", params)]

    async def same_text(self, within: Selection, content_hash: str) -> Stored | None:
        condition, params = where(within)
        found = await self._select(f"{condition} AND m.content_hash = ?", [*params, content_hash], "ORDER BY m.key LIMIT 1")
        return found[0] if found else None

    async def chain_key(self, key: int) -> int:
        return int(await self.scalar("SELECT COALESCE(chain_key, key) FROM memories WHERE key = ?", (key,)))

    async def chain(self, chain_key: int) -> list[Stored]:
        return await self._select("(m.key = ? OR m.chain_key = ?)", (chain_key, chain_key), "ORDER BY m.valid_from, m.key")

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
            scope, params = "TRUE", []
            users = await self.scalar("SELECT count(*) FROM users WHERE doc_count > 0")
        else:
            scope, params = "m.user_key = ?", [user_key]
            users = 1
        found = await self.rows(
            "SELECT count(*), coalesce(sum((m.valid_until IS NOT NULL)::int), 0), "
            f"coalesce(sum((m.valid_until IS NULL AND m.expires_at <= ?)::int), 0) FROM memories m WHERE {scope}",
            [now, *params],
        )
        total, superseded, expired = (int(v) for v in found[0])
        by: dict[str, dict[str, int]] = {}
        for column in ("category", "scope_level"):
            counted = await self.rows(
                f"SELECT m.{column}, count(*) FROM memories m WHERE {scope} AND {CURRENT} GROUP BY m.{column}",
                [*params, now],
            )
            by[column] = {str(name): int(n) for name, n in counted}
        return MemoryStats(
            total=total, current=total - superseded - expired, superseded=superseded, expired=expired,
            categories=by["category"], scope_levels=by["scope_level"], users=int(users or 0),
        )

    async def broken_links(self) -> list[BrokenLink]:
        found = await self.rows(
            "SELECT m.id, m.superseded_by FROM memories m WHERE m.superseded_by IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM memories n WHERE n.id = m.superseded_by AND n.user_key = m.user_key)"
        )
        links = [BrokenLink(str(old), str(new), "successor_missing") for old, new in found]
        found = await self.rows(
            "SELECT n.id, n.supersedes FROM memories n JOIN memories m ON m.id = n.supersedes "
            "WHERE m.superseded_by IS DISTINCT FROM n.id OR m.valid_until IS NULL"
        )
        return links + [BrokenLink(str(new), str(old), "predecessor_not_closed") for new, old in found]

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
        # PostgreSQL's parser would read 'v1.2' or 'a@b.c' as one token: it is given words only.
        row["search_text"] = plain(row["search_text"])
        row["context_text"] = None if row["context_text"] is None else plain(row["context_text"])
        row["embedding"] = version.embedding
        return int(await self.scalar(
            f"INSERT INTO memories({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) RETURNING key",
            list(row.values()),
        ))

    async def reinforce(self, key: int, importance: float) -> None:
        await self.run(
            "UPDATE memories SET reinforcement_count = reinforcement_count + 1, importance = greatest(importance, ?) "
            "WHERE key = ?",
            (float(importance), key),
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
        await self.run(f"UPDATE memories SET {sets} WHERE key = ?", [*values.values(), key])

    async def absorb(
        self, keep: int, within: Selection, content_hash: str, similar: Sequence[int], now: float
    ) -> int:
        condition, params = where(within)
        absorbed = await self.run(
            "UPDATE memories AS m SET valid_until = ?, superseded_by = (SELECT id FROM memories WHERE key = ?) "
            f"WHERE {condition} AND m.key != ? AND (m.content_hash = ? OR m.key = ANY(?::bigint[]))",
            [now, keep, *params, keep, content_hash, _ints(similar)],
        )
        if absorbed > 0:
            await self.run(
                "UPDATE memories SET reinforcement_count = reinforcement_count + ? WHERE key = ?", (absorbed, keep)
            )
        return absorbed

    async def close_version(self, key: int, until: float, successor_id: str) -> bool:
        return await self.run(
            "UPDATE memories SET valid_until = ?, superseded_by = ? WHERE key = ? AND valid_until IS NULL",
            (until, successor_id, key),
        ) == 1

    async def relink_around(self, stored: Stored, same_chain: bool) -> None:
        m, user_key = stored.memory, stored.user_key
        if m.supersedes is not None:
            await self.run(
                "UPDATE memories SET superseded_by = ? WHERE id = ? AND user_key = ?",
                (m.superseded_by, m.supersedes, user_key),
            )
        if same_chain:
            await self.run(
                "UPDATE memories SET supersedes = ? WHERE id = ? AND user_key = ?",
                (m.supersedes, m.superseded_by, user_key),
            )
            if m.supersedes is None:  # the chain's first version goes: its successor is the new root
                await self.run(
                    "UPDATE memories SET chain_key = (SELECT key FROM memories WHERE id = ?) WHERE chain_key = ?",
                    (m.superseded_by, stored.key),
                )
                await self.run("UPDATE memories SET chain_key = NULL WHERE id = ?", (m.superseded_by,))

    async def expire_other_turns(self, user_key: int, session_id: str, turn_id: str, now: float) -> None:
        await self.run(
            "UPDATE memories SET expires_at = ? WHERE user_key = ? AND session_id = ? AND turn_id IS NOT NULL "
            "AND turn_id != ? AND (expires_at IS NULL OR expires_at > ?)",
            (now, user_key, session_id, turn_id, now),
        )

    async def put_idempotent(self, user_key: int, idempotency_key: str, memory_id: str, now: float) -> None:
        await self.run(
            "INSERT INTO idempotency_keys(user_key, key, memory_id, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (user_key, idempotency_key, memory_id, now),
        )

    async def record_recall(self, key: int, position_key: str) -> int:
        await self.run(
            "INSERT INTO recalls(memory_key, position) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, position_key)
        )
        return int(await self.scalar("SELECT count(*) FROM recalls WHERE memory_key = ?", (key,)))

    async def forget_recalls(self, key: int) -> None:
        await self.run("DELETE FROM recalls WHERE memory_key = ?", (key,))

    async def delete(self, keys: Sequence[int]) -> int:
        if not keys:
            return 0
        return await self.run("DELETE FROM memories WHERE key = ANY(?::bigint[])", (_ints(keys),))

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with self.conn.transaction():  # nested: a savepoint
            yield

    # -- vectors -------------------------------------------------------------------------------

    async def embeddings(self, keys: Sequence[int]) -> dict[int, Vector]:
        found = await self.rows(
            "SELECT key, embedding FROM memories WHERE embedding IS NOT NULL AND key = ANY(?::bigint[])",
            (_ints(keys),),
        )
        return {int(k): v for k, v in found}

    async def user_embeddings(self, user_key: int) -> tuple[npt.NDArray[np.uint64], Vector]:
        found = await self.rows(
            "SELECT key, embedding FROM memories WHERE user_key = ? AND embedding IS NOT NULL ORDER BY key", (user_key,)
        )
        keys = np.fromiter((r[0] for r in found), dtype=np.uint64, count=len(found))
        if not found:
            return keys, np.zeros((0, 0), dtype=np.float32)
        return keys, np.stack([r[1] for r in found]).astype(np.float32)

    async def embedded_keys(self, user_key: int) -> set[int]:
        found = await self.rows("SELECT key FROM memories WHERE user_key = ? AND embedding IS NOT NULL", (user_key,))
        return {int(r[0]) for r in found}

    async def embedded_count(self, user_key: int) -> int:
        return int(await self.scalar(
            "SELECT count(*) FROM memories WHERE user_key = ? AND embedding IS NOT NULL", (user_key,)
        ))

    async def pending_embeddings(self, limit: int) -> list[tuple[int, str]]:
        found = await self.rows(
            "SELECT key, content FROM memories WHERE embedding IS NULL ORDER BY key LIMIT ?", (limit,)
        )
        return [(int(k), str(c)) for k, c in found]

    async def set_embeddings(self, vectors: Sequence[tuple[int, Vector]]) -> None:
        await self.conn.executemany(
            numbered("UPDATE memories SET embedding = ? WHERE key = ? AND embedding IS NULL"),
            [(np.asarray(v, dtype=np.float32), key) for key, v in vectors],
        )

    async def drop_embeddings(self) -> None:
        # The HNSW indexes are made for one dimension; a new model may have another.
        for (name,) in await self.rows(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'memories' AND indexname LIKE 'memories_embedding_%'"
        ):
            await self.run(f'DROP INDEX IF EXISTS "{name}"')
        await self.run("UPDATE memories SET embedding = NULL WHERE embedding IS NOT NULL")
        await self.run("DELETE FROM vector_index_files")

    async def vector_file(self, user_key: int) -> VectorFile | None:
        found = await self.rows(
            "SELECT user_key, file_name, seq, count, crc32, size, model, dim FROM vector_index_files WHERE user_key = ?",
            (user_key,),
        )
        return None if not found else VectorFile(*found[0])

    async def record_vector_file(self, record: VectorFile) -> tuple[bool, str | None]:
        previous = await self.scalar("SELECT file_name FROM vector_index_files WHERE user_key = ?", (record.user_key,))
        recorded = await self.run(
            "INSERT INTO vector_index_files AS f (user_key, file_name, seq, count, crc32, size, model, dim) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (user_key) DO UPDATE SET file_name = excluded.file_name, seq = excluded.seq, "
            "count = excluded.count, crc32 = excluded.crc32, size = excluded.size, "
            "model = excluded.model, dim = excluded.dim "
            "WHERE excluded.seq >= f.seq OR f.model != excluded.model OR f.dim != excluded.dim",
            tuple(record),
        ) > 0
        return recorded, str(previous) if recorded and previous is not None else None

    # The change log and the ids in use: FeedReads (adapters/feed.py).



def _ints(keys: Iterable[int]) -> list[int]:
    return [int(k) for k in keys]
