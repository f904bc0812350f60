"""Telling an export's format from its first bytes.

A ChatGPT or Claude ``conversations.json`` and a Mem0 ``get_all`` list are JSON arrays whose first
element gives them away by its keys (``mapping``, ``chat_messages``, ``memory``); Mem0's dict form
holds ``results``. The server-memory file and memory_mcp's own export are JSON lines whose first
line gives them away (``"type": "entity"`` or ``"relation"``; ``content``).
"""

from __future__ import annotations

import io
import json

import ijson

FORMATS = ("chatgpt", "claude", "server-memory", "mem0", "jsonl")
NAMES = {"chatgpt": "a ChatGPT export", "claude": "a Claude export", "server-memory": "a server-memory file",
         "mem0": "a Mem0 export", "jsonl": "memory_mcp JSON lines"}


def detect(head: bytes) -> str | None:
    """The format whose shape these first bytes have, or None if they match none."""
    text = head.lstrip()
    if text.startswith(b"["):
        return _by_keys(_first_keys(text, "item"))
    if not text.startswith(b"{"):
        return None
    first = text.split(b"\n", 1)[0]
    try:
        record = json.loads(first)
    except ValueError:  # one object over many lines: a JSON document, not JSON lines
        keys = _first_keys(text, "")
        return "mem0" if "results" in keys else _by_keys(_first_keys(text, "conversations.item"))
    if not isinstance(record, dict):
        return None
    if record.get("type") in ("entity", "relation"):
        return "server-memory"
    if isinstance(record.get("results"), list):
        return "mem0"
    if isinstance(record.get("content"), str):
        return "jsonl"
    return None


def _by_keys(keys: list[str]) -> str | None:
    if "mapping" in keys:
        return "chatgpt"
    if "chat_messages" in keys:
        return "claude"
    if "memory" in keys:
        return "mem0"
    return None


def _first_keys(text: bytes, prefix: str) -> list[str]:
    """The keys of the first object at ``prefix``, as far as these bytes go."""
    keys: list[str] = []
    started = False
    try:
        for where, event, value in ijson.parse(io.BytesIO(text)):
            if where == prefix and event == "start_map":
                started = True
            elif started and where == prefix and event == "map_key":
                keys.append(str(value))
            elif started and where == prefix and event == "end_map":
                break
    except ijson.JSONError:  # the bytes end mid-file, or are not JSON at all: what was seen counts
        pass
    return keys


def describe(head: bytes) -> str:
    """How the file starts, for an error message: a few characters, never a whole record."""
    text = head.lstrip()[:40].decode("utf-8", "replace")
    return repr(text + ("…" if len(head.lstrip()) > 40 else "")) if text else "nothing (it is empty)"
