"""A Mem0 export: what ``Memory.get_all`` (or the platform's ``client.get_all``) returns, saved as
JSON: ``{"results": [...]}`` or the list itself.

Each memory keeps its text, its ``metadata`` (with Mem0's ``categories``, when it has them) and its
times: ``valid_from`` is when its current text was written (``updated_at``, else ``created_at``).
Mem0's ids map onto memory_mcp's scopes: ``user_id`` is the user (the import's user when a memory
names none), ``run_id`` the session and ``agent_id`` the agent. The key comes from Mem0's memory
id, so a re-import stores nothing twice.
"""

from __future__ import annotations

from typing import Any

from .conversations import source_key
from .report import DamagedRecord

SOURCE = "mem0"


def item(record: Any, default_user: str) -> dict[str, Any]:
    """The memory of one Mem0 record (raises DamagedRecord when it is not one)."""
    if not isinstance(record, dict):
        raise DamagedRecord(f"expected a memory object, got {type(record).__name__}")
    text = record.get("memory")
    if not isinstance(text, str) or not text.strip():
        raise DamagedRecord("no 'memory' text")
    memory_id = record.get("id")
    if not isinstance(memory_id, str | int) or isinstance(memory_id, bool) or not str(memory_id).strip():
        raise DamagedRecord("no memory 'id'")
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise DamagedRecord(f"'metadata' is a {type(metadata).__name__}, not an object")
    if isinstance(record.get("categories"), list) and record["categories"]:
        metadata = {**metadata, "categories": record["categories"]}
    ids = {}
    for theirs, ours in (("user_id", "user_id"), ("run_id", "session_id"), ("agent_id", "agent_id")):
        value = record.get(theirs)
        if value is not None and not isinstance(value, str):
            raise DamagedRecord(f"'{theirs}' is a {type(value).__name__}, not a string")
        if value:
            ids[ours] = value
    provenance: dict[str, Any] = {"source": SOURCE, "memory_id": str(memory_id)}
    for name in ("created_at", "updated_at", "hash", "app_id", "actor_id", "role"):
        if isinstance(record.get(name), str) and record[name]:
            provenance[name] = record[name]
    found: dict[str, Any] = {
        "user_id": ids.pop("user_id", default_user), **ids, "content": text, "metadata": metadata,
        "provenance": provenance, "idempotency_key": source_key(SOURCE, str(memory_id)),
    }
    written = record.get("updated_at") or record.get("created_at")
    if written is not None:
        found["valid_from"] = written
    return found
