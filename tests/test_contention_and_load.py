"""Several clients, two server processes, one database, over real streamable HTTP.

- Two servers on one file (two assistants): what one remembers, the other recalls on its very next
  query (a stale recall is counted and must not happen), and concurrent writers never fail.
- Load: mixed remember / recall / supersede from several clients; zero errors, zero lost writes.

CI runs each for seconds; ``MEMORY_MCP_SOAK=1`` runs them for minutes (the closing note's figures).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from support import client_session
from test_server_transports import Servers, free_port, no_server_outlives_the_test, servers  # noqa: F401

SOAK = bool(os.environ.get("MEMORY_MCP_SOAK"))
SECONDS = 180.0 if SOAK else 8.0


def _nonce(rng: random.Random) -> str:
    """A token no other write shares; digits make two writes that differ only here two facts
    (paraphrases are merged unless their numbers and names differ)."""
    return f"zq{rng.randrange(10**9):09d}"


def _pcts(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    q = statistics.quantiles(values, n=100)
    return f"p50 {statistics.median(values) * 1000:.1f} ms, p95 {q[94] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms"


class Tally:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = {"remember": [], "recall": [], "supersede": []}
        self.errors: list[str] = []
        self.stale = 0
        self.acked: dict[str, str] = {}  # memory id -> content as acknowledged (current versions)

    async def call(self, client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any] | None:
        start = time.perf_counter()
        try:
            result = await client.call_tool(tool, args)
        except Exception as exc:  # a transport failure counts as an error too
            self.errors.append(f"{tool}: {type(exc).__name__}: {exc}")
            return None
        self.latency[tool].append(time.perf_counter() - start)
        if result.is_error:
            self.errors.append(f"{tool}: {result.content[0].text}")
            return None
        return result.structured_content


async def _worker(tally: Tally, writer: Client, reader: Client, seed: int, deadline: float) -> None:
    rng = random.Random(seed)
    mine: list[str] = []
    while time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.5 or not mine:
            nonce = _nonce(rng)
            content = f"Client {seed} noted {nonce} about {rng.choice(['tea', 'kites', 'jazz', 'rust', 'oslo'])}"
            stored = await tally.call(writer, "remember", {"content": content})
            if stored is None:
                continue
            tally.acked[stored["id"]] = content
            mine.append(stored["id"])
            # The other process, on its next query, must see it.
            found = await tally.call(reader, "recall", {"query": nonce, "mode": "text", "top_k": 3})
            if found is not None and stored["id"] not in [h["id"] for h in found["results"]]:
                tally.stale += 1
        elif roll < 0.8:
            await tally.call(rng.choice([writer, reader]), "recall", {"query": rng.choice(["tea", "kites", "jazz"])})
        else:
            old = mine.pop(rng.randrange(len(mine)))
            content = f"Client {seed} revised {_nonce(rng)}"
            # Whether the old version is still current is unknown until the answer comes, and a server
            # killed after its commit never answers (the call may then end in a cancellation, which
            # nothing below would see): forget it first.
            tally.acked.pop(old, None)
            new = await tally.call(writer, "supersede", {"memory_id": old, "new_content": content})
            if new is not None:
                tally.acked[new["id"]] = content
                mine.append(new["id"])


async def _all_current(client: Client) -> dict[str, str]:
    found: dict[str, str] = {}
    offset = 0
    while True:
        page = (await client.call_tool("list_memories", {"limit": 200, "offset": offset})).structured_content
        found.update({m["id"]: m["content"] for m in page["memories"]})
        if page.get("next_offset") is None:
            return found
        offset = page["next_offset"]


async def _run(urls: list[str], clients: int) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + SECONDS
    async with anyio.create_task_group() as group:
        sessions = []
        for n in range(clients):
            writer_url, reader_url = urls[n % len(urls)], urls[(n + 1) % len(urls)]
            sessions.append((writer_url, reader_url, n))

        async def one(writer_url: str, reader_url: str, n: int) -> None:
            async with client_session(writer_url) as writer, client_session(reader_url) as reader:
                await _worker(tally, writer, reader, n, deadline)

        for writer_url, reader_url, n in sessions:
            group.start_soon(one, writer_url, reader_url, n)
    return tally


def _report(name: str, tally: Tally) -> None:
    writes = len(tally.latency["remember"]) + len(tally.latency["supersede"])
    print(f"\n[{name}] {SECONDS:.0f} s: {writes} writes ({writes / SECONDS:.1f}/s), "
          f"{len(tally.latency['recall'])} recalls, {len(tally.errors)} errors, {tally.stale} stale recalls")
    for tool, values in tally.latency.items():
        print(f"[{name}] {tool}: {len(values)} calls, {_pcts(values)}")


async def test_two_servers_on_one_database_see_each_other_at_once(tmp_path: Path, servers: Servers) -> None:
    db = tmp_path / "shared.db"
    ports = [free_port(), free_port()]
    for n, port in enumerate(ports):
        servers.start("http", db, port, f"server-{n}")
    urls = [f"http://127.0.0.1:{port}/mcp" for port in ports]
    tally = await _run(urls, clients=4)
    _report("two servers", tally)
    assert tally.errors == [], tally.errors[:5]
    assert tally.stale == 0
    assert len(tally.latency["remember"]) > 10
    for url in urls:  # every acknowledged write, current as acknowledged, from either process
        async with client_session(url) as client:
            current = await _all_current(client)
        assert {k: current.get(k) for k in tally.acked} == tally.acked


async def test_load_over_http_loses_nothing(tmp_path: Path, servers: Servers) -> None:
    port = free_port()
    servers.start("http", tmp_path / "load.db", port, "load")
    url = f"http://127.0.0.1:{port}/mcp"
    tally = await _run([url], clients=6)
    _report("load", tally)
    assert tally.errors == [], tally.errors[:5]
    assert tally.stale == 0
    async with client_session(url) as client:
        current = await _all_current(client)
    assert {k: current.get(k) for k in tally.acked} == tally.acked
    assert len(current) == len(tally.acked)  # and nothing unacknowledged or duplicated
