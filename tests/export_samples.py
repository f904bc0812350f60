"""Small exports in each format the importers read, built from the formats' documented structure
(no real person's data): a ChatGPT message tree, Claude conversations, server-memory graph lines
and Mem0 ``get_all`` results."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def at(text: str) -> float:
    """Epoch seconds of an ISO time (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class ChatGPTConversation:
    """A ChatGPT conversation as its export writes it: a tree of nodes under a hidden root, each
    node ``{id, message, parent, children}``; ``current_node`` is the leaf the user ended on."""

    def __init__(self, title: str, created: float, conversation_id: str | None = None):
        self.id = conversation_id or str(uuid.uuid4())
        self.title, self.created = title, created
        self.mapping: dict[str, Any] = {"client-created-root": {
            "id": "client-created-root", "message": None, "parent": None, "children": []}}
        self.current = "client-created-root"
        # Every conversation starts with a hidden system message.
        self.current = self.add("system", "", created, content={"content_type": "text", "parts": [""]},
                                metadata={"is_visually_hidden_from_conversation": True})

    def add(self, role: str, text: str | None, when: float | None, *, parent: str | None = None,
            content: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None,
            recipient: str = "all", node_id: str | None = None) -> str:
        """Add a message under ``parent`` (default: the current leaf), which becomes the current leaf."""
        parent = parent or self.current
        node_id = node_id or str(uuid.uuid4())
        self.mapping[node_id] = {
            "id": node_id, "parent": parent, "children": [],
            "message": {
                "id": node_id, "author": {"role": role, "name": None, "metadata": {}},
                "create_time": when, "update_time": None,
                "content": content or {"content_type": "text", "parts": [text]},
                "status": "finished_successfully", "end_turn": role == "assistant", "weight": 1.0,
                "metadata": metadata or {}, "recipient": recipient,
            },
        }
        self.mapping[parent]["children"].append(node_id)
        self.current = node_id
        return node_id

    def record(self) -> dict[str, Any]:
        return {
            "title": self.title, "create_time": self.created, "update_time": self.created + 600,
            "mapping": self.mapping, "moderation_results": [], "current_node": self.current,
            "plugin_ids": None, "conversation_id": self.id, "conversation_template_id": None,
            "gizmo_id": None, "is_archived": False, "safe_urls": [], "default_model_slug": "gpt-4o", "id": self.id,
        }


def claude_conversation(name: str, created: str, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A Claude conversation: ``messages`` give ``sender``, ``text`` and ``created_at``, and may
    give ``attachments``, ``files``, ``content`` or ``parent_message_uuid``."""
    return {
        "uuid": extra.pop("uuid", str(uuid.uuid4())), "name": name, "created_at": created, "updated_at": created,
        "account": {"uuid": "00000000-0000-4000-8000-00000000000a"},
        "chat_messages": [
            {"uuid": m.get("uuid", str(uuid.uuid4())), "text": m.get("text", ""),
             "content": m.get("content", [{"type": "text", "text": m.get("text", "")}]),
             "sender": m["sender"], "created_at": m["created_at"], "updated_at": m["created_at"],
             "attachments": m.get("attachments", []), "files": m.get("files", []),
             **{k: m[k] for k in ("parent_message_uuid",) if k in m}}
            for m in messages
        ],
        **extra,
    }


def mem0_memory(memory_id: str, text: str, user_id: str | None, created: str, updated: str | None = None,
                **extra: Any) -> dict[str, Any]:
    """One memory as Mem0's ``get_all`` returns it."""
    return {"id": memory_id, "memory": text, "hash": uuid.uuid5(uuid.NAMESPACE_OID, text).hex,
            "metadata": extra.pop("metadata", None), "created_at": created, "updated_at": updated,
            "user_id": user_id, **extra}


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def write_lines(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                            for r in records), encoding="utf-8")
    return path
