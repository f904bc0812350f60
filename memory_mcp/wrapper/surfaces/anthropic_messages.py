"""``client.messages``: the Anthropic Messages API (``Anthropic()``, ``AsyncAnthropic()``).

The notes go into the ``system`` parameter (a string, or one more text block after the caller's
blocks); the answer is the message's text blocks, each cleaned on its own, and their memories are
stored together; tool use, thinking and other blocks pass through untouched. A text block that
held nothing but the memory block is removed, as the API refuses an empty text block when the
message is sent back in the next turn. Streams carry text in ``content_block_delta`` events
(``text_delta``), each block between its ``content_block_start`` and ``content_block_stop``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from ...extraction.parser import ParsedAnswer, combine, parse_answer
from ..conversation import field, is_list, last_user_text, set_field, with_note
from ..streams import HeldText

log = logging.getLogger("memory_mcp.wrapper")


class AnthropicMessages:
    path = ("messages",)
    example = "client.messages.create(model=..., max_tokens=..., messages=...)"

    def query(self, request: Mapping[str, Any]) -> str | None:
        messages = request.get("messages")
        return None if messages is None else last_user_text(messages)

    def with_note(self, request: Mapping[str, Any], note: str) -> dict[str, Any]:
        return {**request, "system": with_note(request.get("system"), note)}

    def clean(self, response: Any) -> ParsedAnswer | None:
        content = field(response, "content")
        if not is_list(content):
            return None
        answers: list[ParsedAnswer] = []
        kept: list[Any] = []
        for block in content:
            text = field(block, "text") if field(block, "type") == "text" else None
            if isinstance(text, str):
                parsed = parse_answer(text)
                answers.append(parsed)
                if parsed.blocks and not parsed.text:
                    continue
                if parsed.blocks:
                    set_field(block, "text", parsed.text)
            kept.append(block)
        if len(kept) < len(content):
            set_field(response, "content", kept)
        return combine(answers)

    def editor(self) -> AnthropicEditor:
        return AnthropicEditor()


class AnthropicEditor:
    """Edits raw ``RawMessageStreamEvent``s. A text block's ``content_block_start`` waits for its
    first visible text, so a block that turns out to hold only the memory block is dropped whole
    and the blocks after it are renumbered, as in the non-streamed message."""

    def __init__(self) -> None:
        self.response_id: str | None = None
        self._held = HeldText()
        self._starts: dict[int, Any] = {}  # text blocks whose start waits for visible text
        self._patterns: dict[int, Any] = {}  # each text block's last delta, the pattern of a released rest
        self._dropped = 0

    def edit(self, event: Any) -> list[Any]:
        kind = field(event, "type")
        index = field(event, "index")
        if kind == "message_start":
            self.response_id = field(field(event, "message"), "id")
        elif kind == "content_block_start" and field(field(event, "content_block"), "type") == "text":
            block = field(event, "content_block")
            self._held.open(index)
            self._starts[index] = event
            shown = self._held.feed(index, field(block, "text") or "")
            set_field(block, "text", shown)
            return self._pass(index, event) if shown else []
        elif kind == "content_block_delta" and index in self._held:
            delta = field(event, "delta")
            text = field(delta, "text")
            if field(delta, "type") == "text_delta" and isinstance(text, str):
                self._patterns[index] = event
                shown = self._held.feed(index, text)
                set_field(delta, "text", shown)
                return self._pass(index, event) if shown else []
        elif kind == "content_block_stop" and index in self._held:
            released = self._release(index, self._held.close(index))
            parsed = self._held.parsed(index)
            if index in self._starts and parsed is not None and parsed.blocks:
                del self._starts[index]  # nothing of it was visible: the block goes
                self._dropped += 1
                return []
            return released + self._pass(index, event)
        return [event] if index is None else self._pass(index, event)

    def finish(self) -> tuple[list[Any], ParsedAnswer | None]:
        released = [e for index, rest in self._held.close_all().items() for e in self._release(index, rest)]
        return released, self._held.whole()

    def _pass(self, index: int, event: Any) -> list[Any]:
        """``event`` renumbered past the dropped blocks, after its block's start if that waited."""
        start = self._starts.pop(index, None)
        events = [event] if start is None or start is event else [start, event]
        for each in events:
            set_field(each, "index", index - self._dropped)
        return events

    def _release(self, index: int, rest: str) -> list[Any]:
        if not rest:
            return []
        if index not in self._patterns:  # all its text came with its start (the API sends it empty)
            start = self._starts.get(index)
            if start is None:
                log.warning("could not release %d characters of a text block's end", len(rest))
                return []
            block = field(start, "content_block")
            set_field(block, "text", field(block, "text") + rest)
            return self._pass(index, start)
        event = copy.deepcopy(self._patterns[index])
        set_field(field(event, "delta"), "text", rest)
        return self._pass(index, event)
