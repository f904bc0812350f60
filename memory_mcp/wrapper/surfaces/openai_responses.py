"""``client.responses``: OpenAI's Responses API.

The notes go into ``instructions`` (after the caller's); the answer is the ``output_text`` parts of
the output's message items, each cleaned on its own (``response.output_text`` is made from them),
their memories stored together; function calls, reasoning and other items pass through untouched.
A stream carries text in ``response.output_text.delta`` events, one held text per output part,
and then repeats the whole text in the ``.done``, ``content_part.done``, ``output_item.done`` and
``response.completed`` events, which are cleaned the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ...extraction.parser import ParsedAnswer, combine, parse_answer, split_answer
from ..conversation import field, is_list, last_user_text, set_field, with_note
from ..streams import HeldText

# The events that end a response; each holds the whole response, output included.
_ENDINGS = ("response.completed", "response.incomplete", "response.failed")


class Responses:
    path = ("responses",)
    example = "client.responses.create(model=..., input=...)"

    def query(self, request: Mapping[str, Any]) -> str | None:
        given = request.get("input")
        if isinstance(given, str):
            return given.strip()
        return last_user_text(given) if is_list(given) else None

    def with_note(self, request: Mapping[str, Any], note: str) -> dict[str, Any]:
        instructions = request.get("instructions")
        return {**request, "instructions": with_note(instructions if isinstance(instructions, str) else None, note)}

    def clean(self, response: Any) -> ParsedAnswer | None:
        answers = []
        for part in _text_parts(field(response, "output")):
            parsed = parse_answer(field(part, "text"))
            if parsed.blocks:
                set_field(part, "text", parsed.text)
            answers.append(parsed)
        return combine(answers)

    def editor(self) -> ResponsesEditor:
        return ResponsesEditor()


class ResponsesEditor:
    """Edits ``ResponseStreamEvent``s in place. Every event is passed on (an empty delta while
    text is held back), so the events' ``sequence_number``s stay as the server sent them; text
    released at a part's end comes in a copy of its last delta, with that delta's number."""

    def __init__(self) -> None:
        self.response_id: str | None = None
        self._held = HeldText()
        self._patterns: dict[tuple[int, int], Any] = {}  # each part's last delta

    def edit(self, event: Any) -> list[Any]:
        kind = field(event, "type")
        if self.response_id is None and field(event, "response") is not None:
            self.response_id = field(field(event, "response"), "id")
        if kind == "response.output_text.delta":
            key = _key(event)
            self._patterns[key] = event
            set_field(event, "delta", self._held.feed(key, field(event, "delta") or ""))
        elif kind == "response.output_text.done":
            released = self._release(_key(event), self._held.close(_key(event)))
            set_field(event, "text", _visible(field(event, "text")))
            return [*released, event]
        elif kind == "response.content_part.done":
            _clean_parts([field(event, "part")])
        elif kind == "response.output_item.done":
            _clean_parts(_text_parts([field(event, "item")]))
        elif kind in _ENDINGS:
            _clean_parts(_text_parts(field(field(event, "response"), "output")))
        return [event]

    def finish(self) -> tuple[list[Any], ParsedAnswer | None]:
        released = [e for key, rest in self._held.close_all().items() for e in self._release(key, rest)]
        return released, self._held.whole()

    def _release(self, key: tuple[int, int], rest: str) -> list[Any]:
        if not rest or key not in self._patterns:
            return []
        event = copy.deepcopy(self._patterns[key])
        set_field(event, "delta", rest)
        return [event]


def _key(event: Any) -> tuple[int, int]:
    return field(event, "output_index") or 0, field(event, "content_index") or 0


def _visible(text: Any) -> Any:
    return split_answer(text)[0] if isinstance(text, str) else text


def _text_parts(output: Any) -> Iterator[Any]:
    """The ``output_text`` parts of the message items of an output."""
    for item in output or []:
        if field(item, "type") == "message":
            for part in field(item, "content") or []:
                if field(part, "type") == "output_text" and isinstance(field(part, "text"), str):
                    yield part


def _clean_parts(parts: Iterable[Any]) -> None:
    """Remove the blocks from whole texts the stream repeats (parsed already, as it streamed)."""
    for part in parts:
        if part is not None and field(part, "type") == "output_text":
            set_field(part, "text", _visible(field(part, "text")))
