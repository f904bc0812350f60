"""The data memory_mcp stores and returns."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class MemoryCategory(StrEnum):
    """What kind of thing a memory records."""

    PREFERENCE = "preference"  # likes, dislikes, preferred approaches
    FACT = "fact"  # identity, role, constraints
    CONTEXT = "context"  # current goals, ongoing tasks
    ENTITY = "entity"  # information about people, projects, things
    DECISION = "decision"  # decisions made
    INSIGHT = "insight"  # derived insights


class ScopeLevel(StrEnum):
    """How widely a memory is visible, broadest first."""

    USER = "user"
    SESSION = "session"
    AGENT = "agent"
    TURN = "turn"

    @property
    def depth(self) -> int:
        return _DEPTH[self]

    @classmethod
    def of(cls, session_id: str | None, agent_id: str | None, turn_id: str | None) -> ScopeLevel:
        """The narrowest level among the ids a memory carries."""
        if turn_id is not None:
            return cls.TURN
        if agent_id is not None:
            return cls.AGENT
        if session_id is not None:
            return cls.SESSION
        return cls.USER


_DEPTH = {ScopeLevel.USER: 0, ScopeLevel.SESSION: 1, ScopeLevel.AGENT: 2, ScopeLevel.TURN: 3}


def utc_from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class Memory(BaseModel):
    """One version of one remembered fact.

    A memory is never edited in place: a change is a new memory that ``supersedes`` this one, and
    this one gets ``valid_until`` and ``superseded_by``. ``origin_level`` and the ``origin_*`` ids
    record where the memory was first stored when it has since been promoted (bubbled) upward.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    user_id: str
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None
    content: str
    category: MemoryCategory = MemoryCategory.FACT
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    entity_refs: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    valid_from: datetime
    valid_until: datetime | None = None
    expires_at: datetime | None = None
    supersedes: str | None = None
    superseded_by: str | None = None
    origin_level: ScopeLevel | None = None
    origin_session_id: str | None = None
    origin_agent_id: str | None = None
    origin_turn_id: str | None = None
    promoted_at: datetime | None = None
    reinforcement_count: int = 0
    provenance: dict[str, Any] = Field(default_factory=dict)
    context: str | None = None  # text that situates it (say, the message it answers): searched, not embedded
    embedded: bool = True

    @property
    def scope_level(self) -> ScopeLevel:
        return ScopeLevel.of(self.session_id, self.agent_id, self.turn_id)

    @property
    def is_current(self) -> bool:
        """True while no newer version supersedes this one (expiry aside)."""
        return self.valid_until is None

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))


class SearchResult(BaseModel):
    """A memory found by a search, with the evidence for its rank.

    Every score lies on 0..1 (see :mod:`memory_mcp.memory.scoring`). ``score`` orders the results:
    in hybrid recall meaning and words fused, weighed by importance and recency; in the other modes
    the one match. ``relevance`` is the stronger of the two matches, the one a relevance floor
    applies to. ``similarity`` is the cosine similarity to the query (−1..1; in hybrid recall also
    of what only full text found, when it has a vector), ``text_score`` how much of the query's
    words the memory holds (1: all of them) when full text found it.
    """

    model_config = ConfigDict(frozen=True)

    memory: Memory
    score: float
    relevance: float
    similarity: float | None = None
    text_score: float | None = None

    @property
    def content(self) -> str:
        return self.memory.content

    @property
    def id(self) -> str:
        return self.memory.id


class MemoryStats(BaseModel):
    """Counts over the memories of one user (or of the whole database when no user is given)."""

    total: int
    current: int
    superseded: int
    expired: int
    categories: dict[str, int]
    scope_levels: dict[str, int]
    users: int

    def __getitem__(self, key: str) -> Any:  # stats["total"], as the documented examples use it
        return getattr(self, key)
