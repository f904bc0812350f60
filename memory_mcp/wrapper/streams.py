"""Streamed answers with the ``<memory>`` block held back.

Each chunk is the client's own chunk object, passed on as it arrives with its text delta edited:
visible text streams at once, a block (and anything that may be the start of one) is held back,
and when a choice finishes, the whole answer is parsed and handed to ``on_end`` for storage.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from ..extraction.parser import ParsedAnswer, StreamingAnswer
from .conversation import field, set_field


class _Editor:
    """The chunk editing shared by the sync and async streams."""

    def __init__(self) -> None:
        self._answers: dict[int, StreamingAnswer] = {}
        self._parsed: dict[int, ParsedAnswer] = {}
        self._last_with_choices: Any = None

    def edit(self, chunk: Any) -> None:
        choices = field(chunk, "choices") or []
        if choices:
            self._last_with_choices = chunk
        for choice in choices:
            index = field(choice, "index") or 0
            delta = field(choice, "delta")
            text = field(delta, "content") if delta is not None else None
            if not isinstance(text, str) and not field(choice, "finish_reason"):
                continue
            answer = self._answers.setdefault(index, StreamingAnswer())
            shown = answer.feed(text) if isinstance(text, str) else ""
            if field(choice, "finish_reason") and index not in self._parsed:
                rest, self._parsed[index] = answer.finish()
                shown += rest
            if delta is not None and (isinstance(text, str) or shown):
                set_field(delta, "content", shown)

    def tail(self) -> Any:
        """A last chunk with the text still held back, for a stream that ended without finishing
        a choice (cut off); None when nothing is left."""
        rests = {}
        for index, answer in self._answers.items():
            if index not in self._parsed:
                rests[index], self._parsed[index] = answer.finish()
        rests = {index: rest for index, rest in rests.items() if rest}
        if not rests or self._last_with_choices is None:
            return None
        chunk = copy.deepcopy(self._last_with_choices)
        kept = [c for c in field(chunk, "choices") if (field(c, "index") or 0) in rests]
        for choice in kept:
            set_field(field(choice, "delta"), "content", rests[field(choice, "index") or 0])
            set_field(choice, "finish_reason", None)
        set_field(chunk, "choices", kept)
        return chunk if kept else None

    def end(self, on_end: Callable[[ParsedAnswer], None]) -> Any:
        """The stream is over: hand the first choice's whole answer to ``on_end``; return the last
        chunk to pass on (see :meth:`tail`), if any."""
        tail = self.tail()
        parsed = self._parsed.get(0) or next(iter(self._parsed.values()), None)
        if parsed is not None:
            on_end(parsed)
        return tail


class MemoryStream:
    """Wraps the client's stream (``Stream[ChatCompletionChunk]``); everything else is delegated."""

    def __init__(self, stream: Any, on_end: Callable[[ParsedAnswer], None]) -> None:
        self._stream = stream
        self._on_end = on_end
        self._editor = _Editor()
        self._iterator = self._chunks()

    def _chunks(self) -> Iterator[Any]:
        for chunk in self._stream:
            self._editor.edit(chunk)
            yield chunk
        if (tail := self._editor.end(self._on_end)) is not None:
            yield tail

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
    """Wraps the async client's stream (``AsyncStream[ChatCompletionChunk]``)."""

    def __init__(self, stream: Any, on_end: Callable[[ParsedAnswer], None]) -> None:
        self._stream = stream
        self._on_end = on_end
        self._editor = _Editor()
        self._iterator = self._chunks()

    async def _chunks(self) -> AsyncIterator[Any]:
        async for chunk in self._stream:
            self._editor.edit(chunk)
            yield chunk
        if (tail := self._editor.end(self._on_end)) is not None:
            yield tail

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
