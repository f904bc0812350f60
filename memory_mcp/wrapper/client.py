"""``with_memory(client)``: long-term memory around an OpenAI, Anthropic or compatible client.

Every surface the client has is wrapped: ``client.chat.completions``, ``client.messages``
(Anthropic) and ``client.responses`` (OpenAI). Each ``create(...)`` (and ``stream(...)``) call
recalls relevant memories and adds them (as fenced data) with the extraction instruction, calls
the model, removes the ``<memory>`` block from the answer and stores what it holds; the response
is the client's own object. Everything else on the client is passed through.

Storing runs on the engine's loop while the response goes back to the caller; the next call (and
every ``client.memory`` call) waits for it first, so nothing is ever read before it is stored.
"""

from __future__ import annotations

import atexit
import logging
import threading
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, MissingUserError
from ..memory.config import EmbedderBackend, MemoryConfig
from ..memory.ports import MemoryFilter
from ..memory.sync import SyncHierarchicalMemory
from . import steps
from .calls import RememberingResource
from .memory_api import MemoryAPI
from .surfaces import SURFACES, Surface

log = logging.getLogger("memory_mcp.wrapper")


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
    """Wrap ``client`` (``OpenAI()``, ``AsyncOpenAI()``, ``Anthropic()``, ``AsyncAnthropic()``, or
    anything with one of their surfaces) so it remembers across conversations.
    ``client.memory`` gives direct access to the memories.

    Memories live in ``db_path`` (default: the same database the MCP server uses); wrappers on
    the same database in one process share one engine. Pass ``memory`` to use your own engine.
    """
    surfaces = _surfaces(client)
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
    return MemoryClient(client, surfaces, memory, at, top_k)


class MemoryClient:
    """The wrapped client: ``chat.completions``, ``messages`` and ``responses`` (those the client
    has) remember, ``memory`` reaches the memories, and every other attribute is the client's."""

    def __init__(
        self, client: Any, surfaces: list[Surface], memory: SyncHierarchicalMemory, at: steps.Position, top_k: int
    ) -> None:
        self._client = client
        is_async = False
        for surface in surfaces:
            *parents, name = surface.path
            resource = RememberingResource(surface, _resolve(client, surface.path), memory, at, top_k)
            is_async = is_async or resource._is_async
            if parents:  # chat.completions: client.chat stays the client's, but for its completions
                setattr(self, parents[0], _Through(getattr(client, parents[0]), name, resource))
            else:
                setattr(self, name, resource)
        self.memory = MemoryAPI(memory.engine, at, memory.arun if is_async else memory.run)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def __repr__(self) -> str:
        return f"with_memory({self._client!r}, user_id={self.memory.user_id!r})"


class _Through:
    """A resource of the client with one of its attributes replaced."""

    def __init__(self, inner: Any, name: str, replacement: Any) -> None:
        self._inner = inner
        setattr(self, name, replacement)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _resolve(client: Any, path: tuple[str, ...]) -> Any:
    resource = client
    for name in path:
        resource = getattr(resource, name, None)
    return resource


def _first_missing(client: Any, path: tuple[str, ...]) -> str:
    """``client.chat`` when the client has no ``chat``, and so on down the path."""
    reached, named = client, "client"
    for name in path:
        reached, named = getattr(reached, name, None), f"{named}.{name}"
        if reached is None:
            break
    return named


def _surfaces(client: Any) -> list[Surface]:
    """The surfaces ``client`` has; a TypeError naming what is missing when it has none."""
    found = [s for s in SURFACES if callable(getattr(_resolve(client, s.path), "create", None))]
    if found:
        return found
    missing = [_first_missing(client, (*s.path, "create")) for s in SURFACES]
    raise TypeError(
        f"with_memory cannot wrap {type(client).__name__}: it has no {', no '.join(missing[:-1])} and no "
        f"{missing[-1]}. It needs an OpenAI, Anthropic or compatible client, with one of "
        + ", ".join(s.example for s in SURFACES) + "."
    )


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
