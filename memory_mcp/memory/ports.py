"""The ports: the interfaces :class:`HierarchicalMemory` talks to, as ``typing.Protocol``.

The default adapters live in :mod:`memory_mcp.adapters`; any object with these methods can be
passed to ``HierarchicalMemory.create`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from .models import Memory, MemoryCategory, ScopeLevel

Vector = npt.NDArray[np.float32]


@dataclass
class MemoryFilter:
    """Which memories a query returns.

    The position (``user_id`` plus optional ``session_id``/``agent_id``/``turn_id``) selects what is
    visible from there: the user's USER memories, that session's SESSION memories, that agent's AGENT
    memories and that turn's TURN memories. With ``all_levels=True`` it selects the whole subtree
    below the position instead (every session, agent and turn of the user), as listings need.
    """

    user_id: str | None = None
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None
    categories: Sequence[MemoryCategory | str] | None = None
    scope_levels: Sequence[ScopeLevel | str] | None = None
    min_importance: float | None = None
    include_superseded: bool = False
    include_expired: bool = False
    as_of: datetime | float | str | None = None
    entity_refs: Sequence[str] | None = None
    all_levels: bool = False
    limit: int | None = None
    offset: int = 0


@dataclass
class VectorFilter:
    """Restricts a vector search to one user and, optionally, to a set of memory keys."""

    user_key: int
    allowed: set[int] | None = None


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length float32 vectors."""

    @property
    def model_name(self) -> str: ...

    @property
    def is_ready(self) -> bool:
        """True once ``embed`` will answer without loading a model first."""
        ...

    async def dimension(self) -> int:
        """The length of the vectors; may load the model or ask the server."""
        ...

    async def embed(self, texts: Sequence[str]) -> Vector:
        """An (n, dimension) float32 array of L2-normalised rows, one per text."""
        ...

    async def warm_up(self) -> None:
        """Load the model (or reach the server) now rather than on first use."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class VectorIndex(Protocol):
    """Approximate nearest neighbours over memory vectors, partitioned by user."""

    async def search(
        self, query: Vector, count: int, flt: VectorFilter
    ) -> list[tuple[int, float]]:
        """Up to ``count`` (memory key, cosine similarity) pairs, best first, within the filter."""
        ...

    async def sync(self, user_key: int) -> None:
        """Bring the user's index up to date with the store (changes from any process)."""
        ...

    async def keys(self, user_key: int) -> set[int]:
        """The memory keys in the user's index, brought up to date first."""
        ...

    async def rebuild(self, user_key: int | None = None) -> int: ...

    async def save(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class TextIndex(Protocol):
    """Full-text (BM25) search, ranked with statistics of one user's memories only."""

    async def search(
        self, query: str, user_key: int, count: int, allowed_sql: tuple[str, list[Any]] | None = None
    ) -> list[tuple[int, float]]:
        """Up to ``count`` (memory key, BM25 score) pairs, best first."""
        ...

    async def rebuild(self) -> None: ...

    async def integrity_check(self) -> None: ...


@runtime_checkable
class MemoryCache(Protocol):
    """A bounded cache of memories by id."""

    def get(self, memory_id: str) -> Memory | None: ...

    def put(self, memory: Memory) -> None: ...

    def invalidate(self, memory_id: str) -> None: ...

    def clear(self) -> None: ...

    def __len__(self) -> int: ...


class MemoryStore(Protocol):
    """Durable storage of memories: the single source of truth, vectors included.

    Statements run on a connection handed out by ``transaction()`` (one atomic write, holding the
    write lock from its start) or ``reading()`` (one consistent snapshot). Rows are selected with
    SQL conditions over ``memories m``, which the core builds from its rules.
    """

    db_path: Path

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...

    def reading(self) -> AbstractAsyncContextManager[Any]: ...

    async def get_meta(self, db: Any, key: str) -> str | None: ...

    async def set_meta(self, db: Any, key: str, value: str) -> None: ...

    async def user_key(self, db: Any, user_id: str, *, create: bool = False) -> int | None: ...

    async def user_counts(self, db: Any, user_key: int) -> tuple[int, int]: ...

    async def insert(self, db: Any, row: dict[str, Any]) -> int: ...

    async def update(self, db: Any, key: int, **values: Any) -> None: ...

    async def select(
        self, db: Any, where: str = "1", params: Iterable[Any] = (), tail: str = ""
    ) -> list[tuple[int, Memory]]: ...

    async def get(self, db: Any, memory_id: str) -> tuple[int, int, Memory] | None: ...

    async def scalar(self, db: Any, sql: str, params: Iterable[Any] = ()) -> Any: ...

    async def delete(self, db: Any, keys: Sequence[int]) -> int: ...

    async def embeddings(self, db: Any, keys: Sequence[int]) -> list[tuple[int, bytes]]: ...

    async def user_embeddings(self, db: Any, user_key: int) -> tuple[Any, list[bytes]]: ...

    async def pending_embeddings(self, db: Any, limit: int) -> list[tuple[int, str]]: ...

    async def last_change(self, db: Any, user_key: int | None = None) -> int: ...

    async def changes_since(
        self, db: Any, seq: int, user_key: int | None = None
    ) -> list[tuple[int, int, str, str]]: ...
