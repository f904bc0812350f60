"""The change feed and the ids in use, through the engine (both storage engines): what live
updates and completions are built on. Writes by a second engine on the same database stand for
another process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from memory_mcp import HierarchicalMemory, InvalidArgumentError, MemoryChange


async def test_every_write_enters_the_feed_with_its_user_and_memory(memory: HierarchicalMemory) -> None:
    start = await memory.last_change()
    tea = await memory.add("Alice drinks green tea", user_id="alice")
    coffee = await memory.supersede(tea.id, "Alice drinks black coffee", user_id="alice")
    bob = await memory.add("Bob plays chess", user_id="bob")
    await memory.delete(bob.id, user_id="bob")
    feed = await memory.changes_since(start)
    assert all(isinstance(c, MemoryChange) for c in feed)
    assert [c.seq for c in feed] == sorted(c.seq for c in feed) and feed[-1].seq == await memory.last_change()
    touched = {(c.user_id, c.memory_id) for c in feed}
    assert {("alice", tea.id), ("alice", coffee.id), ("bob", bob.id)} <= touched
    assert ("bob", bob.id, "delete") in {(c.user_id, c.memory_id, c.op) for c in feed}
    assert ("alice", tea.id, "update") in {(c.user_id, c.memory_id, c.op) for c in feed}  # closed by supersede
    assert await memory.changes_since(await memory.last_change()) == []
    assert len(await memory.changes_since(start, limit=2)) == 2


async def test_watch_sees_a_write_by_another_engine_on_the_same_database(
    open_memory: Callable[..., Any],
) -> None:
    watcher, writer = await open_memory(), await open_memory()
    try:
        feed = watcher.watch(interval_s=0.05)
        first = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(0.2)  # the watch starts from now: nothing yet
        assert not first.done()
        stored = await writer.add("Alice keeps bees", user_id="alice")
        batch = await asyncio.wait_for(first, 30)
        assert (batch[0].user_id, batch[0].memory_id, batch[0].op) == ("alice", stored.id, "add")
        await feed.aclose()
    finally:
        await writer.close()
        await watcher.close()


async def test_the_ids_in_use_start_with_the_prefix_in_order(memory: HierarchicalMemory) -> None:
    for user, session, agent in [("alice", "trip-oslo", "planner"), ("alice", "trip-rome", "coder"),
                                 ("alice", "work", None), ("alfred", "gym", "coach"), ("bob", None, "x")]:
        await memory.add(f"{user} was at {session} with {agent}", user_id=user, session_id=session, agent_id=agent)
    assert await memory.user_ids() == ["alfred", "alice", "bob"]
    assert await memory.user_ids("al") == ["alfred", "alice"]
    assert await memory.user_ids("Al") == []  # ids are exact, case included
    assert await memory.user_ids("", limit=1) == ["alfred"]
    assert await memory.session_ids("alice") == ["trip-oslo", "trip-rome", "work"]
    assert await memory.session_ids("alice", "trip-r") == ["trip-rome"]
    assert await memory.agent_ids("alice") == ["coder", "planner"]
    assert await memory.agent_ids("alfred") == ["coach"]
    assert await memory.session_ids("nobody") == []
    assert await memory.user_ids("50%_") == []  # no wildcards: a prefix is text


@pytest.mark.parametrize("call", [
    lambda m: m.user_ids(3), lambda m: m.user_ids("a", limit=0), lambda m: m.user_ids("a", limit=101),
    lambda m: m.session_ids("", "a"), lambda m: m.agent_ids("alice", "\ud800"), lambda m: m.changes_since(-1),
])
async def test_bad_arguments_are_named(memory: HierarchicalMemory, call: Callable[..., Any]) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        await call(memory)
    assert any(name in str(refused.value) for name in ("prefix", "limit", "user_id", "seq"))
