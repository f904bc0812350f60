"""Reading and extending OpenAI-style messages and responses, never touching the caller's objects.

Messages may be dicts (the usual case) or the client's own message objects passed back in; a
message's content may be a string, ``None`` (an assistant turn that only called tools) or a list
of parts such as ``{"type": "text", "text": ...}`` and ``{"type": "image_url", ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_SYSTEM_ROLES = ("system", "developer")


def field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``, whichever the object offers; None when it has neither."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def set_field(obj: Any, name: str, value: Any) -> None:
    if isinstance(obj, dict):
        obj[name] = value
    else:
        setattr(obj, name, value)


def content_text(content: Any) -> str:
    """The text of a message content: the string itself, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        texts = [field(part, "text") for part in content if field(part, "type") in (None, "text")]
        return "\n".join(text for text in texts if isinstance(text, str))
    return ""


def last_user_text(messages: Sequence[Any]) -> str:
    """What the user said last: the query that selects which memories to inject."""
    for message in reversed(messages):
        if field(message, "role") == "user":
            return content_text(field(message, "content")).strip()
    return ""


def with_system_note(messages: Sequence[Any], note: str) -> list[Any]:
    """A new message list whose leading system (or developer) message ends with ``note``.

    The note joins an existing leading system message rather than adding a second one, which
    some OpenAI-compatible providers refuse; the caller's list and dicts stay as they were.
    """
    messages = list(messages)
    first = messages[0] if messages else None
    if isinstance(first, Mapping) and first.get("role") in _SYSTEM_ROLES:
        content = first.get("content")
        if isinstance(content, str):
            messages[0] = {**first, "content": f"{content}\n\n{note}" if content else note}
            return messages
        if isinstance(content, list):
            messages[0] = {**first, "content": [*content, {"type": "text", "text": note}]}
            return messages
    return [{"role": "system", "content": note}, *messages]
