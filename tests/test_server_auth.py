"""Bearer-token authentication over real streamable HTTP: each token acts for one user, always.

A real server process with a tokens file; real SDK clients sending ``Authorization: Bearer``.
With a token, the user comes from the token: naming another user is refused, and nothing of
another user is reachable through tools, resources (by id included) or prompts.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp_types import INVALID_PARAMS
from support import client_session
from test_server_transports import Servers, free_port, no_server_outlives_the_test, servers  # noqa: F401

ALICE_FACT = "Alice keeps her spare key under the blue flowerpot"


@asynccontextmanager
async def as_user(port: int, token: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    async with http, client_session(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as c:
        yield c


def add_token(tokens: Path, user: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "memory_mcp", "token", "add", user, "--auth-tokens-file", str(tokens)],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return run.stdout.strip()


def ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content


def refused(result: Any) -> str:
    assert result.is_error, result.structured_content
    return result.content[0].text


async def test_tokens_decide_the_user_and_nothing_crosses_over(tmp_path: Path, servers: Servers) -> None:
    tokens = tmp_path / "tokens"
    alice, bob = add_token(tokens, "alice"), add_token(tokens, "bob")
    assert len(alice) >= 40 and alice != bob and oct(tokens.stat().st_mode & 0o777) == "0o600"
    port = free_port()
    # The default user is someone else, so a memory can only be Alice's because of her token.
    servers.start("http", tmp_path / "auth.db", port, "auth", "--auth-tokens-file", str(tokens), "--user-id", "nobody")
    url = f"http://127.0.0.1:{port}/mcp"

    # No token, a wrong token, a malformed header: 401 before any MCP handling.
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    with httpx.Client(timeout=30) as http:
        for auth in (None, "Bearer wrong-token", f"Basic {alice}", f"Bearer {alice}x"):
            sent = {**headers, **({"Authorization": auth} if auth else {})}
            assert http.post(url, json=init, headers=sent).status_code == 401, auth
        assert http.post(url, json=init, headers={**headers, "Authorization": f"Bearer {alice}"}).status_code == 200

    async with as_user(port, alice) as client:
        mine = ok(await client.call_tool("remember", {"content": ALICE_FACT}))
        page = json.loads((await client.read_resource("memory://users/alice/memories")).contents[0].text)
        assert [m["id"] for m in page["memories"]] == [mine["id"]]
        assert ok(await client.call_tool("remember", {"content": "Alice likes tea", "user_id": "alice"}))
        message = refused(await client.call_tool("remember", {"content": "planted", "user_id": "bob"}))
        assert "not this token's user" in message
        for tool, args in [("recall", {"query": "key", "user_id": "bob"}), ("list_memories", {"user_id": "bob"}),
                           ("remember_conversation", {"turns": [{"text": "planted"}], "user_id": "bob"})]:
            assert "not this token's user" in refused(await client.call_tool(tool, args)), tool
        stats = json.loads((await client.read_resource("memory://stats")).contents[0].text)
        assert stats["current"] == 2

    async with as_user(port, bob) as client:
        assert ok(await client.call_tool("recall", {"query": "spare key flowerpot"}))["results"] == []
        assert ok(await client.call_tool("list_memories", {}))["memories"] == []
        assert json.loads((await client.read_resource("memory://users/bob/stats")).contents[0].text)["total"] == 0
        for tool, args in [("history", {"memory_id": mine["id"]}), ("forget", {"memory_id": mine["id"]}),
                           ("supersede", {"memory_id": mine["id"], "new_content": "moved"})]:
            assert "no memory with id" in refused(await client.call_tool(tool, args)), tool
        for uri in (f"memory://memories/{mine['id']}", f"memory://memories/{mine['id']}/history",
                    "memory://users/alice/memories", "memory://users/alice/stats"):
            with pytest.raises(MCPError) as refusal:
                await client.read_resource(uri)
            # a plain not-found (invalid params), not the SDK's internal error with a server traceback
            assert refusal.value.code == INVALID_PARAMS, (uri, refusal.value.code, refusal.value.message)
            assert "Error creating resource" not in refusal.value.message, uri
        assert json.loads((await client.read_resource("memory://stats")).contents[0].text)["total"] == 0
        with pytest.raises(MCPError):
            await client.get_prompt("memory_context", {"query": "key", "user_id": "alice"})
        bobs = ok(await client.call_tool("remember", {"content": "Bob plays chess"}))
        page = json.loads((await client.read_resource("memory://users/bob/memories")).contents[0].text)
        assert [m["id"] for m in page["memories"]] == [bobs["id"]]

    # Alice's memories are all still there and unchanged; a token added now works at once.
    carol = add_token(tokens, "carol")
    async with as_user(port, alice) as client:
        listed = ok(await client.call_tool("list_memories", {}))["memories"]
        assert sorted(m["content"] for m in listed) == sorted(["Alice likes tea", ALICE_FACT])
        read = json.loads((await client.read_resource(f"memory://memories/{mine['id']}")).contents[0].text)
        assert read["content"] == ALICE_FACT
    async with as_user(port, carol) as client:
        assert json.loads((await client.read_resource("memory://users/carol/stats")).contents[0].text)["total"] == 0
    assert "Traceback" not in (tmp_path / "auth.stderr").read_text()  # refusals are not server errors


def test_token_command_needs_a_file_and_a_plain_user_id(tmp_path: Path) -> None:
    env_less = subprocess.run([sys.executable, "-m", "memory_mcp", "token", "add", "alice"],
                              capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert env_less.returncode == 2 and "--auth-tokens-file" in env_less.stderr
    spaced = subprocess.run([sys.executable, "-m", "memory_mcp", "token", "add", "al ice", "--auth-tokens-file",
                             str(tmp_path / "t")], capture_output=True, text=True, timeout=120)
    assert spaced.returncode != 0 and "without spaces" in spaced.stderr and "Traceback" not in spaced.stderr
    first, second = (_token_cli(tmp_path / "t2", "add", "alice") for _ in range(2))
    assert first.stderr == "" and "alice now has 2 valid tokens" in second.stderr  # not silently a second one


def test_binding_beyond_loopback_without_auth_warns_and_with_auth_does_not(tmp_path: Path, servers: Servers) -> None:
    tokens = tmp_path / "tokens"
    add_token(tokens, "alice")
    for name, extra in (("open", ()), ("closed", ("--auth-tokens-file", str(tokens)))):
        port = free_port()
        proc, log = servers.start("http", tmp_path / f"{name}.db", port, name, "--host", "0.0.0.0", *extra)
        servers.stop(proc)
        warned = "without authentication" in log.read_text()
        assert warned == (name == "open"), log.read_text()[-2000:]


def _token_cli(tokens: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memory_mcp", "token", *args, "--auth-tokens-file", str(tokens)],
                          capture_output=True, text=True, timeout=120)


def test_token_changes_take_effect_at_the_next_request(tmp_path: Path, servers: Servers) -> None:
    tokens = tmp_path / "tokens"
    alice, bob = add_token(tokens, "alice"), add_token(tokens, "bob")
    port = free_port()
    servers.start("http", tmp_path / "rotate.db", port, "rotate", "--auth-tokens-file", str(tokens))
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}

    def status(token: str) -> int:
        headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}
        return httpx.post(f"http://127.0.0.1:{port}/mcp", json=init, headers=headers, timeout=30).status_code

    assert status(alice) == status(bob) == 200
    # Rotated by copying in a prepared file with `cp -p`: same size, same modification time.
    new_alice = secrets.token_urlsafe(32)
    prepared = tmp_path / "prepared"
    prepared.write_text(tokens.read_text().replace(alice, new_alice))
    before = tokens.stat()
    os.utime(prepared, ns=(before.st_atime_ns, before.st_mtime_ns))
    shutil.copy2(prepared, tokens)
    assert tokens.stat().st_size == before.st_size and tokens.stat().st_mtime_ns == before.st_mtime_ns
    assert (status(alice), status(new_alice)) == (401, 200)

    # A comment after a token leaves the token valid.
    tokens.write_text(f"# the team's tokens\nalice {new_alice}  # laptop\nbob {bob} # phone\n")
    assert status(new_alice) == status(bob) == 200

    listed = _token_cli(tokens, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [f"alice\t{hashlib.sha256(new_alice.encode()).hexdigest()[:12]}",
                                          f"bob\t{hashlib.sha256(bob.encode()).hexdigest()[:12]}"]
    assert alice not in listed.stdout and bob not in listed.stdout  # tokens are never shown

    assert _token_cli(tokens, "revoke", "bob").returncode == 0
    assert (status(bob), status(new_alice)) == (401, 200)
    missing = _token_cli(tokens, "revoke", "bob")
    assert missing.returncode == 1 and "no tokens of bob" in missing.stderr

    rotated = _token_cli(tokens, "rotate", "alice")
    assert rotated.returncode == 0, rotated.stderr
    assert (status(new_alice), status(rotated.stdout.strip())) == (401, 200)
    assert tokens.read_text().startswith("# the team's tokens\n")  # the file's comments are kept
    assert oct(tokens.stat().st_mode & 0o777) == "0o600"
    kept = tokens.read_text()
    tokens.unlink()  # no tokens file: no token is valid any more (fail closed)
    assert status(rotated.stdout.strip()) == 401
    tokens.write_text(kept)
    assert status(rotated.stdout.strip()) == 200


def test_one_token_cannot_lock_the_others_out(tmp_path: Path, servers: Servers) -> None:
    """Sessions and requests are bounded per token: the client over its share gets a 429 that says
    which limit, and every other client is served as before."""
    tokens = tmp_path / "tokens"
    alice, bob = add_token(tokens, "alice"), add_token(tokens, "bob")
    port = free_port()
    servers.start("http", tmp_path / "limits.db", port, "limits", "--auth-tokens-file", str(tokens),
                  "--max-sessions-per-client", "3", "--requests-per-minute", "120")
    url = f"http://127.0.0.1:{port}/mcp"
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}

    def headers(token: str, session: str | None = None) -> dict[str, str]:
        sent = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}
        return {**sent, "mcp-session-id": session} if session else sent

    with httpx.Client(timeout=30) as http:
        opened = []
        for _ in range(3):
            answer = http.post(url, json=init, headers=headers(alice))
            assert answer.status_code == 200, answer.text
            opened.append(answer.headers["mcp-session-id"])
        over = http.post(url, json=init, headers=headers(alice))
        assert over.status_code == 429
        assert "already holds 3 open sessions" in over.json()["error"]["message"]
        assert http.post(url, json=init, headers=headers(bob)).status_code == 200  # bob is not locked out
        assert http.delete(url, headers=headers(alice, opened[0])).status_code == 200  # alice closes one...
        assert http.post(url, json=init, headers=headers(alice)).status_code == 200  # ...and may open one

        # 120 a minute is a burst of 30, then 2 a second: a tight loop runs out.
        statuses = [http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                              headers=headers(alice, opened[1])).status_code for _ in range(40)]
        assert statuses[0] == 200 and statuses[-1] == 429, statuses
        refused = http.post(url, json={"jsonrpc": "2.0", "id": 3, "method": "ping"}, headers=headers(alice, opened[1]))
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "at most 120 a minute" in refused.json()["error"]["message"]
        bobs = http.post(url, json=init, headers=headers(bob)).headers["mcp-session-id"]
        assert http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                         headers=headers(bob, bobs)).status_code == 200
