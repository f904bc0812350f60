"""The ports: what the rules of memory need from storage, indexes, embedders and caches.

Each port is a ``typing.Protocol`` that speaks the domain: memories, positions, filters, keys. None
takes or returns SQL, a connection or a file path, so a storage engine is added by implementing
these (see ``docs/architecture.md``); the default adapters live in :mod:`memory_mcp.adapters` and
:mod:`memory_mcp.compose` wires them. Any object with these methods can be injected instead.

Keys: a store gives every memory version an integer ``key`` (never reused) and every user an
integer ``user_key``; both indexes are keyed by them. Times are epoch seconds (UTC) here, and
``datetime`` in the models.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from .models import Memory, MemoryCategory, MemoryStats, ScopeLevel
from .scope import Position

Vector = npt.NDArray[np.float32]


@dataclass
class MemoryFilter:
    """Which memories a query returns.

    The position (``user_id`` plus optional ``session_id``/``agent_id``/``turn_id``) selects what is
    visible from there: the user's USER memories, that session's SESSION memories, that agent's AGENT
    memories and that turn's TURN memories. With ``all_levels=True`` it selects the whole subtree
    below the position instead (every session, agent and turn of the user), as listings need.
    Without ``as_of``, only current versions (unless ``include_superseded``) that have not expired
    (unless ``include_expired``); with ``as_of``, the versions current and unexpired at that time.
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
    superseded_only: bool = False  # only the versions a newer one replaced (what a fact was before)
    as_of: datetime | float | str | None = None
    entity_refs: Sequence[str] | None = None
    all_levels: bool = False
    limit: int | None = None
    offset: int = 0

    @classmethod
    def at(cls, position: Position, *, all_levels: bool = False) -> MemoryFilter:
        """What is visible from ``position`` or (``all_levels``) what lives at and below it."""
        return cls(
            user_id=position.user_id, session_id=position.session_id, agent_id=position.agent_id,
            turn_id=position.turn_id, all_levels=all_levels,
        )


@dataclass(frozen=True)
class Selection:
    """The memories of one user that a store operation works on: those that any of ``filters``
    selects at time ``now``. Each filter has been checked (``validation.memory_filter``); its
    ``user_id``, ``limit`` and ``offset`` play no part here."""

    user_key: int
    filters: tuple[MemoryFilter, ...]
    now: float


class Stored(NamedTuple):
    """A memory version as a store holds it: its key, its user's key and the memory."""

    key: int
    user_key: int
    memory: Memory


@dataclass(frozen=True)
class NewVersion:
    """A memory version to store. The store derives the chain it belongs to from
    ``memory.supersedes`` (a version of the same user), and indexes ``search_text`` for full text
    (with ``memory.context`` beside it, counting less)."""

    memory: Memory
    user_key: int
    content_hash: str
    search_text: str
    embedding: Vector | None


@dataclass(frozen=True)
class Move:
    """A memory promoted to ``to``; ``origin`` is where it started, given on its first move only."""

    to: Position
    promoted_at: float
    expires_at: float | None
    origin: Position | None = None


class Change(NamedTuple):
    """One entry of the change feed: every write to a memory, in commit order, from any process."""

    seq: int
    user_key: int
    memory_key: int
    memory_id: str
    op: Literal["add", "update", "delete"]
    user_id: str


class ScopeCount(NamedTuple):
    """How many memories a user holds at one position: current ones, versions a newer one
    replaced, and every version stored (the rest of them expired)."""

    session_id: str | None
    agent_id: str | None
    turn_id: str | None
    current: int
    superseded: int
    total: int


class BrokenLink(NamedTuple):
    """A version link that does not hold both ways (found by a consistency check)."""

    memory_id: str
    other_id: str
    kind: Literal["successor_missing", "predecessor_not_closed"]


class VectorFile(NamedTuple):
    """The saved vector index of one user, as recorded beside the memories."""

    user_key: int
    file_name: str
    seq: int  # the last change it contains
    vectors: int
    crc32: int
    size: int
    model: str
    dim: int


@dataclass
class VectorFilter:
    """Restricts a vector search to one user (filters on memories are the store's: see
    ``recall.nearest``, which widens the search until enough neighbours pass them)."""

    user_key: int


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


class TokenVectors(NamedTuple):
    """A text's tokens as the model saw them (its special tokens left out): their ids in the model's
    vocabulary and their contextual vectors, one L2-normalised float32 row per token."""

    ids: npt.NDArray[np.int64]
    vectors: Vector


