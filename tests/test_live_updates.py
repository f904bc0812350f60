"""Live updates and completions through the SDK's own client.

A client subscribed to a user's memories, to their stats or to one memory is told when it
changes, also when another server process on the same database made the change: both on the
2026-07-28 protocol (``subscriptions/listen``) and on the earlier one (``resources/subscribe``),
over stdio and streamable HTTP. Under bearer tokens a client may subscribe to, and have completed,
its own user's ids only. Completions offer the user, session and agent ids the database has seen
and the categories. The in-process tests run with the fast suite; the ones that start server
processes are marked slow.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.subscriptions import ResourceUpdated
from mcp_types import PromptReference, ResourceTemplateReference, ResourceUpdatedNotification
from support import client_session, kill_leftovers
from test_server_transports import Servers, free_port, serve_args, server_env

from memory_mcp.server import ServerSettings, build_server

MEMORIES = "memory://users/alice/memories"
EVENT_TIMEOUT_S = 30.0
USERS_TEMPLATE = ResourceTemplateReference(type="ref/resource", uri="memory://users/{user_id}/memories{?offset,limit}")
PROMPT = PromptReference(type="ref/prompt", name="memory_context")


@pytest.fixture(autouse=True)
def no_server_outlives_the_test(tmp_path: Path) -> Any:
    yield
    left = kill_leftovers(tmp_path, 10)
    assert not left, f"server processes still running after the test: {left}"


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


def stdio(db: Path, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=serve_args(db, *extra), env=server_env(), cwd=str(db.parent))


async def next_event(sub: Any) -> ResourceUpdated:
    with anyio.fail_after(EVENT_TIMEOUT_S):
        async for event in sub:
            return event
    raise AssertionError("the subscription ended without an event")


async def events_until(sub: Any, uris: set[str]) -> set[str]:
    """Events until every URI of ``uris`` was announced; all the URIs seen."""
    seen: set[str] = set()
    with anyio.fail_after(EVENT_TIMEOUT_S):
        async for event in sub:
            seen.add(event.uri)
            if uris <= seen:
                return seen
    raise AssertionError(f"the subscription ended; seen {seen}, wanted {uris}")


# -- in process -------------------------------------------------------------------------------


@asynccontextmanager
async def in_process(tmp_path: Path, **settings: Any) -> AsyncIterator[Client]:
    server = build_server(ServerSettings(db_path=tmp_path / "m.db", user_id="alice", **settings))
    async with client_session(server) as client:
        yield client


async def test_a_listener_hears_of_a_users_memories_and_of_one_memory_changing(tmp_path: Path) -> None:
    async with in_process(tmp_path) as client:
        tea = _ok(await client.call_tool("remember", {"content": "Drinks green tea"}))
        one = f"memory://memories/{tea['id']}"
        async with client.listen(resource_subscriptions=[MEMORIES, one, "memory://stats"]) as sub:
            assert set(sub.honored.resource_subscriptions or []) == {MEMORIES, one, "memory://stats"}
            await client.call_tool("remember", {"content": "Plays chess on Sundays"})
            assert await events_until(sub, {MEMORIES, "memory://stats"}) <= {MEMORIES, "memory://stats", one}
            _ok(await client.call_tool("supersede", {"memory_id": tea["id"], "new_content": "Drinks black coffee"}))
            assert one in await events_until(sub, {one})
            # Another user's writes are not this subscription's business.
            await client.call_tool("remember", {"content": "Bob sails", "user_id": "bob"})
            await client.call_tool("remember", {"content": "Keeps bees"})
            assert "memory://users/bob/memories" not in await events_until(sub, {MEMORIES})


async def test_the_feed_is_read_only_while_someone_listens_and_again_for_a_later_listener(tmp_path: Path) -> None:
    server = build_server(ServerSettings(db_path=tmp_path / "m.db", user_id="alice"))
    live = server.holder.follower.__self__  # the LiveUpdates whose follow() the engine runs
    async with client_session(server) as client:
        assert not live.listening()
        async with client.listen(resource_subscriptions=[MEMORIES]) as sub:
            assert live.listening()
            await client.call_tool("remember", {"content": "Plays chess on Sundays"})
            assert MEMORIES in await events_until(sub, {MEMORIES})
        await anyio.sleep(0.3)
        assert not live.listening()  # the stream ended: the follower waits without reading the feed
        await client.call_tool("remember", {"content": "Keeps bees on the roof"})
        async with client.listen(resource_subscriptions=[MEMORIES]) as sub:
            await client.call_tool("remember", {"content": "Rows on the lake"})
            assert MEMORIES in await events_until(sub, {MEMORIES})


@pytest.mark.parametrize("uri", ["memory://bogus", "memory://memories/no-such-id", "memory://memories/x/history",
                                 "https://example.com/"])
async def test_a_subscription_to_what_is_not_a_memory_resource_is_refused_by_name(tmp_path: Path, uri: str) -> None:
    async with in_process(tmp_path) as client:
        with pytest.raises(MCPError) as refused:
            async with client.listen(resource_subscriptions=[uri]):
                pass
        assert "subscribe" in str(refused.value) and uri[:20] in str(refused.value)


async def test_completions_offer_the_ids_seen_and_the_categories(tmp_path: Path) -> None:
    async with in_process(tmp_path) as client:
        for user, session, agent in [("alice", "trip-oslo", "planner"), ("alice", "work", "coder"),
                                     ("alfred", "gym", "coach"), ("bob", "x", "y")]:
            _ok(await client.call_tool("remember", {"content": f"{user} at {session}", "user_id": user,
                                                    "session_id": session, "agent_id": agent}))

        async def values(ref: Any, name: str, value: str, given: dict[str, str] | None = None) -> list[str]:
            out = await client.complete(ref, {"name": name, "value": value}, context_arguments=given)
            return list(out.completion.values)

        assert await values(USERS_TEMPLATE, "user_id", "al") == ["alfred", "alice"]
        assert await values(PROMPT, "user_id", "") == ["alfred", "alice", "bob"]
        assert await values(PROMPT, "session_id", "") == ["trip-oslo", "work"]  # the default user's
        assert await values(PROMPT, "session_id", "", {"user_id": "alfred"}) == ["gym"]
        assert await values(PROMPT, "agent_id", "p") == ["planner"]
        assert await values(PROMPT, "category", "p") == ["preference"]
        assert await values(PROMPT, "category", "") == ["preference", "fact", "context", "entity", "decision",
                                                         "insight"]
        assert await values(PROMPT, "query", "x") == []
        assert await values(PROMPT, "user_id", "a" * 300) == []  # longer than any id: nothing, no error


async def test_the_memory_context_prompt_describes_its_arguments_and_reads_them(tmp_path: Path) -> None:
    async with in_process(tmp_path) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        arguments = {a.name: a for a in prompts["memory_context"].arguments or []}
        assert set(arguments) == {"query", "user_id", "session_id", "agent_id", "category", "top_k"}
        assert all(a.description for a in arguments.values())
        assert [n for n, a in arguments.items() if a.required] == ["query"]
        for content, category in [("Prefers aisle seats", "preference"), ("Flies to Oslo in May", "fact"),
                                  ("Prefers window seats on trains", "preference")]:
            _ok(await client.call_tool("remember", {"content": content, "category": category}))
        text = (await client.get_prompt("memory_context", {"query": "seats", "top_k": "1"})).messages[0].content.text
        assert text.count("seats") == 1
        empty = {"user_id": "", "session_id": "", "agent_id": "", "category": "", "top_k": ""}  # a form left blank
        text = (await client.get_prompt("memory_context", {"query": "seats", **empty})).messages[0].content.text
        assert text.count("seats") == 2
        text = (await client.get_prompt(
            "memory_context", {"query": "Oslo seats", "category": "fact", "top_k": "3"})).messages[0].content.text
        assert "Oslo" in text and "seats" not in text
        for bad, says in [({"top_k": "five"}, "top_k must be an integer"), ({"top_k": "0"}, "top_k"),
                          ({"category": "mood"}, "unknown category 'mood'")]:
            with pytest.raises(MCPError, match=says):
                await client.get_prompt("memory_context", {"query": "x", **bad})


# -- server processes ---------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_stdio_listener_hears_of_a_write_by_another_server_process(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    async with client_session(stdio(db)) as listener, client_session(stdio(db)) as writer:
        seed = _ok(await writer.call_tool("remember", {"content": "Drinks green tea"}))
        one = f"memory://memories/{seed['id']}"
        async with listener.listen(resource_subscriptions=[MEMORIES, one]) as sub:
            stored = _ok(await writer.call_tool("remember", {"content": "Plays chess on Sundays"}))
            assert MEMORIES in await events_until(sub, {MEMORIES})
            page = await listener.read_resource(MEMORIES)
            assert stored["id"] in page.contents[0].text  # the change is there to read
            _ok(await writer.call_tool("forget", {"memory_id": seed["id"]}))
            assert one in await events_until(sub, {one})


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")  # the earlier protocol, on purpose
async def test_an_earlier_protocol_client_subscribes_with_resources_subscribe(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    heard: list[str] = []
    arrived = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            heard.append(message.params.uri)
            arrived.set()

    legacy = Client(stdio(db), mode="legacy", message_handler=on_message)
    async with legacy as listener, client_session(stdio(db)) as writer:
        assert listener.protocol_version < "2026-07-28"
        assert listener.session.server_capabilities.resources.subscribe is True
        await listener.subscribe_resource(MEMORIES)
        with pytest.raises(MCPError, match="subscribable"):
            await listener.subscribe_resource("memory://nothing")
        _ok(await writer.call_tool("remember", {"content": "Keeps bees on the roof"}))
        with anyio.fail_after(EVENT_TIMEOUT_S):
            await arrived.wait()
        assert MEMORIES in heard and all(uri.startswith("memory://") for uri in heard)
        await listener.unsubscribe_resource(MEMORIES)


@pytest.mark.slow
async def test_an_http_listener_under_tokens_hears_its_own_user_only(tmp_path: Path, servers: Any) -> None:
    db = tmp_path / "shared.db"
    tokens = tmp_path / "tokens"
    tokens.write_text("alice alice-secret\nbob bob-secret\n")
    port = free_port()
    servers.start("http", db, port, "http", "--auth-tokens-file", str(tokens))
    url = f"http://127.0.0.1:{port}/mcp"

    @asynccontextmanager
    async def as_user(token: str) -> AsyncIterator[Client]:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
        async with http, client_session(streamable_http_client(url, http_client=http)) as client:
            yield client

    async with as_user("alice-secret") as alice, client_session(stdio(db)) as other_process:
        with pytest.raises(MCPError, match="another user"):
            async with alice.listen(resource_subscriptions=["memory://users/bob/memories"]):
                pass
        out = await alice.complete(USERS_TEMPLATE, {"name": "user_id", "value": ""})
        assert list(out.completion.values) == ["alice"]
        async with alice.listen(resource_subscriptions=[MEMORIES, "memory://users/alice/stats"]) as sub:
            _ok(await other_process.call_tool("remember", {"content": "Bob sails", "user_id": "bob"}))
            _ok(await other_process.call_tool("remember", {"content": "Alice rows", "user_id": "alice"}))
            seen = await events_until(sub, {MEMORIES, "memory://users/alice/stats"})
            assert not any("bob" in uri for uri in seen)


@pytest.fixture
def servers(tmp_path: Path) -> Any:
    held = Servers(tmp_path)
    yield held
    held.close()
