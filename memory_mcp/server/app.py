"""The MCP server: memory tools, resources and prompts over the core engine.

Each tool is a few lines over one ``HierarchicalMemory`` call; the rules live in the core. The
engine opens at once and loads its embedding model in the background, so the server answers
``initialize`` and ``tools/list`` without waiting for the model; until it is ready, recall
answers from full text (and says so), and writes are embedded as soon as it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar

from mcp import MCPError
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp_types import INVALID_PARAMS, CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from ..errors import MemoryMCPError
from ..extraction.template import EXTRACTION_INSTRUCTION, render_memory_context
from ..memory.engine import HierarchicalMemory
from ..memory.models import MemoryCategory, MemoryStats
from ..memory.validation import clip
from .auth import TokenFile
from .schemas import ForgetOut, HistoryOut, Hit, ListOut, MemoryOut, SearchOut
from .settings import ServerSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

Category = Literal[tuple(c.value for c in MemoryCategory)]  # type: ignore[valid-type]
Mode = Literal["hybrid", "semantic", "text"]
Id = Annotated[str | None, Field(max_length=256)]

_READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
_DELETE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)


class EngineHolder:
    """One engine per server process, shared by every connection, opened by the first user of it
    and closed by the last. The MCP lifespan is one user (SSE enters it once per connection); the
    SSE transport also holds it for the whole process (see ``cli.serve``), so that a new connection
    finds the engine open instead of loading it again."""

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.engine: HierarchicalMemory | None = None
        self._users = 0
        self._lock = asyncio.Lock()  # two connections arriving together must not open two engines

    @asynccontextmanager
    async def use(self) -> AsyncIterator[EngineHolder]:
        async with self._lock:
            if self.engine is None:
                config = self.settings.model_copy(update={"background_embedding": True})
                self.engine = await HierarchicalMemory.create(config)
                log.info("memory database: %s", self.engine.store.location)
            self._users += 1
        try:
            yield self
        finally:
            async with self._lock:
                self._users -= 1
                if self._users == 0 and self.engine is not None:
                    engine, self.engine = self.engine, None
                    await engine.close()

    def user(self, user_id: str | None) -> str:
        """The user a call acts for: with a bearer token, the token's user and no other; without,
        the named user or the default one."""
        token = get_access_token()
        if token is None:
            return user_id or self.settings.user_id
        owner = token.subject or token.client_id
        if user_id is not None and user_id != owner:
            raise ToolError(f"user_id {user_id!r} is not this token's user: a token acts for its own user only")
        return owner

    def owner(self) -> str | None:
        """The token's user when the caller authenticated, else None (any user of the database)."""
        token = get_access_token()
        return None if token is None else token.subject or token.client_id


def _holder(ctx: Context) -> EngineHolder:
    holder: EngineHolder = ctx.request_context.lifespan_context
    return holder


async def _call(work: Awaitable[T]) -> T:
    """Run a core call; the package's errors become tool errors whose text says what was wrong."""
    try:
        return await work
    except MemoryMCPError as exc:
        raise ToolError(str(exc)) from None


def _result(model: Any, text: str) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json", exclude_none=True),
    )


def _line(m: MemoryOut) -> str:
    """One memory as text, with the day it became true (what a "when" question needs)."""
    when = "" if m.valid_until is None else f", superseded {m.valid_until:%Y-%m-%d}"
    return f"[{m.category}/{m.scope}] {m.content} ({m.valid_from:%Y-%m-%d}, id {m.id}{when})"


def _hits_text(out: SearchOut, status: str) -> str:
    if not out.results:
        text = "No matching memories."
    else:
        text = "\n".join(f"{i}. {_line(h)} score {h.score:.3f}" for i, h in enumerate(out.results, 1))
    if out.semantic_ready:
        return text
    why = "still loading" if status == "loading" else f"not available ({clip(status, 200, plain=True)})"
    return text + f"\n(embedding model {why}: full-text matches only)"


def compact_schema(node: Any) -> Any:
    """A JSON schema without what costs context and tells a model nothing: titles, ``null``
    alternatives of optional fields (absent is the way to say none) and ``default: null``."""
    if isinstance(node, list):
        return [compact_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    options = node.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        merged = {k: v for k, v in node.items() if k != "anyOf"}
        merged.update(next(o for o in options if o != {"type": "null"}))
        node = merged
    out = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str) or key == "default" and value is None:
            continue
        # "properties" maps names to schemas: a property may itself be called "title".
        out[key] = {k: compact_schema(v) for k, v in value.items()} if key == "properties" else compact_schema(value)
    return out


