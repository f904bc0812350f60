"""The MCP server: memory tools, resources and prompts over the core engine.

Each tool is a few lines over one ``HierarchicalMemory`` call; the rules live in the core. The
engine opens at once and loads its embedding model in the background, so the server answers
``initialize`` and ``tools/list`` without waiting for the model; until it is ready, recall
answers from full text (and says so), and writes are embedded as soon as it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar

from mcp import MCPError
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError, UnexpectedToolError
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    Completion,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    TextContent,
    ToolAnnotations,
    UnsubscribeRequestParams,
)
from pydantic import Field, ValidationError

from ..errors import MemoryMCPError
from ..extraction.template import EXTRACTION_INSTRUCTION, render_memory_context
from ..memory.engine import HierarchicalMemory
from ..memory.models import MemoryCategory
from ..memory.validation import clip
from .auth import TokenFile
from .completions import complete
from .live import LiveUpdates
from .schemas import ForgetOut, HistoryOut, Hit, ListOut, MemoryOut, SearchOut, Turn, conversation_turns
from .settings import ServerSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

# What every tool's arguments mean, said once: tools/list is paid for in every conversation, so
# each description is the few words a model acts on (docs/mcp.md says the rest).
CategoryName = Literal[tuple(c.value for c in MemoryCategory)]  # type: ignore[valid-type]
Category = Annotated[CategoryName, Field(description="Kind of memory")]
Categories = Annotated[list[CategoryName] | None, Field(description="Only these kinds")]
Mode = Annotated[Literal["hybrid", "semantic", "text"], Field(description="By meaning and words, meaning only, or words only")]
UserId = Annotated[str | None, Field(description="Whose memory; omit for this server's user")]
WriteSession = Annotated[str | None, Field(description="Only for facts of this conversation alone; omit for lasting facts")]
ReadSession = Annotated[str | None, Field(description="Also see this session's memories")]
AgentId = Annotated[str | None, Field(description="Keeps memories apart per assistant; omit to share")]
TurnId = Annotated[str | None, Field(description="The message it came from")]
MemoryId = Annotated[str, Field(description="An id given by remember, recall or list_memories")]
Key = Annotated[str | None, Field(description="Retrying with the same key stores nothing twice")]
Importance = Annotated[float, Field(ge=0, le=1, description="0-1; high (0.85+) makes a session memory lasting")]
TopK = Annotated[int, Field(ge=1, le=100, description="At most this many results")]
MinRelevance = Annotated[float | None, Field(
    ge=0, le=1, description="Leave out matches less relevant than this, 0 to 1 (default: the server's floor)"
)]
AsOf = Annotated[str | None, Field(description="ISO 8601 time: what was true then")]
Superseded = Annotated[bool, Field(description="Also past versions of changed facts")]

# Only the hints that differ from the protocol's defaults (not read-only, destructive, not
# idempotent, open world); the destructive and idempotent hints mean nothing for a read-only tool.
_READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_WRITE = ToolAnnotations(destructive_hint=False, open_world_hint=False)
_DELETE = ToolAnnotations(idempotent_hint=True, open_world_hint=False)


class EngineHolder:
    """One engine per server process, shared by every connection, opened by the first user of it
    and closed by the last. The MCP lifespan is one user (SSE enters it once per connection); the
    SSE transport also holds it for the whole process (see ``cli.serve``), so that a new connection
    finds the engine open instead of loading it again."""

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.engine: HierarchicalMemory | None = None
        # Runs for as long as the engine is open (the live updates' follower of the change feed).
        self.follower: Callable[[HierarchicalMemory], Awaitable[None]] | None = None
        self._following: asyncio.Task[None] | None = None
        self._users = 0
        self._lock = asyncio.Lock()  # two connections arriving together must not open two engines

    @asynccontextmanager
    async def use(self) -> AsyncIterator[EngineHolder]:
        async with self._lock:
            if self.engine is None:
                config = self.settings.model_copy(update={"background_embedding": True})
                self.engine = await HierarchicalMemory.create(config)
                log.info("memory database: %s", self.engine.store.location)
                if self.follower is not None:
                    self._following = asyncio.create_task(self.follower(self.engine))
            self._users += 1
        try:
            yield self
        finally:
            async with self._lock:
                self._users -= 1
                if self._users == 0 and self.engine is not None:
                    engine, self.engine = self.engine, None
                    if self._following is not None:
                        self._following.cancel()
                        await asyncio.gather(self._following, return_exceptions=True)
                        self._following = None
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

    async def user_of(self, memory_id: str, user_id: str | None) -> str:
        """The user a call by memory id acts for. Without authentication and without ``user_id``,
        the memory's own user: any caller may name any user there anyway, and a model that stored a
        memory for "bob" and then corrects it by id should not be told that it does not exist."""
        if user_id is not None or get_access_token() is not None or self.engine is None:
            return self.user(user_id)
        try:
            return (await self.engine.get(memory_id)).user_id
        except MemoryMCPError:  # unknown or malformed id: the call itself says so
            return self.user(None)

    def whose(self, user: str) -> str:
        """`` for user "bob"`` when calls naming no user would not see this user's memories (the
        default user is another and no token fixes the user), else nothing: a model that stored a
        fact for "John" learns where it went."""
        if get_access_token() is not None or user == self.settings.user_id:
            return ""
        return f" for user {_quoted(user)} (calls without user_id act for {_quoted(self.settings.user_id)})"

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


_PLAIN_ID = re.compile(r"[\w.:@-]+")


def _quoted(text: str) -> str:
    """Stored text as a JSON string: on one line, quoted, so that it cannot pose as more results
    or as instructions of the answer around it."""
    return json.dumps(text, ensure_ascii=False)


def _line(m: MemoryOut) -> str:
    """One memory as text, with the day it became true (what a "when" question needs). Its content
    is quoted, and so is an id that is not plain (an imported id is free text)."""
    when = "" if m.valid_until is None else f", superseded {m.valid_until:%Y-%m-%d}"
    shown_id = m.id if _PLAIN_ID.fullmatch(m.id) else _quoted(m.id)
    return f"[{m.category}/{m.scope}] {_quoted(m.content)} ({m.valid_from:%Y-%m-%d}, id {shown_id}{when})"


def _hits_text(out: SearchOut, status: str) -> str:
    if not out.results:
        text = "No matching memories."
    else:
        text = "\n".join(f"{i}. {_line(h)} score {h.score:.3f}" for i, h in enumerate(out.results, 1))
    if out.semantic_ready:
        return text
    why = "still loading" if status == "loading" else f"not available ({clip(status, 200, plain=True)})"
    return text + f"\n(embedding model {why}: full-text matches only)"


_SAYS = (("Input should be", "must be"), ("List should have", "must have"), ("Field required", "is required"),
         ("Extra inputs are not permitted", "is not allowed here"), ("Value error, ", ""))


def argument_errors(exc: ValidationError) -> str:
    """Each rejected argument by its name (``turns[0].text``), what it must be and what it was,
    without pydantic's model names, error codes and links."""
    lines = []
    for error in exc.errors(include_url=False):
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
        message = error["msg"]
        for theirs, ours in _SAYS:
            message = message.replace(theirs, ours)
        message = message.removesuffix(" after validation, not 0")
        got = "" if error["type"] == "missing" else f" (got {_shown(error['input'])})"
        lines.append(f"{where or 'arguments'} {message}{got}")
    return "; ".join(lines)


