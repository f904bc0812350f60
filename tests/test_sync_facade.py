"""The synchronous facade drives the same engine from plain (and from async) code."""

from __future__ import annotations

import asyncio
from pathlib import Path

from memory_mcp import MemoryConfig, MemoryFilter, SyncHierarchicalMemory


def test_sync_facade_adds_supersedes_and_recalls(tmp_path: Path) -> None:
    with SyncHierarchicalMemory(MemoryConfig(db_path=tmp_path / "m.db")) as memory:
        old = memory.add("User lives in Paris", user_id="carol")
        new = memory.supersede(old.id, "User lives in Lyon")
        assert [m.content for m in memory.query(MemoryFilter(user_id="carol"))] == ["User lives in Lyon"]
        assert [m.id for m in memory.get_history(new.id)] == [old.id, new.id]
        assert memory.recall("which city does the user live in?", user_id="carol")[0].memory.id == new.id


async def test_sync_facade_works_inside_a_running_event_loop(tmp_path: Path) -> None:
    memory = SyncHierarchicalMemory(MemoryConfig(db_path=tmp_path / "m.db"))
    try:
        assert asyncio.get_running_loop() is not None
        stored = memory.add("Prefers tea over coffee", user_id="dan")
        assert memory.get(stored.id).content == "Prefers tea over coffee"
    finally:
        memory.close()
