"""add_many: a batch stores what the same items added one at a time would store.

Fresh items (most of a bulk import) are inserted together; an item that repeats something, has an
idempotency key, belongs to a turn or climbs above where it is said goes through ``add`` in its
turn. These tests compare the two on workloads that mix every kind, across batch boundaries and
users, on both storage engines, with the real model deciding what is a near twin.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memory_mcp import HierarchicalMemory, MemoryFilter
from memory_mcp.errors import EmptyContentError, InvalidImportanceError

FACTS = [
    "The user's gym locker code is {n}",
    "The user likes to drink green tea",
    "The deploy to production happens on Fridays",
    "Bob moved to the Berlin office in {n}",
    "The user is allergic to peanuts",
    "Sarah leads the Apollo project",
    "The team standup is at {n} o'clock",
    "The user drives a blue Volvo",
]
PARAPHRASES = {  # near twins (cosine above 0.97 with the model) naming the same numbers and names
    "The user is allergic to peanuts": "The user is allergic to peanuts.",
    "The user likes to drink green tea": "The user likes drinking green tea",
    "Sarah leads the Apollo project": "Sarah is the lead of the Apollo project",
    "The user drives a blue Volvo": "the user drives a blue Volvo",  # the same text up to case
}


def workload(seed: int, n: int) -> list[dict[str, Any]]:
    """Items of two users mixing new facts, exact and near repeats, numbers that differ, turns,
    idempotency keys and important facts that climb to the user."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    for i in range(n):
        fact = rng.choice(FACTS).format(n=rng.choice([7, 9, 4821, 9034, 2019]))
        roll = rng.random()
        if roll < 0.3 and fact in PARAPHRASES:
            fact = PARAPHRASES[fact]
        elif roll < 0.45:
            fact = f"{fact} (note {i})"  # new and near: its own number makes it a different fact
        item: dict[str, Any] = {"content": fact, "user_id": rng.choice(["ann", "ann", "ben"])}
        if rng.random() < 0.3:
            item["session_id"] = rng.choice(["s1", "s2"])
            if rng.random() < 0.3:
                item["agent_id"] = "a1"
                if rng.random() < 0.3:
                    item["turn_id"] = rng.choice(["t1", "t2"])
        if rng.random() < 0.15:
            item["importance"] = rng.choice([0.65, 0.85, 0.95])
        if rng.random() < 0.1:
            item["idempotency_key"] = f"k{rng.randrange(5)}"
        if rng.random() < 0.1:
            item["context"] = "said over lunch"
        items.append(item)
    return items


async def state(memory: HierarchicalMemory) -> list[tuple[Any, ...]]:
    """Every version of every user, without ids and times."""
    rows = []
    for user in ("ann", "ben"):
        for m in await memory.query(MemoryFilter(
            user_id=user, all_levels=True, include_superseded=True, include_expired=True,
        )):
            rows.append((
                m.user_id, m.content, m.session_id, m.agent_id, m.turn_id, m.scope_level.value, m.importance,
                m.reinforcement_count, m.valid_until is None, m.superseded_by is not None, m.context,
                m.origin_level.value if m.origin_level else None, m.expires_at is None,
            ))
    return sorted(rows, key=repr)


@pytest.mark.parametrize(("seed", "batch_size"), [(1, 256), (2, 7), (3, 1)])
async def test_a_batch_stores_what_one_add_at_a_time_stores(
    open_memory: Callable[..., Any], tmp_path: Path, seed: int, batch_size: int
) -> None:
    items = workload(seed, 120)
    one_by_one = await open_memory(db_path=tmp_path / "one.db")
    batched = await open_memory(db_path=tmp_path / "batch.db")
    try:
        singly = [await one_by_one.add(**item) for item in items]
        together = await batched.add_many(items, batch_size=batch_size)
        # Each item answers with the memory it became or reinforced, as add does.
        assert [m.content for m in together] == [m.content for m in singly]
        expected = await state(one_by_one)
        assert await state(batched) == expected
        # The workload is not trivially fresh: repeats were reinforced, and some facts climbed.
        assert any(row[7] > 0 for row in expected) and any(row[11] for row in expected)
    finally:
        await one_by_one.close()
        await batched.close()


async def test_a_batch_is_recalled_like_single_adds(memory: HierarchicalMemory) -> None:
    stored = await memory.add_many([
        {"content": f"Project {name} ships in {month}", "user_id": "ann"}
        for name, month in [("Apollo", "March"), ("Hermes", "June"), ("Zeus", "October")]
    ])
    assert len({m.id for m in stored}) == 3
    found = await memory.recall("when does Hermes ship?", user_id="ann", top_k=1)
    assert found[0].memory.id == stored[1].id
    again = await memory.add_many([{"content": "Project Hermes ships in June", "user_id": "ann"}])
    assert again[0].id == stored[1].id and again[0].reinforcement_count == 1


async def test_an_invalid_item_is_named_and_nothing_is_stored(memory: HierarchicalMemory) -> None:
    items = [{"content": f"fact {i}", "user_id": "ann"} for i in range(5)]
    with pytest.raises(EmptyContentError, match="item 3"):
        await memory.add_many([*items[:3], {"content": "  ", "user_id": "ann"}, items[4]])
    with pytest.raises(InvalidImportanceError, match="item 1"):
        await memory.add_many([items[0], {**items[1], "importance": 7}])
    assert await memory.get_all(user_id="ann") == []


async def test_items_whose_keys_were_used_are_answered_without_embedding_again(
    memory: HierarchicalMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = [{"content": f"ann: the tomatoes in bed {i} need water", "user_id": "ann", "idempotency_key": f"t{i}"}
             for i in range(6)]
    first = await memory.add_many(turns, batch_size=4)
    embedded: list[str] = []
    embed = memory.embedder.embed

    async def counting(texts: list[str]) -> Any:
        embedded.extend(texts)
        return await embed(texts)

    monkeypatch.setattr(memory.embedder, "embed", counting)
    new = {"content": "ann: the basil is ready", "user_id": "ann", "idempotency_key": "t6"}
    again = await memory.add_many([*turns, new], batch_size=4)
    assert embedded == [new["content"]]  # the six known keys were looked up, not embedded
    assert [m.id for m in again[:6]] == [m.id for m in first] and again[6].content == new["content"]
    assert (await memory.stats("ann")).total == 7
    assert await memory.used_keys("ann", ["t0", "t6", "t9"]) == {"t0": first[0], "t6": again[6]}


async def test_a_key_repeated_within_a_batch_stores_once(memory: HierarchicalMemory) -> None:
    stored = await memory.add_many([
        {"content": "Ann waters the roses on Sundays", "user_id": "ann", "idempotency_key": "k"},
        {"content": "Ann prunes the apple tree in March", "user_id": "ann", "idempotency_key": "k"},
        {"content": "Ann prunes the apple tree in March", "user_id": "ann"},
    ])
    assert stored[0].id == stored[1].id and stored[2].id != stored[0].id
    assert [m.content for m in stored] == ["Ann waters the roses on Sundays"] * 2 + ["Ann prunes the apple tree in March"]
    assert (await memory.stats("ann")).total == 2
