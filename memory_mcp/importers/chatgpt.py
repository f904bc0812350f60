"""ChatGPT's data export: ``conversations.json``, an array of conversations.

A conversation keeps its messages as a tree (``mapping``: node id -> ``{message, parent,
children}``): editing a message or regenerating an answer starts a sibling branch. What the user
last saw is the branch from the root to ``current_node``, followed here; the other branches are
drafts they moved away from. Of that branch, the user's and the assistant's visible text messages
are kept (text parts, with a note of attached files and images); system and tool messages, hidden
context, the assistant's calls to tools and its reasoning summaries are not conversation.
"""

from __future__ import annotations

from typing import Any

from .conversations import Conversation, Message, epoch
from .report import DamagedRecord

SOURCE = "chatgpt"
_TEXT_TYPES = ("text", "multimodal_text")


def conversation(record: Any) -> Conversation:
    """The record as a conversation (raises DamagedRecord when it is not one)."""
    if not isinstance(record, dict):
        raise DamagedRecord(f"expected a conversation object, got {type(record).__name__}")
    mapping = record.get("mapping")
    if not isinstance(mapping, dict):
        raise DamagedRecord("no 'mapping' of messages: not a ChatGPT conversation")
    conversation_id = record.get("conversation_id") or record.get("id")
    if not isinstance(conversation_id, str) or not conversation_id.strip():
        raise DamagedRecord("no conversation id ('conversation_id' or 'id')")
    title = record.get("title") if isinstance(record.get("title"), str) else None
    found = Conversation(SOURCE, conversation_id, title, [])
    at = epoch(record.get("create_time"))  # a message without a time of its own was said after the one before
    for node_id in _branch(mapping, record.get("current_node"), found):
        node = mapping[node_id]
        message = node.get("message") if isinstance(node, dict) else None
        if not isinstance(message, dict):
            continue
        message_id = message.get("id") if isinstance(message.get("id"), str) else node_id
        try:
            read = _message(message, message_id)
        except DamagedRecord as exc:
            found.problems.append((message_id, str(exc)))
            continue
        at = epoch(message.get("create_time")) or at
        if read is not None:
            role, text = read
            found.messages.append(Message(message_id, role, text, at))
    return found


def _branch(mapping: dict[str, Any], current: Any, found: Conversation) -> list[str]:
    """Node ids from the root to the node the user ended on (the newest leaf if none is named)."""
    if not isinstance(current, str) or current not in mapping:
        current = _newest_leaf(mapping)
        if current is None:
            return []
    path: list[str] = []
    seen: set[str] = set()
    node_id: Any = current
    while isinstance(node_id, str) and node_id not in seen:
        if node_id not in mapping:
            found.problems.append((node_id, "the message tree names this parent, which is missing: "
                                            "the messages before it are lost"))
            break
        seen.add(node_id)
        path.append(node_id)
        node = mapping[node_id]
        node_id = node.get("parent") if isinstance(node, dict) else None
    return path[::-1]


def _newest_leaf(mapping: dict[str, Any]) -> str | None:
    """Following the last child from the root: the newest branch, in an export without ``current_node``."""
    roots = [k for k, n in mapping.items() if not isinstance(n, dict) or n.get("parent") not in mapping]
    if not roots:
        return None
    node_id, seen = roots[0], set()
    while node_id not in seen:
        seen.add(node_id)
        children = mapping[node_id].get("children") if isinstance(mapping[node_id], dict) else None
        children = [c for c in children or [] if isinstance(c, str) and c in mapping]
        if not children:
            break
        node_id = children[-1]
    return node_id


def _message(message: dict[str, Any], message_id: str) -> tuple[str, str] | None:
    """(role, text) of a visible user or assistant message; None for anything else."""
    author = message.get("author")
    role = author.get("role") if isinstance(author, dict) else None
    metadata = message.get("metadata") if isinstance(message.get("metadata"), dict) else {}
    if role not in ("user", "assistant") or metadata.get("is_visually_hidden_from_conversation"):
        return None
    if message.get("recipient") not in (None, "all"):  # the assistant calling a tool
        return None
    content = message.get("content")
    if not isinstance(content, dict):
        raise DamagedRecord("the message has no content object")
    if content.get("content_type") not in _TEXT_TYPES:
        return None  # code run, tool output, reasoning, hidden context
    parts = content.get("parts")
    if not isinstance(parts, list):
        raise DamagedRecord("a text message without a list of 'parts'")
    texts, attached = [], []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):  # a voice message's transcript
            texts.append(part["text"])
        elif isinstance(part, dict) and "image" in str(part.get("content_type", "")):
            attached.append("an image")
        elif part is not None and not isinstance(part, dict):
            raise DamagedRecord(f"a part of the message is a {type(part).__name__}, not text")
    for attachment in metadata.get("attachments") or []:
        if isinstance(attachment, dict) and isinstance(attachment.get("name"), str):
            attached.append(attachment["name"])
    text = "\n".join(t for t in texts if t.strip()).strip()
    if attached:
        text = (text + "\n" if text else "") + f"(attached: {', '.join(dict.fromkeys(attached))})"
    return (role, text) if text else None
