"""The server as a real subprocess (``python -m memory_mcp serve``) on each transport: stdio,
streamable HTTP and SSE.

For each: list tools/resources/prompts, remember, recall (polling until the embedding model is
loaded), read a resource, get a prompt; stop the server, start it again on the same database and
recall the memory from before. Also: stdout on stdio carries nothing but JSON-RPC (checked on the raw
byte stream) while logs go to stderr; the HTTP transport refuses a foreign Origin (403) and a foreign
Host (421). Every server started here is stopped by the test or its fixture, and a teardown check
fails the test if any process mentioning the test's temp directory is still alive.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp_types import PromptReference
from support import client_session, kill_leftovers

TOOLS = {"remember", "remember_conversation", "recall", "supersede", "history", "forget", "list_memories"}
FACT = "Plays the cello in a community orchestra"
PARAPHRASE = "what musical instrument does the user play"  # no word in common with FACT
SEMANTIC_TIMEOUT_S = 240.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0


# -- process plumbing -------------------------------------------------------------------------


def server_env() -> dict[str, str]:
    """What a desktop client would pass: a minimal environment (the SDK's stdio child gets only
    HOME/PATH/... plus this), with no MEMORY_MCP_* leaking in from the test run."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH") if key in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def serve_args(db: Path, *extra: str) -> list[str]:
    return ["-m", "memory_mcp", "serve", "--db-path", str(db), "--user-id", "alice", *extra]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def no_server_outlives_the_test(tmp_path: Path) -> Iterator[None]:
    yield
    left = kill_leftovers(tmp_path, 10)
    assert not left, f"server processes still running after the test: {left}"


class Servers:
    """HTTP/SSE server subprocesses of one test; stopped at teardown if the test did not."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.procs: list[tuple[subprocess.Popen[bytes], IO[str]]] = []

    def start(
        self, transport: str, db: Path, port: int, name: str, *extra: str, env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self.tmp_path / f"{name}.stderr"
        log = log_path.open("w")
        proc = subprocess.Popen(
            [sys.executable, *serve_args(db, "--transport", transport, "--port", str(port), *extra)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**server_env(), **(env or {})},
            cwd=self.tmp_path,
        )
        self.procs.append((proc, log))
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return proc, log_path
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{name} not listening on {port} after {START_TIMEOUT_S} s"
                    ) from None
                time.sleep(0.05)

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> int:
        """Ctrl-C, as a user would; the server must be gone within STOP_TIMEOUT_S."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"server {proc.pid} still running {STOP_TIMEOUT_S} s after SIGINT") from None

    def close(self) -> None:
        for proc, log in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    held = Servers(tmp_path)
    yield held
    held.close()


session = client_session


# -- what every transport must do -------------------------------------------------------------


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def recall_semantically(client: Client, memory_id: str) -> float:
    """Poll until semantic recall is on, then check a paraphrase finds the memory; seconds waited."""
    start = time.monotonic()
    with anyio.fail_after(SEMANTIC_TIMEOUT_S):
        while True:
            out = _ok(await client.call_tool("recall", {"query": PARAPHRASE}))
            if out["semantic_ready"]:
                break
            await anyio.sleep(0.25)
    out = _ok(await client.call_tool("recall", {"query": PARAPHRASE, "mode": "semantic"}))
    assert [h["id"] for h in out["results"]][:1] == [memory_id], out
    return time.monotonic() - start


