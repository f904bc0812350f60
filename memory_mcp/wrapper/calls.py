"""One wrapped resource (``client.chat.completions``, ``client.messages``, ``client.responses``):
its ``create`` and, where the client has one, its ``stream`` helper go through the memory steps.

Each call: recall the memories relevant to the user's last words, add them (as fenced data) and
the extraction instruction to the system text, call the client, remove the ``<memory>`` block
from the answer, and store what it held. The surface adapter knows where each of these lives in
its API; everything else is the same for all. Anything else on the resource is passed through.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..extraction.parser import ParsedAnswer
from ..memory.sync import SyncHierarchicalMemory
from . import steps
from .conversation import field
from .streams import AsyncMemoryStream, MemoryStream
from .surfaces import Surface


def is_async(create: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(inspect.unwrap(create))


class RememberingResource:
    """The client's resource with ``create`` (and ``stream``) remembering; the rest is its own."""

    def __init__(
        self, surface: Surface, resource: Any, memory: SyncHierarchicalMemory, at: steps.Position, top_k: int
    ) -> None:
        self._surface = surface
        self._resource = resource
        self._create = resource.create
        self._memory = memory
        self._at = at
        self._top_k = top_k
        self._is_async = is_async(self._create)
        self.create = self._acreate if self._is_async else self._create_sync
        if callable(getattr(resource, "stream", None)):
            self.stream = self._astream if self._is_async else self._stream_sync

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resource, name)

    def _create_sync(self, *args: Any, **kwargs: Any) -> Any:
        sent, recalled = self._prepare(kwargs)
        response = self._create(*args, **sent)
        return response if recalled is None else self._answered(response, recalled, kwargs)

    async def _acreate(self, *args: Any, **kwargs: Any) -> Any:
        sent, recalled = await self._aprepare(kwargs)
        response = await self._create(*args, **sent)
        return response if recalled is None else self._answered(response, recalled, kwargs)

    def _prepare(self, request: dict[str, Any]) -> tuple[dict[str, Any], steps.Recalled | None]:
        """The arguments to send, with the memories and the instruction added; the request as it
        is (and None) when it is not a call the surface understands: the client answers it."""
        query = self._surface.query(request)
        if query is None:
            return request, None
        recalled = self._memory.run(steps.recall(self._memory.engine, self._at, query, self._top_k))
        return self._surface.with_note(request, recalled.note), recalled

    async def _aprepare(self, request: dict[str, Any]) -> tuple[dict[str, Any], steps.Recalled | None]:
        query = self._surface.query(request)
        if query is None:
            return request, None
        recalled = await self._memory.arun(steps.recall(self._memory.engine, self._at, query, self._top_k))
        return self._surface.with_note(request, recalled.note), recalled

    def _stream_sync(self, *args: Any, **kwargs: Any) -> StreamManager:
        return StreamManager(self, args, kwargs)

    def _astream(self, *args: Any, **kwargs: Any) -> AsyncStreamManager:
        return AsyncStreamManager(self, args, kwargs)

    def _answered(self, response: Any, recalled: steps.Recalled, request: dict[str, Any]) -> Any:
        """The client's own response, with the block removed now (or as it streams)."""
        if request.get("stream"):
            return self._edited(response, recalled, request)
        parsed = self._surface.clean(response)
        if parsed is not None:
            self._remember(parsed, field(response, "id"), recalled, request)
        return response

    def _edited(self, stream: Any, recalled: steps.Recalled, request: dict[str, Any]) -> Any:
        """The client's event stream, edited as it goes; what it asked to remember is stored at its end."""
        kind = AsyncMemoryStream if self._is_async else MemoryStream
        return kind(stream, self._surface.editor(),
                    lambda parsed, response_id: self._remember(parsed, response_id, recalled, request))

    def _remember(
        self, parsed: ParsedAnswer, response_id: str | None, recalled: steps.Recalled, request: dict[str, Any]
    ) -> None:
        if parsed.memories:
            provenance = {"source": "with_memory", "model": str(request.get("model")), "response_id": response_id}
            self._memory.spawn(steps.store(self._memory.engine, self._at, parsed, recalled.labels, provenance))


def _read_through(stream: Any, resource: RememberingResource, recalled: steps.Recalled,
                  request: dict[str, Any]) -> None:
    """Make the SDK's stream helper (``MessageStream``, ``ResponseStream``, ``ChatCompletionStream``)
    read the edited event stream: it reads ``_raw_stream`` lazily, on its first event, and builds
    its text events and final message from what it reads, so they show the edited text too."""
    raw = getattr(stream, "_raw_stream", None)
    if raw is None:
        raise TypeError(
            f"with_memory cannot wrap .stream(...) of {type(resource._resource).__name__}: its stream "
            f"({type(stream).__name__}) has no _raw_stream to edit. Use create(..., stream=True) instead."
        )
    stream._raw_stream = resource._edited(raw, recalled, request)


class StreamManager:
    """What ``resource.stream(...)`` returns: entering it recalls, then enters the client's own
    manager and hands back the client's own stream object, reading the edited events."""

    def __init__(self, resource: RememberingResource, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._owner = resource
        self._args = args
        self._kwargs = kwargs
        self._manager: Any = None

    def __enter__(self) -> Any:
        sent, recalled = self._owner._prepare(self._kwargs)
        self._manager = self._owner._resource.stream(*self._args, **sent)
        stream = self._manager.__enter__()
        if recalled is not None:
            try:
                _read_through(stream, self._owner, recalled, self._kwargs)
            except BaseException:
                self._manager.__exit__(None, None, None)
                raise
        return stream

    def __exit__(self, *exc: Any) -> Any:
        return self._manager.__exit__(*exc) if self._manager is not None else None


class AsyncStreamManager:
    """``async with resource.stream(...) as stream``: the same for the async clients."""

    def __init__(self, resource: RememberingResource, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._owner = resource
        self._args = args
        self._kwargs = kwargs
        self._manager: Any = None

    async def __aenter__(self) -> Any:
        sent, recalled = await self._owner._aprepare(self._kwargs)
        self._manager = self._owner._resource.stream(*self._args, **sent)
        stream = await self._manager.__aenter__()
        if recalled is not None:
            try:
                _read_through(stream, self._owner, recalled, self._kwargs)
            except BaseException:
                await self._manager.__aexit__(None, None, None)
                raise
        return stream

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._manager.__aexit__(*exc) if self._manager is not None else None