class MemoryServer(MCPServer):
    """MCPServer whose ``tools/list`` answer is compacted (it is paid for in every conversation)
    and whose prompt and resource errors say what was wrong, briefly, as invalid params."""

    holder: EngineHolder  # the process's engine, set by build_server

    async def get_prompt(self, name: str, arguments: dict[str, Any] | None = None, context: Any = None) -> Any:
        # The public prompts/list view: each prompt's name and its arguments with whether required.
        prompts = {p.name: p for p in await self.list_prompts()}
        prompt = prompts.get(name)
        if prompt is None:
            known = ", ".join(prompts)
            raise MCPError(INVALID_PARAMS, f"unknown prompt {clip(name)}; the prompts are: {known}")
        expected = {a.name: a.required for a in prompt.arguments or []}
        given = set(arguments or {})
        if missing := sorted(n for n, required in expected.items() if required and n not in given):
            raise MCPError(INVALID_PARAMS, f"prompt {name!r} needs the argument(s) {', '.join(missing)}")
        if unknown := sorted(given - set(expected)):
            takes = ", ".join(expected) or "no arguments"
            raise MCPError(INVALID_PARAMS, f"prompt {name!r} has no argument {clip(unknown[0])}; it takes: {takes}")
        return await super().get_prompt(name, arguments, context)

    async def read_resource(self, uri: Any, context: Any = None) -> Any:
        try:
            return await super().read_resource(uri, context)
        except ResourceNotFoundError as exc:  # its message quotes the whole URI, however long
            raise ResourceNotFoundError(clip(str(exc), 300, plain=True)) from None

    async def list_tools(self) -> list[Any]:
        return [
            tool.model_copy(update={
                "description": " ".join((tool.description or "").split()),
                "input_schema": compact_schema(tool.input_schema),
                "output_schema": compact_schema(tool.output_schema) if tool.output_schema else None,
            })
            for tool in await super().list_tools()
        ]


