"""``with_memory(client)``: long-term memory around any OpenAI-compatible chat client.

Each ``client.chat.completions.create(...)`` call goes through six steps:
inject relevant memories (as fenced data), add the extraction instruction, call the model, parse
the ``<memory>`` block out of the answer, store what it holds, and return the client's own
response object with the block removed. Everything else on the client is passed through.

Storing runs on the engine's loop while the response goes back to the caller; the next call (and
every ``client.memory`` call) waits for it first, so nothing is ever read before it is stored.
"""

from __future__ import annotations

import atexit
import inspect
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, MissingUserError
from ..extraction.parser import ParsedAnswer, parse_answer
from ..memory.config import EmbedderBackend, MemoryConfig
from ..memory.ports import MemoryFilter
from ..memory.sync import SyncHierarchicalMemory
from . import steps
from .conversation import field, set_field
from .memory_api import MemoryAPI
from .streams import AsyncMemoryStream, MemoryStream

log = logging.getLogger("memory_mcp.wrapper")

_SURFACE = "client.chat.completions.create(model=..., messages=...), as OpenAI's Python client has it"


def with_memory(
    client: Any,
    user_id: str,
    session_id: str | None = None,
    agent_id: str | None = None,
    *,
    db_path: str | Path | None = None,
    top_k: int = 5,
    embedder_backend: EmbedderBackend | str | None = None,
    config: MemoryConfig | None = None,
    memory: SyncHierarchicalMemory | None = None,
) -> MemoryClient:
    """Wrap ``client`` (``OpenAI()``, ``AsyncOpenAI()``, or anything with its chat surface) so it
    remembers across conversations. ``client.memory`` gives direct access to the memories.

    Memories live in ``db_path`` (default: the same database the MCP server uses); wrappers on
    the same database in one process share one engine. Pass ``memory`` to use your own engine.
    """
    create = _chat_create(client)
    if not isinstance(user_id, str) or not user_id.strip():
        raise MissingUserError("with_memory needs a user_id: every memory belongs to a user")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= 100:
        raise InvalidArgumentError(f"top_k must be an integer from 0 to 100, got {top_k!r}")
    if memory is None:
        overrides: dict[str, Any] = {}
        if db_path is not None:
            overrides["db_path"] = Path(db_path)
        if embedder_backend is not None:
            overrides["embedder_backend"] = EmbedderBackend(embedder_backend)
        base = config or MemoryConfig()
        memory = _shared_engine(base.model_copy(update=overrides) if overrides else base)
    at = steps.Position(user_id, session_id, agent_id)
    memory.run(memory.engine.query(MemoryFilter(**steps.ids(at), limit=1)))  # checks the ids now
    return MemoryClient(client, create, memory, at, top_k)


class MemoryClient:
    """The wrapped client: ``chat.completions.create`` remembers, ``memory`` reaches the memories,
    and every other attribute is the original client's."""

    def __init__(
        self, client: Any, create: Callable[..., Any], memory: SyncHierarchicalMemory, at: steps.Position, top_k: int
    ) -> None:
        self._client = client
        self._is_async = _is_async(create)
        self.chat = _Chat(client.chat, _Completions(client.chat.completions, create, memory, at, top_k, self._is_async))
        self.memory = MemoryAPI(memory.engine, at, memory.arun if self._is_async else memory.run)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def __repr__(self) -> str:
        return f"with_memory({self._client!r}, user_id={self.memory.user_id!r})"


class _Chat:
    def __init__(self, chat: Any, completions: _Completions) -> None:
        self._chat = chat
        self.completions = completions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chat, name)


class _Completions:
    def __init__(
        self, completions: Any, create: Callable[..., Any], memory: SyncHierarchicalMemory, at: steps.Position,
        top_k: int, is_async: bool,
    ) -> None:
        self._completions = completions
        self._create = create
        self._memory = memory
        self._at = at
        self._top_k = top_k
        self.create = self._acreate if is_async else self._create_sync

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completions, name)

    def _create_sync(self, *args: Any, **kwargs: Any) -> Any:
        messages = kwargs.get("messages")
        if messages is None:  # not a chat call we understand: the client gives its own error
            return self._create(*args, **kwargs)
        engine = self._memory.engine
        prepared = self._memory.run(steps.prepare(engine, self._at, messages, self._top_k))
        response = self._create(*args, **{**kwargs, "messages": prepared.messages})
        if kwargs.get("stream"):
            return MemoryStream(response, lambda parsed: self._memory.spawn(self._store(parsed, prepared, kwargs)))
        parsed = _clean(response)
        if parsed is not None:
            self._memory.spawn(self._store(parsed, prepared, kwargs, response))
        return response

    async def _acreate(self, *args: Any, **kwargs: Any) -> Any:
        messages = kwargs.get("messages")
        if messages is None:
            return await self._create(*args, **kwargs)
        engine = self._memory.engine
        prepared = await self._memory.arun(steps.prepare(engine, self._at, messages, self._top_k))
        response = await self._create(*args, **{**kwargs, "messages": prepared.messages})
        if kwargs.get("stream"):
            return AsyncMemoryStream(response, lambda parsed: self._memory.spawn(self._store(parsed, prepared, kwargs)))
        parsed = _clean(response)
        if parsed is not None:
            self._memory.spawn(self._store(parsed, prepared, kwargs, response))
        return response

    async def _store(
        self, parsed: ParsedAnswer, prepared: steps.Prepared, request: dict[str, Any], response: Any = None
    ) -> None:
        if not parsed.memories:
            return
        provenance = {"source": "with_memory", "model": str(request.get("model")),
                      "response_id": field(response, "id") if response is not None else None}
        await steps.store(self._memory.engine, self._at, parsed, prepared.labels, provenance)


def _clean(response: Any) -> ParsedAnswer | None:
    """Remove the blocks from every choice's text in place; the first choice's parse is stored."""
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


def _chat_create(client: Any) -> Callable[..., Any]:
    chat = getattr(client, "chat", None)
    completions = getattr(chat, "completions", None)
    create = getattr(completions, "create", None)
    if not callable(create):
        missing = "client.chat" if chat is None else "client.chat.completions" if completions is None else (
            "client.chat.completions.create"
        )
        raise TypeError(
            f"with_memory cannot wrap {type(client).__name__}: it has no {missing}. "
            f"It needs an OpenAI-compatible chat client: {_SURFACE}."
        )
    return create


def _is_async(create: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(inspect.unwrap(create))


_engines: dict[tuple[str, str, str], SyncHierarchicalMemory] = {}
_engines_lock = threading.Lock()


def _shared_engine(config: MemoryConfig) -> SyncHierarchicalMemory:
    """One engine per database (and embedder) in this process, closed when the process exits."""
    where = config.database_url or str(Path(config.db_path).expanduser().resolve())
    key = (where, str(config.embedder_backend), config.embedder_model)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = SyncHierarchicalMemory(config)
        return engine


@atexit.register
def _close_engines() -> None:
    with _engines_lock:
        while _engines:
            _, engine = _engines.popitem()
            try:
                engine.close()
            except Exception:  # the process is ending; the database is consistent either way
                log.exception("could not close a memory engine cleanly")