async def exercise(client: Client, label: str) -> str:
    """The whole surface once over this transport; returns the id of the memory stored."""
    listed = await client.list_tools()
    assert {t.name for t in listed.tools} == TOOLS
    size = len(listed.model_dump_json(by_alias=True, exclude_none=True).encode())
    assert size <= 7_000, f"[{label}] tools/list is {size} bytes as this client received it"
    assert [str(r.uri) for r in (await client.list_resources()).resources] == ["memory://stats"]
    assert len((await client.list_resource_templates()).resource_templates) == 4
    assert {p.name for p in (await client.list_prompts()).prompts} == {"extract_memories", "memory_context"}

    memory = _ok(await client.call_tool("remember", {"content": FACT, "category": "fact"}))
    assert memory["content"] == FACT and memory["scope"] == "user"
    # full text answers at once, loaded model or not
    out = _ok(await client.call_tool("recall", {"query": "cello orchestra"}))
    assert [h["id"] for h in out["results"]] == [memory["id"]]

    waited = await recall_semantically(client, memory["id"])
    print(f"\n[{label}] semantic recall ready after {waited:.1f} s of polling")

    read = await client.read_resource(f"memory://memories/{memory['id']}")
    assert json.loads(read.contents[0].text)["content"] == FACT
    stats = json.loads((await client.read_resource("memory://stats")).contents[0].text)
    assert stats["current"] == 1
    prompt = await client.get_prompt("memory_context", {"query": PARAPHRASE})
    text = prompt.messages[0].content.text
    assert "<memories>" in text and memory["id"] in text and FACT in text

    # Scores on 0..1, and nothing for a question about nothing stored.
    hit = _ok(await client.call_tool("recall", {"query": PARAPHRASE}))["results"][0]
    assert 0 < hit["score"] <= hit["relevance"] <= 1
    nothing = await client.call_tool("recall", {"query": "How does TCP congestion control work?"})
    assert _ok(nothing)["results"] == [] and nothing.content[0].text == "No matching memories."
    # The same fact again is reinforced, and said to be; a transcript is stored turn by turn.
    again = await client.call_tool("remember", {"content": FACT, "context": "asked about hobbies"})
    assert _ok(again)["id"] == memory["id"] and again.content[0].text.startswith("Already known, reinforced")
    turns = [{"text": "Where do you rehearse?", "speaker": "assistant", "at": "2026-03-01T18:00:00Z"},
             {"text": "In the church hall on Fridays", "speaker": "user", "at": "2026-03-01T18:01:00Z"}]
    stored = _ok(await client.call_tool("remember_conversation", {"turns": turns, "session_id": "s1"}))
    assert [m["content"] for m in stored["memories"]] == [f"{t['speaker']}: {t['text']}" for t in turns]
    sessions = await client.complete(
        PromptReference(type="ref/prompt", name="memory_context"), {"name": "session_id", "value": ""}
    )
    assert list(sessions.completion.values) == ["s1"]
    for m in stored["memories"]:
        _ok(await client.call_tool("forget", {"memory_id": m["id"]}))
    return str(memory["id"])


async def recall_after_restart(client: Client, memory_id: str, label: str) -> None:
    out = _ok(await client.call_tool("recall", {"query": "cello"}))
    assert memory_id in [h["id"] for h in out["results"]], f"[{label}] memory gone after restart: {out}"
    listed = _ok(await client.call_tool("list_memories", {}))
    assert [m["id"] for m in listed["memories"]] == [memory_id]
    waited = await recall_semantically(client, memory_id)
    print(f"[{label}] after restart: semantic recall ready after {waited:.1f} s")


# -- stdio ------------------------------------------------------------------------------------


async def test_stdio_end_to_end_and_restart(tmp_path: Path) -> None:
    db = tmp_path / "stdio.db"
    params = StdioServerParameters(
        command=sys.executable, args=serve_args(db), env=server_env(), cwd=str(tmp_path)
    )

    with (tmp_path / "stdio-1.stderr").open("w") as errlog:
        started = time.perf_counter()
        async with session(stdio_client(params, errlog=errlog)) as client:
            tools = await client.list_tools()
            first_answer = time.perf_counter() - started
            print(
                f"\nstdio: process start to first tools/list answer: {first_answer:.2f} s"
                f" ({len(tools.tools)} tools)"
            )
            memory_id = await exercise(client, "stdio")
    first_log = (tmp_path / "stdio-1.stderr").read_text()
    assert "memory database:" in first_log, first_log  # logs went to stderr

    with (tmp_path / "stdio-2.stderr").open("w") as errlog:
        async with session(stdio_client(params, errlog=errlog)) as client:
            await recall_after_restart(client, memory_id, "stdio")


def _reader(stream: IO[bytes], into: queue.Queue[bytes | None]) -> None:
    for line in iter(stream.readline, b""):
        into.put(line)
    into.put(None)


