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


def test_spawned_writes_are_seen_by_the_next_call_and_survive_close(tmp_path: Path) -> None:
    memory = SyncHierarchicalMemory(MemoryConfig(db_path=tmp_path / "m.db"))
    facts = ["Erin flies kites", "Erin owns a sailboat", "Erin speaks Finnish", "Erin bakes sourdough",
             "Erin collects stamps"]
    for fact in facts:
        memory.spawn(memory.engine.add(fact, user_id="erin"))
    assert len(memory.query(MemoryFilter(user_id="erin"))) == 5  # waited for all five
    memory.spawn(memory.engine.add("Written just before close", user_id="erin"))
    memory.close()
    with SyncHierarchicalMemory(MemoryConfig(db_path=tmp_path / "m.db")) as reopened:
        assert len(reopened.query(MemoryFilter(user_id="erin"))) == 6


def test_a_failed_spawned_write_is_logged_and_later_calls_go_on(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    with SyncHierarchicalMemory(MemoryConfig(db_path=tmp_path / "m.db")) as memory:
        memory.spawn(memory.engine.add("", user_id="erin"))  # empty content: refused
        assert memory.query(MemoryFilter(user_id="erin")) == []
        assert any("background memory write failed" in r.getMessage() for r in caplog.records)
        assert memory.add("Still works", user_id="erin").content == "Still works"
