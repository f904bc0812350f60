"""``client.memory``: direct access to the wrapped client's memories, at the wrapper's position.

The same methods serve both kinds of client: on a sync client they return results, on an async
client (``AsyncOpenAI``) they return awaitables, so ``await client.memory.search(...)`` works there.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ..errors import InvalidArgumentError
from ..memory.engine import HierarchicalMemory
from ..memory.models import Memory, MemoryCategory, MemoryStats, SearchResult
from ..memory.ports import MemoryFilter
from .steps import Position, ids

Runner = Callable[[Coroutine[Any, Any, Any]], Any]


class MemoryAPI:
    """Search, add, list, clear, count, supersede and trace the memories of one wrapper."""

    def __init__(self, engine: HierarchicalMemory, at: Position, run: Runner) -> None:
        self._engine = engine
        self._at = at
        self._run = run

    @property
    def user_id(self) -> str:
        return self._at.user_id

    def search(
        self, query: str, top_k: int = 5, *, mode: str = "hybrid", min_similarity: float = 0.0,
        categories: Sequence[MemoryCategory | str] | None = None,
    ) -> list[SearchResult]:
        """Memories visible to this wrapper that match ``query``, best first."""
        return self._run(self._engine.recall(
            query, **ids(self._at), top_k=top_k, mode=mode, min_similarity=min_similarity, categories=categories,
        ))

    def add(
        self, content: str, category: MemoryCategory | str = MemoryCategory.FACT, importance: float = 0.5, *,
        scope: str = "user", entity_refs: Sequence[str] | None = None, metadata: dict[str, Any] | None = None,
    ) -> Memory:
        """Remember ``content`` for this user (``scope="session"`` or ``"agent"`` to keep it narrower)."""
        where = {"user": ("user_id",), "session": ("user_id", "session_id"),
                 "agent": ("user_id", "session_id", "agent_id")}
        if scope not in where:
            raise InvalidArgumentError(f"scope must be one of {list(where)}, got {scope!r}")
        kept = {name: value for name, value in ids(self._at).items() if name in where[scope]}
        return self._run(self._engine.add(
            content, **kept, category=category, importance=importance, entity_refs=entity_refs, metadata=metadata,
            provenance={"source": "with_memory.memory.add"},
        ))

    def get_all(self, *, include_superseded: bool = False) -> list[Memory]:
        """Every memory visible to this wrapper: the user's, and this session's and agent's."""
        return self._run(self._engine.query(MemoryFilter(**ids(self._at), include_superseded=include_superseded)))

    def clear(self, *, all_sessions: bool = False) -> int:
        """Delete this wrapper's memories: its session's (and agent's) when it has a session_id,
        else all of the user's. ``all_sessions=True`` deletes all of the user's memories."""
        scope = {"user_id": self._at.user_id} if all_sessions else ids(self._at)
        return self._run(self._engine.clear(**scope))

    def stats(self) -> MemoryStats:
        """Counts over this user's memories (``stats['total']``, ``stats['categories']``)."""
        return self._run(self._engine.stats(self._at.user_id))

    def supersede(self, memory_id: str, new_content: str, **changes: Any) -> Memory:
        """Replace one of this user's memories by a new version; the old one stays in its history."""
        return self._run(self._engine.supersede(memory_id, new_content, user_id=self._at.user_id, **changes))

    def history(self, memory_id: str) -> list[Memory]:
        """Every version of that memory's fact, oldest first."""
        return self._run(self._engine.get_history(memory_id, user_id=self._at.user_id))
