"""A memory version as a row of the ``memories`` table, the same in every SQL engine.

Times are epoch seconds (UTC), lists and dicts JSON text; the search text and context are stored as
the text index reads them (see :mod:`.words`), with the memory's length in tokens for BM25.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..memory.models import Memory, MemoryCategory, ScopeLevel, utc_from_epoch
from ..memory.ports import NewVersion, Stored
from .words import count_tokens, searchable

# The columns a Stored is read from, in order; a SELECT adds "embedded" and the user's id after them.
COLUMNS = (
    "key", "id", "user_key", "session_id", "agent_id", "turn_id", "category", "content", "importance",
    "entity_refs", "metadata", "provenance", "created_at", "valid_from", "valid_until", "expires_at",
    "supersedes", "superseded_by", "origin_level", "origin_session_id", "origin_agent_id",
    "origin_turn_id", "promoted_at", "reinforcement_count", "context",
)


def stored(row: Sequence[Any]) -> Stored:
    """A row of ``COLUMNS``, then whether it has a vector, then its user's id."""
    (key, mid, user_key, session_id, agent_id, turn_id, category, content, importance, entity_refs, metadata,
     provenance, created_at, valid_from, valid_until, expires_at, supersedes, superseded_by, origin_level,
     o_session, o_agent, o_turn, promoted_at, reinforcement, context, embedded, user_id) = row
    memory = Memory(
        id=mid, user_id=user_id, session_id=session_id, agent_id=agent_id, turn_id=turn_id,
        content=content, category=MemoryCategory(category), importance=importance,
        entity_refs=json.loads(entity_refs), metadata=json.loads(metadata),
        provenance=json.loads(provenance), created_at=utc_from_epoch(created_at),
        valid_from=utc_from_epoch(valid_from), valid_until=utc_from_epoch(valid_until),
        expires_at=utc_from_epoch(expires_at), supersedes=supersedes, superseded_by=superseded_by,
        origin_level=ScopeLevel(origin_level) if origin_level else None,
        origin_session_id=o_session, origin_agent_id=o_agent, origin_turn_id=o_turn,
        promoted_at=utc_from_epoch(promoted_at), reinforcement_count=reinforcement, context=context,
        embedded=bool(embedded),
    )
    return Stored(int(key), int(user_key), memory)


def epoch(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


def as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def version_row(version: NewVersion, chain_key: int | None) -> dict[str, Any]:
    """The columns of a new version (all but the key and the embedding), by name."""
    m = version.memory
    text = searchable(version.search_text)
    situation = None if m.context is None else searchable(m.context)
    return {
        "id": m.id, "user_key": version.user_key, "session_id": m.session_id, "agent_id": m.agent_id,
        "turn_id": m.turn_id, "scope_level": m.scope_level.value, "category": m.category.value,
        "content": m.content, "content_hash": version.content_hash, "importance": m.importance,
        "entity_refs": as_json(m.entity_refs), "metadata": as_json(m.metadata), "provenance": as_json(m.provenance),
        "created_at": epoch(m.created_at), "valid_from": epoch(m.valid_from),
        "valid_until": epoch(m.valid_until), "expires_at": epoch(m.expires_at), "chain_key": chain_key,
        "supersedes": m.supersedes, "superseded_by": m.superseded_by,
        "origin_level": m.origin_level.value if m.origin_level else None,
        "origin_session_id": m.origin_session_id, "origin_agent_id": m.origin_agent_id,
        "origin_turn_id": m.origin_turn_id, "promoted_at": epoch(m.promoted_at),
        "reinforcement_count": m.reinforcement_count,
        # BM25's length of a memory counts its context too: without it, short turns with long
        # contexts outrank everything.
        "search_text": text, "n_tokens": max(1, count_tokens(text) + count_tokens(situation or "")),
        "context": m.context, "context_text": situation,
    }
