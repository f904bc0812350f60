"""Shared fixtures: a real SQLite file in a temp dir, the real usearch index, the real MiniLM model (the default ONNX runtime).

The model is loaded once per test session and injected into every engine (loading it takes a
fraction of a second, but each engine would load its own copy); everything else is fresh per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pg import PostgresForTests

from memory_mcp import HierarchicalMemory, MemoryConfig
from memory_mcp.adapters.onnx_embedder import OnnxEmbedder
from memory_mcp.memory.models import SearchResult
from memory_mcp.memory.scoring import factors, score_fusion


@pytest.fixture(scope="session")
async def embedder() -> AsyncIterator[OnnxEmbedder]:
    model = OnnxEmbedder()
    await model.warm_up()
    yield model


class _SharedEmbedder:
    """The session's embedder, which an engine's close() must not unload."""

    def __init__(self, inner: OnnxEmbedder):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def aclose(self) -> None:
        pass


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresForTests]:
    """The session's private PostgreSQL server (started on first use)."""
    server = PostgresForTests(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


@pytest.fixture
async def pg_url(postgres: PostgresForTests) -> AsyncIterator[str]:
    """A fresh PostgreSQL database with the schema in place, dropped after the test."""
    url = await postgres.new_database()
    yield url
    await postgres.drop(url)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memory.db"


# The engine suite runs on both storage engines: every test that takes ``memory`` or
# ``open_memory`` runs once on a SQLite file and once on a PostgreSQL database. A test about one
# engine's own files or settings is marked ``sqlite_only`` (it then runs on SQLite alone).
ENGINES = ("sqlite", "postgres")


@pytest.fixture(params=ENGINES)
def storage_engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_for(storage_engine: str, request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    """``await database_for(path)``: the settings of the database a test calls ``path``: that
    SQLite file, or on PostgreSQL a fresh database of its own for each path (dropped afterwards)."""
    databases: dict[Path, str] = {}
    server: PostgresForTests | None = None
    if storage_engine == "postgres":
        server = request.getfixturevalue("postgres")

    async def _settings(path: Path) -> dict[str, Any]:
        if server is None:
            return {"db_path": Path(path)}
        if Path(path) not in databases:
            databases[Path(path)] = await server.new_database()
        return {"database_url": databases[Path(path)]}

    yield _settings
    if server is not None:
        for url in databases.values():
            await server.drop(url)


@pytest.fixture
def open_memory(db_path: Path, embedder: OnnxEmbedder, database_for: Callable[..., Any]) -> Callable[..., Any]:
    """Open an engine on the test's database (more than once if a test needs to reopen it).
    ``db_path=`` names another database (on PostgreSQL, a database of its own)."""

    async def _open(**settings: Any) -> HierarchicalMemory:
        where = await database_for(settings.pop("db_path", db_path))
        config = MemoryConfig(**where, **settings)
        return await HierarchicalMemory.create(config, embedder=_SharedEmbedder(embedder))  # type: ignore[arg-type]

    return _open


@pytest.fixture
async def memory(open_memory: Callable[..., Any]) -> AsyncIterator[HierarchicalMemory]:
    engine = await open_memory()
    yield engine
    await engine.close()


# Whole files that start server processes, drive other programs or run long randomized workloads:
# `pytest -m "not slow"` leaves them out while iterating (CI runs everything).
SLOW_FILES = {
    "test_inspector_cli.py", "test_server_transports.py", "test_isolation_random.py", "test_stateful_rules.py",
    "test_contention_and_load.py", "test_crash_recovery.py", "test_server_auth.py", "test_postgres_servers.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
        params = getattr(item, "callspec", None)
        on_postgres = params is not None and params.params.get("storage_engine") == "postgres"
        (dropped if on_postgres and item.get_closest_marker("sqlite_only") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def weighed_scores(results: Sequence[SearchResult], config: MemoryConfig, now: datetime) -> dict[str, float]:
    """Each hybrid result's score before the stages after weighing (named time, rerank, the
    conversation), computed again by the documented formulas from the result's own two matches,
    importance and age: the fused score times the importance and recency factors. By memory id."""
    fused = score_fusion({r.id: r.similarity for r in results if r.similarity is not None},
                         {r.id: r.text_score for r in results if r.text_score is not None}, config.text_weight)
    weighed = {}
    for r in results:
        by_importance, by_recency = factors(
            importance=r.memory.importance, age_days=(now - r.memory.valid_from).total_seconds() / 86400,
            importance_weight=config.importance_weight, recency_weight=config.recency_weight,
            half_life_days=config.recency_half_life_days)
        weighed[r.id] = fused[r.id] * by_importance * by_recency
    return weighed
