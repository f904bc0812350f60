"""What the memory browser reads through the engine (both storage engines): the counts per
position of a user, listings of past versions only, search over a user's every level, export
line by line and an import that takes one user's lines only."""

from __future__ import annotations

import json

import anyio
import pytest

from memory_mcp import HierarchicalMemory, MemoryFilter
from memory_mcp.memory.ports import ScopeCount
from memory_mcp.memory.scoring import factors, weigh


async def test_scope_counts_count_current_and_every_version_per_position(memory: HierarchicalMemory) -> None:
    home = await memory.add("Alice lives in Paris", user_id="alice")
    await memory.supersede(home.id, "Alice lives in Lyon")
    await memory.add("Refactoring the auth module", user_id="alice", session_id="s1", category="context")
    await memory.add("The coder prefers pytest", user_id="alice", session_id="s1", agent_id="coder")
    await memory.add("Scratch: compare two libraries", user_id="alice", session_id="s1", turn_id="t1")
    await memory.add("Bob plays the cello", user_id="bob", session_id="s1")
    counts = await memory.scope_counts("alice")
    assert counts == [  # by session, agent, turn; no id before any id
        ScopeCount(None, None, None, current=1, superseded=1, total=2),
        ScopeCount("s1", None, None, current=1, superseded=0, total=1),
        ScopeCount("s1", None, "t1", current=1, superseded=0, total=1),
        ScopeCount("s1", "coder", None, current=1, superseded=0, total=1),
    ]
    assert await memory.scope_counts("nobody") == []
    assert len(await memory.scope_counts("alice", limit=2)) == 2


async def test_superseded_only_lists_the_replaced_versions(memory: HierarchicalMemory) -> None:
    paris = await memory.add("Alice lives in Paris", user_id="alice")
    lyon = await memory.supersede(paris.id, "Alice lives in Lyon")
    await memory.add("Alice plays chess", user_id="alice", session_id="s1")
    past = await memory.query(MemoryFilter(user_id="alice", all_levels=True, superseded_only=True))
    assert [m.id for m in past] == [paris.id]
    current = await memory.query(MemoryFilter(user_id="alice", all_levels=True))
    assert lyon.id in {m.id for m in current} and paris.id not in {m.id for m in current}


async def test_search_over_all_levels_finds_every_session_of_the_user(memory: HierarchicalMemory) -> None:
    await memory.add("The deploy runs on Fridays", user_id="alice", session_id="s1")
    await memory.add("The deploy pipeline uses GitHub Actions", user_id="alice", session_id="s2", agent_id="ops")
    await memory.add("The deploy is Bob's job", user_id="bob")
    from_user = await memory.search("deploy", user_id="alice", mode="hybrid")
    assert from_user == []  # from the user's own position no session memory is visible
    everywhere = await memory.search("deploy", user_id="alice", mode="hybrid", all_levels=True)
    assert {r.memory.session_id for r in everywhere} == {"s1", "s2"}
    assert all(r.memory.user_id == "alice" for r in everywhere)


async def test_export_lines_are_the_lines_of_export_jsonl(memory: HierarchicalMemory) -> None:
    old = await memory.add("Alice lives in Paris", user_id="alice")
    await memory.supersede(old.id, "Alice lives in Lyon")
    await memory.add("Bob plays the cello", user_id="bob")
    lines = [line async for line in memory.export_lines("alice")]
    assert len(lines) == 2 and all(line.endswith("\n") for line in lines)
    assert {json.loads(line)["content"] for line in lines} == {"Alice lives in Paris", "Alice lives in Lyon"}


async def test_an_import_for_one_user_refuses_another_users_lines(memory: HierarchicalMemory) -> None:
    lines = [
        json.dumps({"user_id": "alice", "content": "Alice keeps bees"}),
        json.dumps({"user_id": "bob", "content": "Bob keeps goats"}),
        json.dumps({"content": "Alice sails on weekends"}),
    ]
    report = await memory.import_jsonl(lines, user_id="alice")
    assert report.imported == 2 and [n for n, _ in report.errors] == [2]
    assert "'bob'" in report.errors[0][1] and "not of 'alice'" in report.errors[0][1]
    assert {m.content for m in await memory.get_all("alice")} == {"Alice keeps bees", "Alice sails on weekends"}
    assert await memory.get_all("bob") == []


def test_score_factors_are_what_weigh_multiplies_by() -> None:
    weights = dict(importance_weight=0.3, recency_weight=0.1, half_life_days=30.0)
    by_importance, by_recency = factors(importance=0.5, age_days=30.0, **weights)
    assert by_importance == (1 + 0.3 * 0.5) / 1.3 and by_recency == (1 + 0.1 * 0.5) / 1.1
    assert abs(weigh(0.8, importance=0.5, age_days=30.0, **weights) - 0.8 * by_importance * by_recency) < 1e-12
    assert factors(importance=1.0, age_days=0.0, **weights) == (1.0, 1.0)


@pytest.mark.sqlite_only
async def test_a_read_cancelled_on_its_way_leaves_no_transaction_open(memory: HierarchicalMemory) -> None:
    """A browser that goes away cancels its stream's every await (anyio), the BEGIN of a read
    included: the database must stay usable."""
    for _ in range(5):
        with anyio.move_on_after(0):
            await memory.get_all("alice")
    await memory.add("Alice is still remembered", user_id="alice")
    assert [m.content for m in await memory.get_all("alice")] == ["Alice is still remembered"]