def test_stdio_stdout_carries_only_json_rpc_and_logs_go_to_stderr(tmp_path: Path) -> None:
    """Speak JSON-RPC to the server by hand, through model loading and shutdown, and check every byte
    it wrote to stdout: each line one JSON-RPC 2.0 message, nothing else."""
    db = tmp_path / "raw.db"
    stderr_path = tmp_path / "raw.stderr"
    lines: queue.Queue[bytes | None] = queue.Queue()
    seen: list[bytes] = []
    with stderr_path.open("w") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, *serve_args(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=server_env(),
            cwd=tmp_path,
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
            next_id = 0

            def send(method: str, params: dict[str, Any] | None = None, notify: bool = False) -> int:
                nonlocal next_id
                message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
                if params is not None:
                    message["params"] = params
                if not notify:
                    next_id += 1
                    message["id"] = next_id
                assert proc.stdin is not None
                proc.stdin.write(json.dumps(message).encode() + b"\n")
                proc.stdin.flush()
                return next_id

            def answer(request_id: int, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
                deadline = time.monotonic() + timeout
                while True:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                    assert line is not None, "server closed stdout"
                    seen.append(line)
                    message = json.loads(line)  # anything but JSON fails here
                    if message.get("id") == request_id:
                        assert "error" not in message, message
                        return dict(message["result"])

            init = answer(
                send(
                    "initialize",
                    {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "raw-test", "version": "0"},
                    },
                )
            )
            assert init["serverInfo"]["name"] == "memory"
            send("notifications/initialized", notify=True)
            request = send("tools/list")
            tools = answer(request)
            print(
                f"\nraw stdio: process start to tools/list answer: {time.perf_counter() - started:.2f} s;"
                f" tools/list line on the wire: {len(seen[-1])} bytes"
            )
            assert {t["name"] for t in tools["tools"]} == TOOLS

            stored = answer(send("tools/call", {"name": "remember", "arguments": {"content": FACT}}))
            memory_id = stored["structuredContent"]["id"]
            deadline = time.monotonic() + SEMANTIC_TIMEOUT_S
            while True:  # through model loading: the phase most likely to print something
                out = answer(send("tools/call", {"name": "recall", "arguments": {"query": PARAPHRASE}}))
                if out["structuredContent"]["semantic_ready"]:
                    break
                assert time.monotonic() < deadline, "model never loaded"
                time.sleep(0.25)
            assert out["structuredContent"]["results"][0]["id"] == memory_id
            answer(send("resources/read", {"uri": "memory://stats"}))
            answer(send("prompts/get", {"name": "memory_context", "arguments": {"query": PARAPHRASE}}))
            bad = send("tools/call", {"name": "remember", "arguments": {"content": ""}})
            assert answer(bad)["isError"] is True

            proc.stdin.close()  # end of session: the server must exit on its own
            returncode = proc.wait(STOP_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)

    for line in seen:
        assert line.endswith(b"\n"), line
        message = json.loads(line)
        assert message.get("jsonrpc") == "2.0" and ("id" in message or "method" in message), line
    assert len(seen) >= 7  # an answer to each request (a recall made while the model loads waits for it)
    log = stderr_path.read_text()
    assert "memory database:" in log and "loaded embedding model" in log, log
    assert returncode == 0, f"exit status {returncode} after stdin closed\n{log[-3000:]}"


# -- streamable HTTP --------------------------------------------------------------------------


_INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def _sse_data(body: str) -> dict[str, Any]:
    data = [line[len("data:") :].strip() for line in body.splitlines() if line.startswith("data:")]
    assert data, body
    return dict(json.loads(data[-1]))


def _raw_http_checks(port: int) -> None:
    url = f"http://127.0.0.1:{port}/mcp"
    with httpx.Client(timeout=30) as http:
        good = http.post(url, json=_INIT, headers=_HEADERS)
        assert good.status_code == 200, good.text
        assert _sse_data(good.text)["result"]["serverInfo"]["name"] == "memory"

        for origin in (f"http://localhost:{port}", f"http://127.0.0.1:{port}"):
            assert http.post(url, json=_INIT, headers={**_HEADERS, "Origin": origin}).status_code == 200, (
                origin
            )

        for origin in ("http://evil.example", "https://evil.example", "null", f"http://evil.example:{port}"):
            evil = http.post(url, json=_INIT, headers={**_HEADERS, "Origin": origin})
            assert evil.status_code == 403, (origin, evil.status_code, evil.text)
        for host in ("evil.example", f"evil.example:{port}", "attacker.localhost.example"):
            rebound = http.post(url, json=_INIT, headers={**_HEADERS, "Host": host})
            assert rebound.status_code == 421, (host, rebound.status_code, rebound.text)

        # tools/list as it goes over the wire
        session_id = good.headers["mcp-session-id"]
        headers = {**_HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": "2025-11-25"}
        assert (
            http.post(
                url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
            ).status_code
            == 202
        )
        listed = http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers)
        assert listed.status_code == 200
        message = _sse_data(listed.text)
        assert {t["name"] for t in message["result"]["tools"]} == TOOLS
        wire = len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode())
        print(f"\nhttp: tools/list JSON-RPC message: {wire} bytes")


