"""What the MCP tools take and return beyond plain arguments.

The returned models are the tools' structured content. They are not declared as output schemas:
``tools/list`` is sent with every conversation and the schemas doubled its size; their shapes are
in docs/mcp.md, and the tests check every answer against these models' schemas (``OUTPUTS``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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
    reinforcement_count: int | None = Field(default=None, description="times it was repeated and reinforced")

    @classmethod
    def of(cls, memory: Memory) -> MemoryOut:
        return cls(
            id=memory.id, content=memory.content, category=memory.category.value,
            importance=memory.importance, scope=memory.scope_level.value, session_id=memory.session_id,
            agent_id=memory.agent_id, turn_id=memory.turn_id, entity_refs=memory.entity_refs or None,
            valid_from=memory.valid_from, valid_until=memory.valid_until, supersedes=memory.supersedes,
            superseded_by=memory.superseded_by,
            origin_scope=memory.origin_level.value if memory.origin_level else None,
            reinforcement_count=memory.reinforcement_count or None,
        )


class Hit(MemoryOut):
    score: float
    relevance: float
    similarity: float | None = None

    @classmethod
    def of_result(cls, result: SearchResult) -> Hit:
        return cls(
            **MemoryOut.of(result.memory).model_dump(), score=result.score, relevance=result.relevance,
            similarity=result.similarity,
        )


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


class Turn(BaseModel):  # one message of a transcript given to remember_conversation (no docstring:
    # it would be listed in the tool's schema)
    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="What was said")
    speaker: str | None = Field(default=None, description="Who said it, e.g. a name or 'user'")
    at: str | None = Field(default=None, description="ISO 8601 time it was said")


def conversation_turns(turns: list[Turn], user: str, session_id: str | None, agent_id: str | None) -> list[dict[str, Any]]:
    """The transcript as ``add_conversation`` turns: "speaker: text", said at ``at``, each with an
    idempotency key drawn from where it stands (its user, session, agent, the message before it)
    and what it is, so that a transcript sent again, or longer, stores each message once."""
    items, before = [], ""
    for turn in turns:
        content = f"{turn.speaker}: {turn.text}" if turn.speaker else turn.text
        where = json.dumps([user, session_id, agent_id, before, content, turn.at])
        item: dict[str, Any] = {"content": content, "idempotency_key": "turn:" + hashlib.sha256(where.encode()).hexdigest()[:32]}
        if turn.at is not None:
            item["valid_from"] = turn.at
        items.append(item)
        before = content
    return items


# Each tool's structured content, checked by the tests against the model's schema.
OUTPUTS: dict[str, type[BaseModel]] = {
    "remember": MemoryOut, "remember_conversation": ListOut, "recall": SearchOut, "search": SearchOut,
    "supersede": MemoryOut, "history": HistoryOut, "forget": ForgetOut, "list_memories": ListOut,
}
