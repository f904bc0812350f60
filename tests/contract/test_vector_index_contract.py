"""The VectorIndex contract: nearest vectors by cosine, one user's only, always caught up with the
store (whichever process wrote to it), and saved so that a new index need not rebuild."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from memory_mcp.memory.ports import MemoryStore, Stored, VectorFilter, VectorIndex

Add = Callable[..., Awaitable[Stored]]

E = np.eye(8, dtype=np.float32)  # e0..e7: orthogonal unit vectors
BETWEEN_0_AND_1 = (E[0] + E[1]) / np.sqrt(np.float32(2))  # cosine 0.707 to both


def close_to(value: float) -> object:
    return pytest.approx(value, abs=2e-3)  # an index may keep its vectors in half precision


async def test_search_returns_the_users_nearest_vectors_best_first(
    vector_index: VectorIndex, add: Add
) -> None:
    e0 = await add("alice", "e0", embedding=E[0])
    between = await add("alice", "between", embedding=BETWEEN_0_AND_1)
    e1 = await add("alice", "e1", embedding=E[1])
    opposite = await add("alice", "-e0", embedding=-E[0])
    found = await vector_index.search(E[0], 10, VectorFilter(user_key=e0.user_key))
    assert [key for key, _ in found] == [e0.key, between.key, e1.key, opposite.key]
    assert [score for _, score in found] == [close_to(1.0), close_to(0.7071), close_to(0.0), close_to(-1.0)]
    assert await vector_index.search(E[0], 2, VectorFilter(user_key=e0.user_key)) == found[:2]
    scaled = await vector_index.search(3 * E[0], 10, VectorFilter(user_key=e0.user_key))  # cosine: any length
    assert [key for key, _ in scaled] == [key for key, _ in found]


async def test_another_users_vectors_never_appear(vector_index: VectorIndex, add: Add) -> None:
    alice = [await add("alice", f"a{i}", embedding=E[i + 1]) for i in range(3)]
    bob = await add("bob", "the very query", embedding=E[0])
    found = await vector_index.search(E[0], 10, VectorFilter(user_key=alice[0].user_key))
    assert {key for key, _ in found} == {s.key for s in alice}
    found = await vector_index.search(E[1], 10, VectorFilter(user_key=bob.user_key))
    assert [key for key, _ in found] == [bob.key]


async def test_nothing_is_found_without_vectors_or_with_a_count_of_zero(
    vector_index: VectorIndex, store: MemoryStore, add: Add
) -> None:
    stored = await add("alice", "e0", embedding=E[0])
    async with store.transaction() as db:
        newcomer = await db.ensure_user("newcomer")
    assert await vector_index.search(E[0], 10, VectorFilter(user_key=newcomer)) == []
    assert await vector_index.search(E[0], 0, VectorFilter(user_key=stored.user_key)) == []


async def test_the_index_follows_inserts_deletes_and_late_vectors(
    vector_index: VectorIndex, store: MemoryStore, add: Add
) -> None:
    first = await add("alice", "first", embedding=E[0])
    user_key = first.user_key
    assert await vector_index.keys(user_key) == {first.key}
    second = await add("alice", "second", embedding=E[1])
    pending = await add("alice", "embedded later", embedding=None)
    await vector_index.sync(user_key)
    assert await vector_index.keys(user_key) == {first.key, second.key}
    async with store.transaction() as db:
        await db.delete([first.key])
        await db.set_embeddings([(pending.key, E[2])])
    assert await vector_index.keys(user_key) == {second.key, pending.key}
    found = await vector_index.search(E[2], 1, VectorFilter(user_key=user_key))
    assert found == [(pending.key, close_to(1.0))]


async def test_dropped_vectors_leave_the_index(
    vector_index: VectorIndex, store: MemoryStore, add: Add
) -> None:
    stored = [await add("alice", f"e{i}", embedding=E[i]) for i in range(3)]
    user_key = stored[0].user_key
    assert len(await vector_index.keys(user_key)) == 3
    async with store.transaction() as db:
        await db.drop_embeddings()
    assert await vector_index.keys(user_key) == set()
    assert await vector_index.search(E[0], 10, VectorFilter(user_key=user_key)) == []


async def test_the_index_follows_writes_made_through_another_store(
    vector_index: VectorIndex, open_store: Callable[[], Awaitable[MemoryStore]], add: Add
) -> None:
    here = await add("alice", "here", embedding=E[0])
    assert await vector_index.keys(here.user_key) == {here.key}  # loaded before the other writes
    other = await open_store()
    there = await add("alice", "there", embedding=E[1], into=other)
    assert await vector_index.keys(here.user_key) == {here.key, there.key}
    assert (await vector_index.search(E[1], 1, VectorFilter(user_key=here.user_key)))[0][0] == there.key
    async with other.transaction() as db:
        await db.delete([here.key])
    assert await vector_index.keys(here.user_key) == {there.key}


async def test_rebuilding_indexes_every_stored_vector(vector_index: VectorIndex, add: Add) -> None:
    alice = [await add("alice", f"a{i}", embedding=E[i]) for i in range(3)]
    await add("alice", "no vector", embedding=None)
    bob = await add("bob", "b", embedding=E[0])
    assert await vector_index.rebuild(alice[0].user_key) == 3
    assert await vector_index.keys(alice[0].user_key) == {s.key for s in alice}
    await vector_index.sync(bob.user_key)
    assert await vector_index.rebuild() == 4  # every loaded user's
    found = await vector_index.search(E[1], 1, VectorFilter(user_key=alice[0].user_key))
    assert found == [(alice[1].key, close_to(1.0))]


async def test_a_saved_index_is_loaded_again_without_rebuilding(
    make_vector_index: Callable[..., VectorIndex], add: Add
) -> None:
    stored = [await add("alice", f"a{i}", embedding=E[i]) for i in range(4)]
    user_key = stored[0].user_key
    first = make_vector_index()
    before = await first.search(BETWEEN_0_AND_1, 10, VectorFilter(user_key=user_key))
    await first.save()
    await first.close()
    later = await add("alice", "written while no index was open", embedding=E[5])

    second = make_vector_index()
    after = await second.search(BETWEEN_0_AND_1, 10, VectorFilter(user_key=user_key))
    assert [k for k, _ in after if k != later.key] == [k for k, _ in before]
    assert [s for k, s in after if k != later.key] == pytest.approx([s for _, s in before], abs=1e-6)
    assert await second.keys(user_key) == {s.key for s in stored} | {later.key}
    if hasattr(second, "rebuilds"):
        assert second.rebuilds == 0



async def test_indexes_over_two_stores_keep_one_saved_file_a_third_loads(
    make_vector_index: Callable[..., VectorIndex], open_store: Callable[[], Awaitable[MemoryStore]], add: Add
) -> None:
    other = await open_store()
    mine, theirs = make_vector_index(), make_vector_index(other)
    here = await add("alice", "here", embedding=E[0])
    user_key = here.user_key
    assert await mine.keys(user_key) == {here.key}
    there = await add("alice", "there", embedding=E[1], into=other)
    assert await theirs.keys(user_key) == await mine.keys(user_key) == {here.key, there.key}
    await mine.close()
    await theirs.close()

    third = make_vector_index()
    assert await third.keys(user_key) == {here.key, there.key}
    assert (await third.search(E[1], 1, VectorFilter(user_key=user_key)))[0][0] == there.key
    if hasattr(third, "rebuilds"):
        assert third.rebuilds == 0
