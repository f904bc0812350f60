"""A chat export's conversations as memories: one per message, said when it was said.

Each reader (ChatGPT, Claude) turns a record into a :class:`Conversation`; this module stores it
through ``add_conversation``: every message becomes a memory "user: ..." or "assistant: ..."
whose neighbours are its context, whose ``valid_from`` is the message's own time (so ``as_of``
sees the history as it was) and whose provenance names the source, conversation and message. Its
idempotency key is drawn from those ids alone, so importing the same export again, or a later
export holding the same conversations, stores each message once. A message longer than a memory
may be is stored in parts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidMemoryError
from ..memory.engine import HierarchicalMemory
from ..memory.models import Memory
from .report import ImportReport


@dataclass(frozen=True)
class Message:
    """One message of the branch the conversation ended on: ``role`` 'user' or 'assistant',
    ``at`` in epoch seconds (None when the export gives no time)."""

    id: str
    role: str
    text: str
    at: float | None


@dataclass
class Conversation:
    """A conversation read from an export, with the messages left out as damaged (id, why)."""

    source: str
    id: str
    title: str | None
    messages: list[Message]
    problems: list[tuple[str, str]] = field(default_factory=list)


def source_key(*ids: Any) -> str:
    """An idempotency key from source ids: the same ids, the same key, in any later import."""
    return "import:" + hashlib.sha256(json.dumps(ids, ensure_ascii=False).encode()).hexdigest()[:40]


def epoch(value: Any) -> float | None:
    """A time as the exports write it (epoch seconds, or ISO 8601 text) in epoch seconds, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if 0 < value < 10**11 else None
    if isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return None


def pieces(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut at a paragraph, line or word."""
    text = text.strip()
    parts: list[str] = []
    while len(text) > limit:
        cut = next((at for sep in ("\n\n", "\n", " ") if (at := text.rfind(sep, limit // 2, limit)) > 0), limit)
        parts.append(text[:cut].strip())
        text = text[cut:].strip()
    return [*parts, text] if text else parts


def turn_items(conversation: Conversation, max_chars: int) -> list[dict[str, Any]]:
    """Each message (or part of one) as ``add_conversation``'s turn, with its key and provenance."""
    items = []
    for message in conversation.messages:
        label = f"{message.role}: "
        parts = pieces(message.text, max_chars - len(label))
        for number, part in enumerate(parts, 1):
            provenance: dict[str, Any] = {
                "source": conversation.source, "conversation_id": conversation.id, "message_id": message.id,
            }
            if conversation.title:
                provenance["conversation_title"] = conversation.title
            if len(parts) > 1:
                provenance["part"] = f"{number}/{len(parts)}"
            item: dict[str, Any] = {
                "content": label + part, "provenance": provenance,
                "idempotency_key": source_key(conversation.source, conversation.id, message.id,
                                              number if len(parts) > 1 else None),
            }
            if message.at is not None:
                item["valid_from"] = message.at
            items.append(item)
    return items


async def store_conversation(
    memory: HierarchicalMemory, conversation: Conversation, user_id: str, where: str, report: ImportReport
) -> None:
    """Store a conversation's messages for ``user_id``, counting what became of each in ``report``."""
    report.messages += len(conversation.messages)
    for message_id, why in conversation.problems:
        report.refuse(f"{where}, message {message_id}", why)
    items = turn_items(conversation, memory.config.max_content_chars)
    used = await memory.used_keys(user_id, [item["idempotency_key"] for item in items])
    report.already_present += len(used)
    if len(used) == len(items):
        return
    stored = await add_all(memory, items, where, report, conversation_of=user_id)
    count_stored(items, stored, used, report)


async def add_all(
    memory: HierarchicalMemory, items: list[dict[str, Any]], where: str | Sequence[str], report: ImportReport,
    *, conversation_of: str | None = None,
) -> list[Memory]:
    """``add_many`` of the items (``add_conversation`` for ``conversation_of``, a user id), leaving
    out, and reporting, each item the engine refuses; ``items`` keeps those stored. ``where`` names
    the record of every item, or of each."""
    places = [where] * len(items) if isinstance(where, str) else list(where)
    while items:
        try:
            if conversation_of is not None:
                return await memory.add_conversation(items, user_id=conversation_of)
            return await memory.add_many(items)
        except InvalidMemoryError as exc:  # "item 3: ...": every item is checked before any is stored
            found = re.match(r"item (\d+): (.*)", str(exc), re.DOTALL)
            if found is None or int(found[1]) >= len(items):
                raise
            bad = items.pop(int(found[1]))
            place = places.pop(int(found[1]))
            message = bad.get("provenance", {}).get("message_id")
            report.refuse(f"{place}, message {message}" if message else place, found[2])
    return []


def count_stored(items: list[dict[str, Any]], stored: list[Memory], used: dict[str, Memory],
                 report: ImportReport) -> None:
    """New memories, those that repeated one already stored (and reinforced it), and those whose
    source ids came twice in the export (stored once)."""
    counted: set[str] = set()
    for item, memory in zip(items, stored, strict=True):
        if item["idempotency_key"] in used:
            continue
        mine = all(memory.provenance.get(k) == v for k, v in item["provenance"].items())
        if mine and memory.id in counted:
            report.already_present += 1
        elif mine:
            report.stored += 1
        else:
            report.repeated += 1
        counted.add(memory.id)