def _shown(value: Any) -> str:
    """A rejected value as an error shows it: a scalar as written, cut short; a container by its
    kind (its repr may be huge, or nested deeper than repr can go)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    return clip(value)


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
    """MCPServer whose ``tools/list`` answer is compacted (it is paid for in every conversation:
    no titles, no null alternatives, no output schemas)
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

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        # An argument the tool does not take is named, not ignored: a model that misspelt one
        # would otherwise never learn that it had no effect.
        tool = self._tool_manager.get_tool(name)
        if tool is not None and (unknown := sorted(set(arguments) - set(tool.parameters.get("properties", {})))):
            takes = ", ".join(tool.parameters.get("properties", {}))
            raise ToolError(f"{name} has no argument {clip(unknown[0])}; it takes: {takes}")
        try:
            result = await super().call_tool(name, arguments, context)
            engine = self.holder.engine
            problem = getattr(engine.vector_index, "problem", None) if engine is not None else None
            if isinstance(result, CallToolResult) and problem:
                # The call worked, but the client (and the person behind it) should know what is failing.
                result.content.append(TextContent(type="text", text=f"Warning: {problem}"))
            return result
        except UnexpectedToolError:
            raise
        except ToolError as exc:  # the SDK's prefix and pydantic's report become one plain line
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(argument_errors(exc.__cause__)) from exc.__cause__
            raise ToolError(str(exc).removeprefix(f"Error executing tool {name}: ")) from exc.__cause__

    async def list_tools(self) -> list[Any]:
        return [
            tool.model_copy(update={
                "description": " ".join((tool.description or "").split()),
                "input_schema": compact_schema(tool.input_schema),
                "output_schema": None,  # see schemas.py: the answers' shapes are documented, not listed
            })
            for tool in await super().list_tools()
        ]


