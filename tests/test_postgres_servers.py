"""Many memory servers on one PostgreSQL database, over real streamable HTTP.

- Three server processes, eight clients writing, superseding and recalling on one server and
  checking on another: zero errors, zero stale recalls (what one server acknowledged, the next
  query to any other finds), every acknowledged write current as acknowledged.
- One server is SIGKILLed in the middle of the writes: every write it (or any other) acknowledged
  is there afterwards.
- The transport's whole surface, once, on PostgreSQL.

CI runs each for seconds; ``MEMORY_MCP_SOAK=1`` runs them for minutes.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import anyio
from support import client_session
from test_contention_and_load import SECONDS, Tally, _all_current, _report, _run, _worker
from test_server_transports import Servers, exercise, free_port, no_server_outlives_the_test, servers  # noqa: F401


def _start(servers: Servers, pg_url: str, tmp_path: Path, count: int) -> tuple[list[Any], list[str]]:
    procs, urls = [], []
    for n in range(count):
        port = free_port()
        proc, _ = servers.start(
            "http", tmp_path / "unused.db", port, f"pg-server-{n}", env={"MEMORY_MCP_DATABASE_URL": pg_url}
        )
        procs.append(proc)
        urls.append(f"http://127.0.0.1:{port}/mcp")
    return procs, urls


async def test_three_servers_on_one_postgresql_lose_nothing_and_are_never_stale(
    tmp_path: Path, servers: Servers, pg_url: str
) -> None:
    _, urls = _start(servers, pg_url, tmp_path, 3)
    async with client_session(urls[0]) as client:  # the whole surface, on PostgreSQL
        await exercise(client, "http on postgresql")
    tally = await _run(urls, clients=8)
    _report("three servers, one PostgreSQL", tally)
    assert tally.errors == [], tally.errors[:5]
    assert tally.stale == 0
    assert len(tally.latency["remember"]) > 20 and len(tally.latency["supersede"]) > 5
    for url in urls:  # every acknowledged write, current as acknowledged, seen from every server
        async with client_session(url) as client:
            current = await _all_current(client)
        assert {k: current.get(k) for k in tally.acked} == tally.acked
        assert len(current) == len(tally.acked) + 1  # nothing unacknowledged or doubled (+ exercise's)


async def test_a_server_killed_during_writes_loses_no_acknowledged_write(
    tmp_path: Path, servers: Servers, pg_url: str
) -> None:
    procs, urls = _start(servers, pg_url, tmp_path, 3)
    tally, doomed = Tally(), Tally()  # doomed: the clients writing to the server that is killed
    deadline = time.monotonic() + SECONDS

    async def one(n: int) -> None:
        url = urls[n % 3]
        try:
            async with client_session(url) as writer, client_session(urls[(n + 1) % 3]) as reader:
                await _worker(doomed if n % 3 == 0 else tally, writer, reader, n, deadline)
        except Exception:  # the killed server's clients lose their connection; no one else may
            if 0 not in (n % 3, (n + 1) % 3):
                raise

    async def kill_midway() -> None:
        await anyio.sleep(SECONDS / 2)
        procs[0].send_signal(signal.SIGKILL)

    async with anyio.create_task_group() as group:
        for n in range(9):
            group.start_soon(one, n)
        group.start_soon(kill_midway)
    assert procs[0].wait(10) == -signal.SIGKILL
    _report("kill one of three: the survivors' clients", tally)
    _report("kill one of three: the killed server's clients", doomed)
    assert tally.errors == [] and tally.stale == 0
    assert len(tally.latency["remember"]) > 20 and len(doomed.acked) > 0
    acked = {**tally.acked, **doomed.acked}
    for url in urls[1:]:
        async with client_session(url) as client:
            current = await _all_current(client)
        missing = {k: v for k, v in acked.items() if current.get(k) != v}
        assert missing == {}, f"{len(missing)} acknowledged writes missing or changed: {list(missing.items())[:3]}"
