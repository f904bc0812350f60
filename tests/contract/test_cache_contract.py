"""The MemoryCache contract: memories by id, bounded, the least recently used evicted first."""

from __future__ import annotations

from collections.abc import Callable

from memory_mcp.memory.models import Memory
from memory_mcp.memory.ports import MemoryCache, NewVersion


def memories(new_version: Callable[..., NewVersion], *contents: str) -> list[Memory]:
    return [new_version(1, "alice", content).memory for content in contents]


async def test_a_memory_put_is_got_back_by_its_id(
    cache: MemoryCache, new_version: Callable[..., NewVersion]
) -> None:
    a, b = memories(new_version, "a", "b")
    assert isinstance(cache, MemoryCache)
    assert cache.get(a.id) is None
    cache.put(a)
    cache.put(b)
    assert (cache.get(a.id), cache.get(b.id), len(cache)) == (a, b, 2)


async def test_putting_a_memory_again_replaces_it(
    cache: MemoryCache, new_version: Callable[..., NewVersion]
) -> None:
    (a,) = memories(new_version, "a")
    reinforced = a.model_copy(update={"reinforcement_count": 1})
    cache.put(a)
    cache.put(reinforced)
    assert (cache.get(a.id), len(cache)) == (reinforced, 1)


async def test_an_invalidated_memory_is_gone(
    cache: MemoryCache, new_version: Callable[..., NewVersion]
) -> None:
    a, b = memories(new_version, "a", "b")
    cache.put(a)
    cache.put(b)
    cache.invalidate(a.id)
    cache.invalidate("never cached")
    assert (cache.get(a.id), cache.get(b.id), len(cache)) == (None, b, 1)


async def test_clearing_empties_the_cache(cache: MemoryCache, new_version: Callable[..., NewVersion]) -> None:
    stored = memories(new_version, "a", "b", "c")
    for memory in stored:
        cache.put(memory)
    cache.clear()
    assert len(cache) == 0
    assert [cache.get(m.id) for m in stored] == [None] * 3


async def test_a_full_cache_evicts_the_least_recently_used(
    make_cache: Callable[[int], MemoryCache], new_version: Callable[..., NewVersion]
) -> None:
    cache = make_cache(3)
    a, b, c, d, e = memories(new_version, "a", "b", "c", "d", "e")
    for memory in (a, b, c):
        cache.put(memory)
    assert cache.get(a.id) == a  # now b is the least recently used
    cache.put(d)
    assert len(cache) == 3
    assert cache.get(b.id) is None
    assert (cache.get(a.id), cache.get(c.id), cache.get(d.id)) == (a, c, d)
    cache.put(c)  # putting counts as a use as well: a goes next
    cache.put(e)
    assert [cache.get(m.id) for m in (a, c, d, e)] == [None, c, d, e]
