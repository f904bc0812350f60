"""A recall made while the embedding model loads in the background (the server's mode) waits for it,
briefly: the model loads in well under a second, so the answer is semantic. Only a model that is slow
or failed leaves recall to full text alone, and the engine says which."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import _SharedEmbedder

from memory_mcp import HierarchicalMemory, MemoryConfig


class _SlowToLoad:
    """The session's real model, whose loading takes ``load_s`` (or fails with ``error``)."""

    def __init__(self, inner: Any, load_s: float, error: Exception | None = None):
        self._inner, self._load_s, self._error = inner, load_s, error
        self._loaded = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def is_ready(self) -> bool:
        return self._loaded

    async def warm_up(self) -> None:
        await asyncio.sleep(self._load_s)
        if self._error is not None:
            raise self._error
        self._loaded = True

    async def embed(self, texts: Any) -> Any:
        assert self._loaded, "embed() before the model loaded"
        return await self._inner.embed(texts)

    async def aclose(self) -> None:
        pass


async def _stored_then_recalled(
    db: Path, ready: Any, embedder: Any, **config: Any
) -> tuple[Any, float, HierarchicalMemory]:
    # The memory is stored first, in a database whose model is ready, so that it has a vector.
    async with await HierarchicalMemory.create(MemoryConfig(db_path=db), embedder=_SharedEmbedder(ready)) as m:
        await m.add("Allergic to peanuts", user_id="u")
    engine = await HierarchicalMemory.create(
        MemoryConfig(db_path=db, background_embedding=True, **config), embedder=embedder
    )
    start = time.perf_counter()
    results = await engine.recall("food intolerance", user_id="u")
    return results, time.perf_counter() - start, engine


async def test_a_recall_made_while_the_model_loads_waits_for_it_and_answers_semantically(
    tmp_path: Path, embedder: Any
) -> None:
    results, _, engine = await _stored_then_recalled(tmp_path / "m.db", embedder, _SlowToLoad(embedder, 0.5))
    try:
        assert engine.semantic_ready and engine.semantic_status == "ready"
        assert [r.content for r in results] == ["Allergic to peanuts"]  # no word in common: found by meaning
        assert results[0].similarity is not None
    finally:
        await engine.close()


async def test_a_model_slower_than_the_wait_leaves_recall_to_full_text_after_the_wait(
    tmp_path: Path, embedder: Any
) -> None:
    results, elapsed, engine = await _stored_then_recalled(
        tmp_path / "m.db", embedder, _SlowToLoad(embedder, 30), semantic_wait_s=0.3
    )
    try:
        assert 0.25 <= elapsed < 5
        assert not engine.semantic_ready and engine.semantic_status == "loading"
        assert results == []  # full text alone shares no word with the memory
    finally:
        await engine.close()


async def test_a_model_that_failed_to_load_is_said_so_and_recall_answers_from_full_text(
    tmp_path: Path, embedder: Any
) -> None:
    broken = _SlowToLoad(embedder, 0.05, error=RuntimeError("model file unreadable"))
    results, elapsed, engine = await _stored_then_recalled(tmp_path / "m.db", embedder, broken)
    try:
        assert elapsed < 5
        assert engine.semantic_status == "failed: model file unreadable"
        found = await engine.recall("peanuts", user_id="u")
        assert [r.content for r in found] == ["Allergic to peanuts"] and found[0].similarity is None
    finally:
        with pytest.raises(RuntimeError):  # why loading failed, as wait_until_ready reports it
            await engine.wait_until_ready()
        await engine.close()
