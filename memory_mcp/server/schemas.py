"""What the MCP tools return: compact models whose JSON schemas become the tools' output schemas."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ..memory.models import Memory, MemoryStats, SearchResult


class MemoryOut(BaseModel):
    id: str
    content: str
    category: str
    importance: float
    scope: str = Field(description="user, session, agent or turn")
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None
    entity_refs: list[str] | None = None
    valid_from: datetime
    valid_until: datetime | None = Field(default=None, description="set once superseded")
    supersedes: str | None = None
    superseded_by: str | None = None
    origin_scope: str | None = Field(default=None, description="where it was stored before promotion")

    @classmethod
    def of(cls, memory: Memory) -> MemoryOut:
        return cls(
            id=memory.id, content=memory.content, category=memory.category.value,
            importance=memory.importance, scope=memory.scope_level.value, session_id=memory.session_id,
            agent_id=memory.agent_id, turn_id=memory.turn_id, entity_refs=memory.entity_refs or None,
            valid_from=memory.valid_from, valid_until=memory.valid_until, supersedes=memory.supersedes,
            superseded_by=memory.superseded_by,
            origin_scope=memory.origin_level.value if memory.origin_level else None,
        )


class Hit(MemoryOut):
    score: float
    similarity: float | None = None

    @classmethod
    def of_result(cls, result: SearchResult) -> Hit:
        return cls(**MemoryOut.of(result.memory).model_dump(), score=result.score, similarity=result.similarity)


class SearchOut(BaseModel):
    results: list[Hit]
    semantic_ready: bool = Field(description="false while the embedding model loads: full-text results only")


class HistoryOut(BaseModel):
    versions: list[MemoryOut] = Field(description="oldest first")


class ForgetOut(BaseModel):
    deleted: int


class ListOut(BaseModel):
    memories: list[MemoryOut]
    next_offset: int | None = None


StatsOut = MemoryStats