def build_server(settings: ServerSettings | None = None) -> MCPServer:
    """The MCP server over a memory database (``settings`` default to the environment)."""
    settings = settings or ServerSettings()
    holder = EngineHolder(settings)

    @asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[EngineHolder]:
        async with holder.use():
            yield holder

    mcp = MemoryServer(
        "memory",
        version=_version(),
        instructions=(
            "Long-term memory of the user across conversations. Call recall before answering when past "
            "context could help; call remember when the user reveals a lasting preference, fact, goal "
            "or decision; call supersede (not remember) when a remembered fact changed."
        ),
        lifespan=lifespan,
        **_auth(settings),
    )
    mcp.holder = holder

    def engine(ctx: Context) -> HierarchicalMemory:
        held = _holder(ctx).engine
        if held is None:
            raise ToolError("the memory database is closed")
        return held

    @mcp.tool(annotations=_WRITE)
    async def remember(
        content: Annotated[str, Field(description="One self-contained fact, e.g. 'Prefers Go for backend work'")],
        ctx: Context,
        category: Category = "fact",
        importance: Annotated[float, Field(ge=0, le=1, description="High values bubble up to user scope")] = 0.5,
        session_id: Id = None,
        agent_id: Id = None,
        turn_id: Id = None,
        entity_refs: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        user_id: Id = None,
        idempotency_key: Id = None,
    ) -> Annotated[CallToolResult, MemoryOut]:
        """Store a lasting fact about the user. Without session_id it is known in every future
        conversation; with it, only in that session. Repeating a known fact reinforces it.
        Returns the memory and its id."""
        h = _holder(ctx)
        memory = await _call(engine(ctx).add(
            content, h.user(user_id), session_id, agent_id, turn_id, category, importance, entity_refs,
            metadata, idempotency_key=idempotency_key, provenance={"via": "mcp:remember"},
        ))
        out = MemoryOut.of(memory)
        return _result(out, f"Remembered: {_line(out)}")

    @mcp.tool(annotations=_READ)
    async def recall(
        query: Annotated[str, Field(description="What you need to know, in natural language")],
        ctx: Context,
        top_k: Annotated[int, Field(ge=1, le=100)] = 5,
        mode: Mode = "hybrid",
        categories: list[Category] | None = None,
        min_similarity: Annotated[float, Field(ge=-1, le=1)] = 0.0,
        include_superseded: bool = False,
        as_of: Annotated[str | None, Field(description="ISO 8601 time: what was true then")] = None,
        token_budget: Annotated[int | None, Field(ge=1)] = None,
        session_id: Id = None,
        agent_id: Id = None,
        turn_id: Id = None,
        user_id: Id = None,
    ) -> Annotated[CallToolResult, SearchOut]:
        """Find the memories most relevant to a query (semantic + full-text, fused), best first,
        as visible from the given session/agent: the user's lasting memories plus that session's."""
        h = _holder(ctx)
        mem = engine(ctx)
        results = await _call(mem.recall(
            query, h.user(user_id), session_id, agent_id, turn_id, top_k, mode=mode, categories=categories,
            min_similarity=min_similarity, include_superseded=include_superseded, as_of=as_of,
            token_budget=token_budget,
        ))
        out = SearchOut(results=[Hit.of_result(r) for r in results], semantic_ready=mem.semantic_ready)
        return _result(out, _hits_text(out, mem.semantic_status))

    @mcp.tool(annotations=_READ)
    async def search(
        query: str,
        ctx: Context,
        mode: Mode = "semantic",
        top_k: Annotated[int, Field(ge=1, le=100)] = 10,
        categories: list[Category] | None = None,
        min_similarity: Annotated[float, Field(ge=-1, le=1)] = 0.0,
        include_superseded: bool = False,
        as_of: str | None = None,
        session_id: Id = None,
        agent_id: Id = None,
        user_id: Id = None,
    ) -> Annotated[CallToolResult, SearchOut]:
        """Search memories by meaning (semantic), exact words (text) or both (hybrid), with filters.
        Unlike recall, a search does not count as use of the memories found."""
        h = _holder(ctx)
        mem = engine(ctx)
        results = await _call(mem.search(
            query, h.user(user_id), session_id, agent_id, None, top_k, mode=mode,
            min_similarity=min_similarity, categories=categories,
            include_superseded=include_superseded, as_of=as_of,
        ))
        out = SearchOut(results=[Hit.of_result(r) for r in results], semantic_ready=mem.semantic_ready)
        return _result(out, _hits_text(out, mem.semantic_status))

    @mcp.tool(annotations=_WRITE)
    async def supersede(
        memory_id: str,
        new_content: Annotated[str, Field(description="The fact as it is now")],
        ctx: Context,
        category: Category | None = None,
        importance: Annotated[float | None, Field(ge=0, le=1)] = None,
        user_id: Id = None,
        idempotency_key: Id = None,
    ) -> Annotated[CallToolResult, MemoryOut]:
        """Replace a remembered fact that changed (e.g. a new job). The old version is kept in the
        history, no longer recalled. Keeps the old scope and category unless given."""
        h = _holder(ctx)
        memory = await _call(engine(ctx).supersede(
            memory_id, new_content, user_id=h.user(user_id), category=category, importance=importance,
            idempotency_key=idempotency_key, provenance={"via": "mcp:supersede"},
        ))
        out = MemoryOut.of(memory)
        return _result(out, f"Superseded {memory_id}: {_line(out)}")

    @mcp.tool(annotations=_READ)
    async def history(memory_id: str, ctx: Context, user_id: Id = None) -> Annotated[CallToolResult, HistoryOut]:
        """Every version of a fact, oldest first, with when each was valid."""
        h = _holder(ctx)
        versions = await _call(engine(ctx).get_history(memory_id, user_id=h.user(user_id)))
        out = HistoryOut(versions=[MemoryOut.of(m) for m in versions])
        return _result(out, "\n".join(_line(v) for v in out.versions))

    @mcp.tool(annotations=_DELETE)
    async def forget(
        memory_id: str, ctx: Context, whole_history: bool = False, user_id: Id = None
    ) -> Annotated[CallToolResult, ForgetOut]:
        """Delete a memory for good (with whole_history, every version of the fact)."""
        h = _holder(ctx)
        n = await _call(engine(ctx).delete(memory_id, user_id=h.user(user_id), whole_chain=whole_history))
        return _result(ForgetOut(deleted=n), f"Forgot {n} memor{'y' if n == 1 else 'ies'}.")

    @mcp.tool(annotations=_READ)
    async def list_memories(
        ctx: Context,
        session_id: Id = None,
        agent_id: Id = None,
        include_superseded: bool = False,
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
        offset: Annotated[int, Field(ge=0)] = 0,
        user_id: Id = None,
    ) -> Annotated[CallToolResult, ListOut]:
        """List the user's memories, newest first (all sessions, or one session's), in pages."""
        h = _holder(ctx)
        page = await _call(engine(ctx).get_all(
            h.user(user_id), session_id, agent_id, include_superseded=include_superseded,
            limit=limit + 1, offset=offset,
        ))
        out = ListOut(
            memories=[MemoryOut.of(m) for m in page[:limit]],
            next_offset=offset + limit if len(page) > limit else None,
        )
        text = "\n".join(_line(m) for m in out.memories) or "No memories."
        return _result(out, text)

    @mcp.tool(annotations=_READ)
    async def memory_stats(ctx: Context, user_id: Id = None) -> Annotated[CallToolResult, MemoryStats]:
        """Counts of the user's memories: total, current, superseded, by category and scope."""
        h = _holder(ctx)
        stats = await _call(engine(ctx).stats(h.user(user_id)))
        return _result(stats, f"{stats.current} current memories ({stats.total} stored, {stats.superseded} superseded)")

    # -- resources ------------------------------------------------------------------------------

    async def _resource(ctx: Context, work: Callable[[HierarchicalMemory], Awaitable[T]]) -> T:
        try:
            return await work(engine(ctx))
        except MemoryMCPError as exc:  # unknown id or malformed argument: nothing to read there
            raise ResourceNotFoundError(str(exc)) from None

    @mcp.resource("memory://stats", mime_type="application/json")
    async def stats_resource() -> str:
        """Counts of the default user's memories."""
        async with holder.use():
            assert holder.engine is not None
            return (await holder.engine.stats(holder.user(None))).model_dump_json()

    @mcp.resource("memory://users/{user_id}/memories{?offset,limit}", mime_type="application/json")
    async def user_memories(user_id: str, ctx: Context, offset: str = "0", limit: str = "100") -> str:
        """A user's current memories, newest first; page with ?offset=&limit= (at most 500)."""
        size, start = max(1, min(_int(limit, "limit"), 500)), max(_int(offset, "offset"), 0)
        user = _holder(ctx).user(user_id)
        page = await _resource(ctx, lambda m: m.get_all(user, limit=size + 1, offset=start))
        out = ListOut(memories=[MemoryOut.of(m) for m in page[:size]],
                      next_offset=start + size if len(page) > size else None)
        return out.model_dump_json(exclude_none=True)

    # Without authentication every caller acts for whichever user it names, so a memory is
    # readable by id for any user of the database (as the README says); with it, only the
    # token's user's memories are.
    @mcp.resource("memory://memories/{memory_id}", mime_type="application/json")
    async def memory_resource(memory_id: str, ctx: Context) -> str:
        """One memory (any version) by id."""
        owner = _holder(ctx).owner()
        memory = await _resource(ctx, lambda m: m.get(memory_id, user_id=owner))
        return MemoryOut.of(memory).model_dump_json(exclude_none=True)

    @mcp.resource("memory://memories/{memory_id}/history", mime_type="application/json")
    async def history_resource(memory_id: str, ctx: Context) -> str:
        """Every version of a memory's fact, oldest first."""
        owner = _holder(ctx).owner()
        versions = await _resource(ctx, lambda m: m.get_history(memory_id, user_id=owner))
        return HistoryOut(versions=[MemoryOut.of(v) for v in versions]).model_dump_json(exclude_none=True)

    # -- prompts --------------------------------------------------------------------------------

    @mcp.prompt(description="The instruction that makes a model end its answer with a <memory> block.")
    def extract_memories() -> str:
        return EXTRACTION_INSTRUCTION

    @mcp.prompt(description="The user's memories relevant to a query, fenced as data, to prepend to a chat.")
    async def memory_context(query: str, ctx: Context, user_id: str = "", session_id: str = "", top_k: str = "5") -> str:
        # A prompt's own exceptions reach the client only as MCPError; anything else is hidden.
        try:
            results = await engine(ctx).recall(
                query, _holder(ctx).user(user_id or None), session_id or None, top_k=_int(top_k, "top_k")
            )
        except (MemoryMCPError, ToolError) as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from None
        return render_memory_context(r.memory for r in results) or "No relevant memories."

    return mcp


def _auth(settings: ServerSettings) -> dict[str, Any]:
    """Bearer-token authentication for HTTP when a tokens file is configured (stdio is the local
    user's own process and needs none)."""
    if settings.auth_tokens_file is None or settings.transport == "stdio":
        return {}
    url = f"http://{settings.host}:{settings.port}"
    return {
        "auth": AuthSettings(issuer_url=url, resource_server_url=None, required_scopes=[]),  # type: ignore[arg-type]
        "token_verifier": TokenFile(settings.auth_tokens_file),
    }


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise MCPError(INVALID_PARAMS, f"{name} must be an integer, got {clip(text)}") from None


def _version() -> str:
    from .. import __version__

    return __version__