def build_server(settings: ServerSettings | None = None) -> MCPServer:
    """The MCP server over a memory database (``settings`` default to the environment)."""
    settings = settings or ServerSettings()
    holder = EngineHolder(settings)
    bus = InMemorySubscriptionBus()
    live = LiveUpdates(holder, bus)
    holder.follower = live.follow

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
            "or decision; call supersede (not remember) when a remembered fact changed, with the id recall "
            "gave. Ids: leave user_id out unless you serve several people, and then always pass the same "
            "one for the same person (memories stored under a user are recalled only for that user). "
            "Leave session_id out for anything worth knowing later: a memory stored with a session_id is "
            "recalled only when that same session_id is passed again, so use one only for facts of this "
            "conversation alone, the same id throughout it, never an invented one per call. agent_id keeps "
            "one assistant's memories apart from another's. A recall score runs from 0 to 1: how well the "
            "memory matches the query in meaning and in words (1: the same meaning and every word), a little "
            "lower for an unimportant or old memory; matches too weak to be related are left out, so an "
            "empty answer means nothing relevant is stored."
        ),
        lifespan=lifespan,
        subscriptions=bus,
        log_level=settings.log_level,  # the HTTP server's own lines (uvicorn's) follow --log-level too
        **_auth(settings),
    )
    mcp.holder = holder
    # Subscriptions whose URIs are checked, in both protocol eras (see live.py). MCPServer has no
    # public way to register these handlers; its own completion() decorator does the same.
    lowlevel = mcp._lowlevel_server
    lowlevel.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, live.listen_handler)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, live.subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, live.unsubscribe)

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
        importance: Importance = 0.5,
        context: Annotated[str | None, Field(description=(
            "What situates it, e.g. the message it answers: searched, not stored as the fact"))] = None,
        valid_from: Annotated[str | None, Field(description="ISO 8601 time it became true; default now")] = None,
        session_id: WriteSession = None,
        agent_id: AgentId = None,
        turn_id: TurnId = None,
        entity_refs: Annotated[list[str] | None, Field(description="Names of people or things it is about")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Your own JSON, kept as given")] = None,
        user_id: UserId = None,
        idempotency_key: Key = None,
    ) -> Annotated[CallToolResult, MemoryOut]:
        """Store a lasting fact about the user. A fact already known is reinforced, not stored twice."""
        h = _holder(ctx)
        memory = await _call(engine(ctx).add(
            content, h.user(user_id), session_id, agent_id, turn_id, category, importance, entity_refs,
            metadata, idempotency_key=idempotency_key, provenance={"via": "mcp:remember"},
            valid_from=valid_from, context=context,
        ))
        out = MemoryOut.of(memory)
        whose = h.whose(memory.user_id)
        if memory.reinforcement_count:
            return _result(out, f"Already known{whose}, reinforced ({memory.reinforcement_count}x): {_line(out)}")
        return _result(out, f"Remembered{whose}: {_line(out)}")

    @mcp.tool(annotations=_WRITE)
    async def remember_conversation(
        turns: Annotated[list[Turn], Field(min_length=1, max_length=1000, description="The messages, in order")],
        ctx: Context,
        session_id: WriteSession = None,
        agent_id: AgentId = None,
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, ListOut]:
        """Store a transcript, a memory per message, each found also by the messages around it.
        Sending it again, or more of it, stores only new messages."""
        h = _holder(ctx)
        user = h.user(user_id)
        items = conversation_turns(turns, user, session_id, agent_id)
        try:
            memories = await engine(ctx).add_conversation(
                items, user_id=user, session_id=session_id, agent_id=agent_id,
                provenance={"via": "mcp:remember_conversation"},
            )
        except MemoryMCPError as exc:  # "item 2: valid_from=..." is turns[2].at to the caller
            said = re.sub(r"^item (\d+): (valid_from|content)\b",
                          lambda m: f"turns[{m[1]}].{'at' if m[2] == 'valid_from' else 'text'}", str(exc))
            raise ToolError(said) from None
        out = ListOut(memories=[MemoryOut.of(m) for m in memories])
        return _result(out, f"Remembered {len(memories)} message{'' if len(memories) == 1 else 's'}{h.whose(user)}.")

    @mcp.tool(annotations=_READ)
    async def recall(
        query: Annotated[str, Field(description="What you need to know, in plain words; naming a time (in May 2024, "
                                                 "yesterday) favours memories from then")],
        ctx: Context,
        top_k: TopK = 5,
        mode: Mode = "hybrid",
        categories: Categories = None,
        min_relevance: MinRelevance = None,
        include_superseded: Superseded = False,
        as_of: AsOf = None,
        token_budget: Annotated[int | None, Field(ge=1, description="Fit the results in this many tokens")] = None,
        session_id: ReadSession = None,
        agent_id: AgentId = None,
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, SearchOut]:
        """The memories that best answer a query, best first (the lasting ones and the session's).
        Call it before answering whenever the past could matter."""
        h = _holder(ctx)
        mem = engine(ctx)
        results = await _call(mem.recall(
            query, h.user(user_id), session_id, agent_id, None, top_k, mode=mode, categories=categories,
            min_relevance=min_relevance, include_superseded=include_superseded, as_of=as_of,
            token_budget=token_budget,
        ))
        out = SearchOut(results=[Hit.of_result(r) for r in results], semantic_ready=mem.semantic_ready)
        return _result(out, _hits_text(out, mem.semantic_status))

    @mcp.tool(annotations=_WRITE)
    async def supersede(
        memory_id: MemoryId,
        new_content: Annotated[str, Field(description="The fact as it is now")],
        ctx: Context,
        category: Annotated[Category | None, Field(description="Kind of memory; default the old one's")] = None,
        importance: Annotated[float | None, Field(ge=0, le=1, description="0-1; default the old one's")] = None,
        user_id: UserId = None,
        idempotency_key: Key = None,
    ) -> Annotated[CallToolResult, MemoryOut]:
        """Replace a remembered fact that changed (e.g. a new job). The old version stays in its
        history and is no longer recalled."""
        h = _holder(ctx)
        memory = await _call(engine(ctx).supersede(
            memory_id, new_content, user_id=await h.user_of(memory_id, user_id), category=category, importance=importance,
            idempotency_key=idempotency_key, provenance={"via": "mcp:supersede"},
        ))
        out = MemoryOut.of(memory)
        return _result(out, f"Superseded {memory_id}{h.whose(memory.user_id)}: {_line(out)}")

    @mcp.tool(annotations=_READ)
    async def history(memory_id: MemoryId, ctx: Context, user_id: UserId = None) -> Annotated[CallToolResult, HistoryOut]:
        """Every version of a fact, oldest first, with when each was valid."""
        h = _holder(ctx)
        versions = await _call(engine(ctx).get_history(memory_id, user_id=await h.user_of(memory_id, user_id)))
        out = HistoryOut(versions=[MemoryOut.of(m) for m in versions])
        return _result(out, "\n".join(_line(v) for v in out.versions))

    @mcp.tool(annotations=_DELETE)
    async def forget(
        memory_id: MemoryId,
        ctx: Context,
        whole_history: Annotated[bool, Field(description="Every version of the fact, not just this one")] = False,
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, ForgetOut]:
        """Delete a memory for good (with whole_history, every version of the fact)."""
        h = _holder(ctx)
        n = await _call(engine(ctx).delete(memory_id, user_id=await h.user_of(memory_id, user_id), whole_chain=whole_history))
        return _result(ForgetOut(deleted=n), f"Forgot {n} memor{'y' if n == 1 else 'ies'}.")

    @mcp.tool(annotations=_READ)
    async def list_memories(
        ctx: Context,
        session_id: Annotated[str | None, Field(description="Only this session's")] = None,
        agent_id: AgentId = None,
        include_superseded: Superseded = False,
        limit: Annotated[int, Field(ge=1, le=500, description="Page size")] = 50,
        offset: Annotated[int, Field(ge=0, description="The next_offset of the page before")] = 0,
        user_id: UserId = None,
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

    # -- resources ------------------------------------------------------------------------------

    async def _resource(ctx: Context, work: Callable[[HierarchicalMemory], Awaitable[T]]) -> T:
        try:
            return await work(engine(ctx))
        except MemoryMCPError as exc:  # unknown id or malformed argument: nothing to read there
            raise ResourceNotFoundError(str(exc)) from None

    def _readable(ctx: Context, user_id: str) -> str:
        """The user whose resource is read: under a token its own user only; another user's
        resource is simply not found (it is not an error of the server)."""
        try:
            return _holder(ctx).user(user_id)
        except ToolError:
            raise ResourceNotFoundError(
                f"no resource of user {clip(user_id)} for this token: a token reads its own user's resources only"
            ) from None

    @mcp.resource("memory://stats", mime_type="application/json")
    async def stats_resource() -> str:
        """Counts of the default user's memories."""
        async with holder.use():
            assert holder.engine is not None
            return (await holder.engine.stats(holder.user(None))).model_dump_json()

    @mcp.resource("memory://users/{user_id}/stats", mime_type="application/json")
    async def user_stats(user_id: str, ctx: Context) -> str:
        """Counts of a user's memories: total, current, superseded, by category and scope."""
        user = _readable(ctx, user_id)
        return (await _resource(ctx, lambda m: m.stats(user))).model_dump_json()

    @mcp.resource("memory://users/{user_id}/memories{?offset,limit}", mime_type="application/json")
    async def user_memories(user_id: str, ctx: Context, offset: str = "0", limit: str = "100") -> str:
        """A user's current memories, newest first; page with ?offset=&limit= (at most 500)."""
        size, start = max(1, min(_int(limit, "limit"), 500)), max(_int(offset, "offset"), 0)
        user = _readable(ctx, user_id)
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
    async def memory_context(
        query: Annotated[str, Field(description="What the conversation is about, in plain words")],
        ctx: Context,
        user_id: Annotated[str | None, Field(description="Whose memories; omit for this server's user")] = None,
        session_id: Annotated[str | None, Field(description="Also this session's memories")] = None,
        agent_id: Annotated[str | None, Field(description="Also this assistant's memories")] = None,
        category: Annotated[str | None, Field(description="Only memories of this kind")] = None,
        top_k: Annotated[str, Field(description="How many memories at most (default 5)")] = "5",
    ) -> str:
        # A prompt's own exceptions reach the client only as MCPError; anything else is hidden.
        # Every prompt argument is a string on the wire, and a form's empty field means "not given";
        # top_k is read here, to say what was wrong.
        try:
            results = await engine(ctx).recall(
                query, _holder(ctx).user(user_id or None), session_id or None, agent_id or None,
                top_k=_int(top_k or "5", "top_k"), categories=[category] if category else None,
            )
        except (MemoryMCPError, ToolError) as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from None
        return render_memory_context(r.memory for r in results) or "No relevant memories."

    @mcp.completion()
    async def complete_argument(ref: Any, argument: Any, context: Any) -> Completion:
        given = dict(context.arguments or {}) if context is not None else {}
        return await complete(holder, argument.name, argument.value, given)

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
