"""Streamed answers with the ``<memory>`` block held back, for every surface.

The client's stream is wrapped and each event passed on as it arrives, edited by the surface's
:class:`StreamEditor`: visible text streams at once, a block (and anything that may be the start
of one) is held back, and when the stream ends the whole answer is parsed and handed to ``on_end``
for storage. The events stay the client's own objects, so the SDKs' stream helpers
(``messages.stream(...)``, ``responses.stream(...)``) can read an edited stream in place of theirs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Iterator
from typing import Any, Protocol

from ..extraction.parser import ParsedAnswer, StreamingAnswer, combine

OnEnd = Callable[[ParsedAnswer, "str | None"], None]


class StreamEditor(Protocol):
    """How one surface's stream events carry text, and how to edit them."""

    response_id: str | None  # the id of the answer, once an event has told it

    def edit(self, event: Any) -> Iterable[Any]:
        """The events to pass on for ``event``: usually itself with its text edited; none while
        it only holds back, more when it releases what was held back."""

    def finish(self) -> tuple[list[Any], ParsedAnswer | None]:
        """The stream has ended: the events still to pass on (text held back from a stream cut
        off), and the answer to store."""


class HeldText:
    """The text of each segment of a streamed answer (a choice, a content block, an output part),
    keyed as the surface chooses, filtered through :class:`StreamingAnswer`."""

    def __init__(self) -> None:
        self._answers: dict[Hashable, StreamingAnswer] = {}
        self._parsed: dict[Hashable, ParsedAnswer] = {}

    def __contains__(self, key: Hashable) -> bool:
        return key in self._answers

    def open(self, key: Hashable) -> None:
        self._answers.setdefault(key, StreamingAnswer())

    def feed(self, key: Hashable, text: str) -> str:
        """The part of ``text`` that may be shown now."""
        return self._answers.setdefault(key, StreamingAnswer()).feed(text)

    def close(self, key: Hashable) -> str:
        """The segment is complete: the text not shown yet (its parse is kept)."""
        if key in self._parsed:
            return ""
        rest, self._parsed[key] = self._answers.setdefault(key, StreamingAnswer()).finish()
        return rest

    def closed(self, key: Hashable) -> bool:
        return key in self._parsed

    def parsed(self, key: Hashable) -> ParsedAnswer | None:
        return self._parsed.get(key)

    def close_all(self) -> dict[Hashable, str]:
        """Close every open segment; the text each still held back, where it held some."""
        rests = {key: self.close(key) for key in list(self._answers) if key not in self._parsed}
        return {key: rest for key, rest in rests.items() if rest}

    def whole(self) -> ParsedAnswer | None:
        """All segments as one answer, in the order they began."""
        return combine(self._parsed[key] for key in self._answers if key in self._parsed)


class MemoryStream:
    """Wraps the client's stream (``Stream[...]``); everything else is delegated to it."""

    def __init__(self, stream: Any, editor: StreamEditor, on_end: OnEnd) -> None:
        self._stream = stream
        self._editor = editor
        self._on_end = on_end
        self._iterator = self._events()

    def _events(self) -> Iterator[Any]:
        for event in self._stream:
            yield from self._editor.edit(event)
        rest, parsed = self._editor.finish()
        if parsed is not None:
            self._on_end(parsed, self._editor.response_id)
        yield from rest

    def __iter__(self) -> Iterator[Any]:
        return self._iterator

    def __next__(self) -> Any:
        return next(self._iterator)

    def __enter__(self) -> MemoryStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._iterator.close()
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class AsyncMemoryStream:
    """Wraps the async client's stream (``AsyncStream[...]``)."""

    def __init__(self, stream: Any, editor: StreamEditor, on_end: OnEnd) -> None:
        self._stream = stream
        self._editor = editor
        self._on_end = on_end
        self._iterator = self._events()

    async def _events(self) -> AsyncIterator[Any]:
        async for event in self._stream:
            for edited in self._editor.edit(event):
                yield edited
        rest, parsed = self._editor.finish()
        if parsed is not None:
            self._on_end(parsed, self._editor.response_id)
        for edited in rest:
            yield edited

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterator

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    async def __aenter__(self) -> AsyncMemoryStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._iterator.aclose()
        close = getattr(self._stream, "close", None)
        if close is not None:
            await close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