async def test_streamable_http_end_to_end_security_and_restart(tmp_path: Path, servers: Servers) -> None:
    db = tmp_path / "http.db"
    port = free_port()
    proc, log = servers.start("http", db, port, "http-1")
    url = f"http://127.0.0.1:{port}/mcp"
    async with session(url) as client:
        memory_id = await exercise(client, "http")
    _raw_http_checks(port)
    # a second connection to the same process sees the memory
    async with session(url) as client:
        assert [m["id"] for m in _ok(await client.call_tool("list_memories", {}))["memories"]] == [memory_id]
    servers.stop(proc)
    text = log.read_text()
    assert "Application shutdown complete" in text, text[-3000:]  # lifespan closed the engine
    assert "Invalid Origin header" in text and "Invalid Host header" in text

    proc, _ = servers.start("http", db, port, "http-2")
    async with session(url) as client:
        await recall_after_restart(client, memory_id, "http")
    servers.stop(proc)


# -- SSE --------------------------------------------------------------------------------------


async def test_sse_end_to_end_and_restart(tmp_path: Path, servers: Servers) -> None:
    db = tmp_path / "sse.db"
    port = free_port()
    proc, log = servers.start("sse", db, port, "sse-1")
    url = f"http://127.0.0.1:{port}/sse"
    async with session(sse_client(url)) as client:
        memory_id = await exercise(client, "sse")
    # SSE enters the server lifespan per connection; the engine stays open for the process, so a
    # new connection finds it ready instead of loading the database and the model again.
    async with session(sse_client(url)) as client:
        assert [m["id"] for m in _ok(await client.call_tool("list_memories", {}))["memories"]] == [memory_id]
        stats = json.loads((await client.read_resource("memory://stats")).contents[0].text)
        assert stats["current"] == 1
        assert (await client.call_tool("recall", {"query": "x"})).structured_content["semantic_ready"]
    assert log.read_text().count("memory database:") == 1, log.read_text()[-3000:]
    # One connection per request: after refusing, the SDK's SSE endpoint raises and the connection
    # is dropped, so a pooled keep-alive connection would be reset.
    evil = httpx.get(
        url, headers={"Origin": "http://evil.example", "Accept": "text/event-stream"}, timeout=10
    )
    assert evil.status_code == 403, evil.text
    rebound = httpx.get(url, headers={"Host": "evil.example", "Accept": "text/event-stream"}, timeout=10)
    assert rebound.status_code == 421, rebound.text
    posted = httpx.post(
        f"http://127.0.0.1:{port}/messages/?session_id=0",
        json={},
        timeout=10,
        headers={"Origin": "http://evil.example"},
    )
    assert posted.status_code == 403, posted.text
    servers.stop(proc)
    assert "Application shutdown complete" in log.read_text()

    proc, _ = servers.start("sse", db, port, "sse-2")
    async with session(sse_client(url)) as client:
        await recall_after_restart(client, memory_id, "sse")
    servers.stop(proc)
