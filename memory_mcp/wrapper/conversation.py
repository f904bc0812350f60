"""Reading and extending the requests of the wrapped surfaces, never touching the caller's objects.

Messages (chat, Anthropic) and input items (Responses) may be dicts (the usual case) or the
client's own objects passed back in; a content may be a string, ``None`` (an assistant turn that
only called tools) or a list of parts such as ``{"type": "text", "text": ...}``,
``{"type": "input_text", ...}``, ``{"type": "image_url", ...}`` or ``{"type": "tool_result", ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_SYSTEM_ROLES = ("system", "developer")
_TEXT_PARTS = (None, "text", "input_text")


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


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def content_text(content: Any) -> str:
    """The text of a message content: the string itself, or its text parts joined."""
    if isinstance(content, str):
        return content
    if is_list(content):
        texts = [field(part, "text") for part in content if field(part, "type") in _TEXT_PARTS]
        return "\n".join(text for text in texts if isinstance(text, str))
    return ""


def last_user_text(messages: Sequence[Any]) -> str:
    """What the user said last: the query that selects which memories to inject.

    A user turn without text (an Anthropic ``tool_result``, an image alone) is passed over, so the
    follow-up of a tool call recalls for the question that started it."""
    for message in reversed(messages):
        if field(message, "role") == "user" and (text := content_text(field(message, "content")).strip()):
            return text
    return ""


def with_note(content: Any, note: str) -> str | list[Any]:
    """A system text (a string, a list of text blocks, or nothing given) ending with ``note``.

    A list gets the note as one more text block, so a ``cache_control`` on the blocks before it
    still covers the same prefix."""
    if isinstance(content, str):
        return f"{content}\n\n{note}" if content else note
    if is_list(content):
        return [*content, {"type": "text", "text": note}]
    return note


def with_system_note(messages: Sequence[Any], note: str) -> list[Any]:
    """A new message list whose leading system (or developer) message ends with ``note``.

    The note joins an existing leading system message rather than adding a second one, which
    some OpenAI-compatible providers refuse; the caller's list and dicts stay as they were.
    """
    messages = list(messages)
    first = messages[0] if messages else None
    if isinstance(first, Mapping) and first.get("role") in _SYSTEM_ROLES:
        content = first.get("content")
        if isinstance(content, str) or is_list(content):
            messages[0] = {**first, "content": with_note(content, note)}
            return messages
    return [{"role": "system", "content": note}, *messages]
