"""Shared fixtures: a real SQLite file in a temp dir, the real usearch index, the real MiniLM model (the default ONNX runtime).

The model is loaded once per test session and injected into every engine (loading it takes a
fraction of a second, but each engine would load its own copy); everything else is fresh per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from memory_mcp import HierarchicalMemory, MemoryConfig
from memory_mcp.adapters.onnx_embedder import OnnxEmbedder


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


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memory.db"


@pytest.fixture
def open_memory(
    db_path: Path, embedder: OnnxEmbedder
) -> Callable[..., Any]:
    """Open an engine on the test's database (more than once if a test needs to reopen it)."""

    async def _open(**settings: Any) -> HierarchicalMemory:
        config = MemoryConfig(db_path=settings.pop("db_path", db_path), **settings)
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
    "test_contention_and_load.py", "test_crash_recovery.py", "test_server_auth.py",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
