"""``client.chat.completions``: OpenAI's chat surface, which most providers also speak.

The notes go into the leading system message; each choice's ``message.content`` is an answer
(the first choice's is stored); a stream's chunks carry text in ``choices[i].delta.content``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ...extraction.parser import ParsedAnswer, parse_answer
from ..conversation import field, last_user_text, set_field, with_system_note
from ..streams import HeldText


class ChatCompletions:
    path = ("chat", "completions")
    example = "client.chat.completions.create(model=..., messages=...)"

    def query(self, request: Mapping[str, Any]) -> str | None:
        messages = request.get("messages")
        return None if messages is None else last_user_text(messages)

    def with_note(self, request: Mapping[str, Any], note: str) -> dict[str, Any]:
        return {**request, "messages": with_system_note(request["messages"], note)}

    def clean(self, response: Any) -> ParsedAnswer | None:
        first: ParsedAnswer | None = None
        for choice in field(response, "choices") or []:
            message = field(choice, "message")
            text = field(message, "content") if message is not None else None
            if not isinstance(text, str):  # tool calls only, or a refusal
                continue
            parsed = parse_answer(text)
            if parsed.blocks:
                set_field(message, "content", parsed.text)
            if first is None:
                first = parsed
        return first

    def editor(self) -> ChatEditor:
        return ChatEditor()


class ChatEditor:
    """Edits ``ChatCompletionChunk``s in place, one held text per choice."""

    def __init__(self) -> None:
        self.response_id: str | None = None
        self._held = HeldText()
        self._last_with_choices: Any = None

    def edit(self, chunk: Any) -> tuple[Any, ...]:
        self.response_id = self.response_id or field(chunk, "id")
        choices = field(chunk, "choices") or []
        if choices:
            self._last_with_choices = chunk
        for choice in choices:
            index = field(choice, "index") or 0
            delta = field(choice, "delta")
            text = field(delta, "content") if delta is not None else None
            finished = field(choice, "finish_reason")
            if not isinstance(text, str) and not finished:
                continue
            shown = self._held.feed(index, text) if isinstance(text, str) else ""
            if finished and not self._held.closed(index):
                shown += self._held.close(index)
            if delta is not None and (isinstance(text, str) or shown):
                set_field(delta, "content", shown)
        return (chunk,)

    def finish(self) -> tuple[list[Any], ParsedAnswer | None]:
        tail = self._tail(self._held.close_all())
        return ([tail] if tail is not None else []), self._held.parsed(0) or self._held.whole()

    def _tail(self, rests: dict[Any, str]) -> Any:
        """A last chunk with the text still held back, for a stream that ended without finishing
        a choice (cut off); None when nothing is left."""
        if not rests or self._last_with_choices is None:
            return None
        chunk = copy.deepcopy(self._last_with_choices)
        kept = [c for c in field(chunk, "choices") if (field(c, "index") or 0) in rests]
        for choice in kept:
            set_field(field(choice, "delta"), "content", rests[field(choice, "index") or 0])
            set_field(choice, "finish_reason", None)
        set_field(chunk, "choices", kept)
        return chunk if kept else None
