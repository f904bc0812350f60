"""The memory steps around one model call, whatever its surface: recall before it, store after it.

Both run as coroutines on the engine's own loop, whichever kind of client (sync or async) made
the call. A failure of memory never fails the user's call: it is logged and the call goes on
without memories (before) or without storing (after).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import AlreadySupersededError, MemoryMCPError
from ..extraction.parser import ExtractedMemory, ParsedAnswer
from ..extraction.template import EXTRACTION_INSTRUCTION, render_memory_context
from ..memory.engine import HierarchicalMemory
from ..memory.models import Memory
from ..memory.scope import Position

log = logging.getLogger("memory_mcp.wrapper")


@dataclass
class Recalled:
    """The note for the model (the extraction instruction and the recalled memories), and the
    short labels the model saw mapped back to memory ids."""

    note: str
    labels: dict[str, str] = field(default_factory=dict)
    injected: list[Memory] = field(default_factory=list)


def ids(at: Position) -> dict[str, str | None]:
    """The position as the engine's keyword arguments (a wrapper has no turn of its own)."""
    return {"user_id": at.user_id, "session_id": at.session_id, "agent_id": at.agent_id}


async def recall(engine: HierarchicalMemory, at: Position, query: str, top_k: int) -> Recalled:
    """Recall what is relevant to ``query`` (the user's last words) and write the note to add."""
    memories: list[Memory] = []
    if query and top_k > 0:
        try:
            memories = [r.memory for r in await engine.recall(query, **ids(at), top_k=top_k)]
        except Exception:  # memory must not break the call: go on without it
            log.exception("could not recall memories; calling the model without them")
    labels = [f"m{index}" for index in range(1, len(memories) + 1)]
    context = render_memory_context(memories, labels)
    note = EXTRACTION_INSTRUCTION + (f"\n\n{context}" if context else "")
    return Recalled(note, dict(zip(labels, (m.id for m in memories), strict=True)), memories)


async def store(
    engine: HierarchicalMemory,
    at: Position,
    parsed: ParsedAnswer,
    labels: Mapping[str, str],
    provenance: Mapping[str, Any],
) -> list[Memory]:
    """Store what the answer's block asked to remember; supersede where it says so."""
    stored: list[Memory] = []
    turn_id = str(provenance.get("response_id") or uuid.uuid4())
    for item in parsed.memories:
        where = _where(at, item, turn_id)
        if where is None:
            log.info("not stored (a turn-scoped memory needs a session_id): %r", item.content)
            continue
        try:
            stored.append(await _store_one(engine, at, where, item, labels, provenance))
        except MemoryMCPError as error:
            log.warning("could not store %r: %s", item.content, error)
        except Exception:
            log.exception("could not store %r", item.content)
    return stored


async def _store_one(
    engine: HierarchicalMemory,
    at: Position,
    where: dict[str, str | None],
    item: ExtractedMemory,
    labels: Mapping[str, str],
    provenance: Mapping[str, Any],
) -> Memory:
    old = await _replaced(engine, at, item.supersedes, labels) if item.supersedes else None
    if item.supersedes and old is None:
        log.warning("%r says it supersedes %r, which matches no current memory; stored as new",
                    item.content, item.supersedes)
    if old is None:
        return await engine.add(
            item.content, **where, category=item.category, importance=item.importance, provenance=provenance
        )
    try:
        return await engine.supersede(
            old, item.content, user_id=at.user_id, category=item.category, importance=item.importance,
            provenance=provenance,
        )
    except AlreadySupersededError:  # replaced meanwhile: the model means the fact, so its current version
        current = [m for m in await engine.get_history(old, user_id=at.user_id) if m.is_current]
        if not current:
            raise
        return await engine.supersede(
            current[0].id, item.content, user_id=at.user_id, category=item.category,
            importance=item.importance, provenance=provenance,
        )


async def _replaced(
    engine: HierarchicalMemory, at: Position, reference: str, labels: Mapping[str, str]
) -> str | None:
    """The id of the memory a block's ``supersedes`` names: a label it was shown, an id, or the
    exact (case-insensitive) text of a current memory visible here."""
    if reference in labels:
        return labels[reference]
    try:
        return (await engine.get(reference, user_id=at.user_id)).id
    except MemoryMCPError:
        pass
    wanted = reference.strip().casefold()
    for found in await engine.text_search(reference, **ids(at), top_k=10):
        if found.memory.content.strip().casefold() == wanted:
            return found.memory.id
    return None


def _where(at: Position, item: ExtractedMemory, turn_id: str) -> dict[str, str | None] | None:
    """The position to store at: the block's scope, narrowed no further than the wrapper reaches."""
    scope = item.scope or "user"
    if scope == "user":
        return {"user_id": at.user_id}
    if scope == "turn":
        return None if at.session_id is None else {**ids(at), "turn_id": turn_id}
    if scope == "session" or at.session_id is None:
        return {"user_id": at.user_id, "session_id": at.session_id}
    return ids(at)
