"""LRUMemoryCache: the most recently used memories by id, bounded in count."""

from __future__ import annotations

from collections import OrderedDict

from ..memory.models import Memory


class LRUMemoryCache:
    def __init__(self, max_size: int = 1000):
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._items: OrderedDict[str, Memory] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, memory_id: str) -> Memory | None:
        memory = self._items.get(memory_id)
        if memory is None:
            self.misses += 1
            return None
        self._items.move_to_end(memory_id)
        self.hits += 1
        return memory

    def put(self, memory: Memory) -> None:
        self._items[memory.id] = memory
        self._items.move_to_end(memory.id)
        while len(self._items) > self.max_size:
            self._items.popitem(last=False)

    def invalidate(self, memory_id: str) -> None:
        self._items.pop(memory_id, None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