@runtime_checkable
class TokenEmbedder(Protocol):
    """An embedder that can also give each token's own vector (what reranking compares; see
    :mod:`memory_mcp.memory.rerank`). The local models can; an embedding server cannot."""

    async def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]:
        """One ``TokenVectors`` per text, in order."""
        ...


@runtime_checkable
class VectorIndex(Protocol):
    """Approximate nearest neighbours over memory vectors, partitioned by user.

    An index kept in files may also say, in a ``problem`` attribute, why it cannot write them now
    (it keeps serving from memory meanwhile); the server tells its clients."""

    async def search(self, query: Vector, count: int, flt: VectorFilter) -> list[tuple[int, float]]:
        """Up to ``count`` (memory key, cosine similarity) pairs, best first, within the filter."""
        ...

    async def search_many(self, queries: Vector, count: int, flt: VectorFilter) -> list[list[tuple[int, float]]]:
        """``search`` for each row of ``queries`` (an (n, dimension) array), in one pass where the
        index can."""
        ...

    async def sync(self, user_key: int) -> None:
        """Bring the user's index up to date with the store (changes from any process)."""
        ...

    async def keys(self, user_key: int) -> set[int]:
        """The memory keys in the user's index, brought up to date first."""
        ...

    async def rebuild(self, user_key: int | None = None) -> int:
        """Rebuild one user's index (or every loaded one) from the store; the vectors indexed."""
        ...

    async def save(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class TextIndex(Protocol):
    """Full-text (BM25) search, ranked with statistics of one user's memories only."""

    async def search(
        self, query: str, user_key: int, count: int, within: Selection | None = None
    ) -> list[tuple[int, float]]:
        """Up to ``count`` (memory key, BM25 score) pairs, best first, of memories in ``within``."""
        ...

    async def rebuild(self) -> None: ...

    async def integrity_check(self) -> list[str]:
        """How the index differs from the store; empty when it matches."""
        ...


@runtime_checkable
class MemoryCache(Protocol):
    """A bounded cache of memories by id."""

    def get(self, memory_id: str) -> Memory | None: ...

    def put(self, memory: Memory) -> None: ...

    def invalidate(self, memory_id: str) -> None: ...

    def clear(self) -> None: ...

    def __len__(self) -> int: ...


class StoreReader(Protocol):
    """What can be read from a store within one consistent snapshot."""

    async def get_meta(self, key: str) -> str | None: ...

    async def user_key(self, user_id: str) -> int | None:
        """The user's key, or None if the user has never stored anything."""
        ...

    async def user_keys(self) -> list[int]: ...

    async def get(self, memory_id: str) -> Stored | None:
        """The version with this public id, of any user."""
        ...

    async def by_keys(self, keys: Sequence[int]) -> dict[int, Memory]: ...

    async def contents(self, keys: Sequence[int]) -> dict[int, str]: ...

    async def known_hashes(self, user_key: int, content_hashes: Sequence[str]) -> set[str]:
        """Those of these content hashes that a version of the user has (in any state)."""
        ...

    async def filter_keys(self, keys: Sequence[int], within: Selection) -> set[int]:
        """Which of these keys are in the selection."""
        ...

    async def select(self, within: Selection, *, limit: int | None = None, offset: int = 0) -> list[Memory]:
        """The selected memories, newest first (by creation, then key)."""
        ...

    async def select_keys(self, within: Selection) -> list[int]: ...

    async def same_text(self, within: Selection, content_hash: str) -> Stored | None:
        """The oldest selected memory whose content has this hash."""
        ...

    async def chain_key(self, key: int) -> int:
        """The key every version of this memory's fact shares (its first version's)."""
        ...

    async def chain(self, chain_key: int) -> list[Stored]:
        """Every version of a fact, oldest first (by valid_from, then key)."""
        ...

    async def current_in_chain(self, chain_key: int) -> str | None:
        """The id of the fact's current version, if one is."""
        ...

    async def find_idempotent(self, user_key: int, idempotency_key: str) -> Memory | None:
        """What a first call with this idempotency key stored, if it is still stored."""
        ...

    async def embeddings(self, keys: Sequence[int]) -> dict[int, Vector]:
        """The stored vectors of those of these memories that have one."""
        ...

    async def user_embeddings(self, user_key: int) -> tuple[npt.NDArray[np.uint64], Vector]:
        """Every stored vector of one user: their keys and an (n, dim) matrix."""
        ...

    async def embedded_keys(self, user_key: int) -> set[int]: ...

    async def embedded_count(self, user_key: int) -> int: ...

    async def pending_embeddings(self, limit: int) -> list[tuple[int, str]]:
        """(key, content) of memories stored without a vector, oldest first."""
        ...

    async def count_memories(self) -> int: ...

    async def stats(self, user_key: int | None, now: float) -> MemoryStats:
        """Counts over one user's memories, or every user's with None."""
        ...

    async def broken_links(self) -> list[BrokenLink]: ...

    async def page(self, after_key: int, user_key: int | None, limit: int) -> list[Stored]:
        """Every version (of one user, or all) with a key above ``after_key``, in key order."""
        ...

    async def last_change(self, user_key: int | None = None) -> int: ...

    async def changes_since(self, seq: int, user_key: int | None = None, limit: int | None = None) -> list[Change]:
        """The change feed after ``seq`` in order (the first ``limit`` entries)."""
        ...

    async def user_ids(self, prefix: str, limit: int) -> list[str]:
        """The first ``limit`` user ids starting with ``prefix``, in order."""
        ...

    async def scope_ids(self, user_key: int, column: Literal["session_id", "agent_id"], prefix: str, limit: int) -> list[str]:
        """The first ``limit`` distinct session (or agent) ids of a user's memories starting with ``prefix``."""
        ...

    async def scope_counts(self, user_key: int, now: float, limit: int) -> list[ScopeCount]:
        """The counts of the user's first ``limit`` positions, in order of their ids (the user's
        own memories, with no session, first)."""
        ...

    async def vector_file(self, user_key: int) -> VectorFile | None: ...


class StoreWriter(StoreReader, Protocol):
    """What can be changed in one atomic transaction (which holds the write lock from its start)."""

    async def set_meta(self, key: str, value: str) -> None: ...

    async def ensure_user(self, user_id: str) -> int:
        """The user's key, the user created if new."""
        ...

    async def insert(self, version: NewVersion) -> int:
        """Store a version; returns its key."""
        ...

    async def reinforce(self, key: int, importance: float) -> None:
        """Count one more reinforcement; importance becomes the larger of the two."""
        ...

    async def move(self, key: int, move: Move) -> None: ...

    async def absorb(
        self, keep: int, within: Selection, content_hash: str, similar: Sequence[int], now: float
    ) -> int:
        """Close every selected memory other than ``keep`` with this content hash or among
        ``similar``, pointing at ``keep``, which counts each as a reinforcement; how many."""
        ...

    async def close_version(self, key: int, until: float, successor_id: str) -> bool:
        """Close a current version in favour of its successor; False if it was not current."""
        ...

    async def relink_around(self, stored: Stored, same_chain: bool) -> None:
        """Before a version goes: its predecessor points at its successor, and (``same_chain``)
        its successor back at its predecessor, the chain re-rooted if the first version goes."""
        ...

    async def expire_other_turns(self, user_key: int, session_id: str, turn_id: str, now: float) -> None:
        """Every version of the session's other turns' memories expires now (if not already)."""
        ...

    async def put_idempotent(self, user_key: int, idempotency_key: str, memory_id: str, now: float) -> None: ...

    async def record_recall(self, key: int, position_key: str) -> int:
        """Record that a memory was recalled from a position; how many distinct positions so far."""
        ...

    async def forget_recalls(self, key: int) -> None: ...

    async def delete(self, keys: Sequence[int]) -> int: ...

    async def set_embeddings(self, vectors: Sequence[tuple[int, Vector]]) -> None:
        """Store vectors of memories that have none yet."""
        ...

    async def drop_embeddings(self) -> None:
        """Forget every stored vector and saved index file (before re-embedding with a new model)."""
        ...

    async def record_vector_file(self, record: VectorFile) -> tuple[bool, str | None]:
        """Record a saved index file unless a newer one of the same model is recorded; whether it
        was recorded, and the file it replaces."""
        ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A part of the transaction that is undone alone if it raises."""
        ...


class MemoryStore(Protocol):
    """Durable storage of memories: the single source of truth, vectors included."""

    @property
    def location(self) -> str:
        """Where the memories are, as shown to people (a file path, a database URL)."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[StoreWriter]: ...

    def reading(self) -> AbstractAsyncContextManager[StoreReader]: ...
