"""The Claude.ai data export: ``conversations.json``, an array of conversations.

Each conversation (``uuid``, ``name``, ``created_at``) lists its ``chat_messages`` in order, each
with its ``sender`` ('human' or 'assistant'), ``text`` (or ``content`` blocks), ``created_at`` and
the names of attached files. Where messages carry ``parent_message_uuid`` and the conversation
names its ``current_leaf_message_uuid`` (an edited message or a retried answer branches), the branch
ending there is followed, as the user last saw it.
"""

from __future__ import annotations

from typing import Any

from .conversations import Conversation, Message, epoch
from .report import DamagedRecord

SOURCE = "claude"
_ROLES = {"human": "user", "user": "user", "assistant": "assistant"}


def conversation(record: Any) -> Conversation:
    """The record as a conversation (raises DamagedRecord when it is not one)."""
    if not isinstance(record, dict):
        raise DamagedRecord(f"expected a conversation object, got {type(record).__name__}")
    chat = record.get("chat_messages")
    if not isinstance(chat, list):
        raise DamagedRecord("no list of 'chat_messages': not a Claude conversation")
    conversation_id = record.get("uuid")
    if not isinstance(conversation_id, str) or not conversation_id.strip():
        raise DamagedRecord("no conversation 'uuid'")
    title = record.get("name") if isinstance(record.get("name"), str) and record["name"].strip() else None
    found = Conversation(SOURCE, conversation_id, title, [])
    at = epoch(record.get("created_at"))
    for index, message in _branch(chat, record.get("current_leaf_message_uuid")):
        message_id = message.get("uuid") if isinstance(message, dict) and isinstance(message.get("uuid"), str) \
            else f"#{index + 1}"
        if not isinstance(message, dict):
            found.problems.append((message_id, f"expected a message object, got {type(message).__name__}"))
            continue
        at = epoch(message.get("created_at")) or at
        role = _ROLES.get(message.get("sender"))  # type: ignore[arg-type]
        if role is None:
            continue
        text = _text(message)
        if text:
            found.messages.append(Message(message_id, role, text, at))
    return found


def _branch(chat: list[Any], leaf: Any) -> list[tuple[int, Any]]:
    """(index, message) of the messages to keep, in order."""
    by_id = {m["uuid"]: (i, m) for i, m in enumerate(chat) if isinstance(m, dict) and isinstance(m.get("uuid"), str)}
    if not isinstance(leaf, str) or leaf not in by_id or not any(
        isinstance(m, dict) and "parent_message_uuid" in m for m in chat
    ):
        return list(enumerate(chat))
    path: list[tuple[int, Any]] = []
    seen: set[str] = set()
    node: Any = leaf
    while isinstance(node, str) and node in by_id and node not in seen:
        seen.add(node)
        path.append(by_id[node])
        node = by_id[node][1].get("parent_message_uuid")
    return path[::-1]


def _text(message: dict[str, Any]) -> str:
    """The message's text (its ``text``, else its text blocks) and a note of attached files."""
    text = message.get("text") if isinstance(message.get("text"), str) else ""
    if not text.strip() and isinstance(message.get("content"), list):
        blocks = [b.get("text") for b in message["content"] if isinstance(b, dict) and b.get("type") == "text"]
        text = "\n".join(b for b in blocks if isinstance(b, str) and b.strip())
    names = [
        f["file_name"] for key in ("attachments", "files") for f in message.get(key) or []
        if isinstance(f, dict) and isinstance(f.get("file_name"), str) and f["file_name"].strip()
    ]
    text = text.strip()
    if names:
        text = (text + "\n" if text else "") + f"(attached: {', '.join(dict.fromkeys(names))})"
    return text
