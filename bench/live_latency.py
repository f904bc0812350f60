"""How long a subscribed client waits to hear of a write made by another server process.

    .venv/bin/python bench/live_latency.py [--writes 100] [--transport stdio|http] [--out FILE]

Two real server processes (``python -m memory_mcp serve``) on one SQLite file: a listener
subscribed with ``subscriptions/listen`` to ``memory://users/bench/memories`` (over stdio, or
streamable HTTP with ``--transport http``) and a writer over stdio. Each round the writer calls
``remember``; the latency is from the moment that call returned (the write is committed) to the
moment the listener's client yields the event. Between rounds the listener drains every event of
the write (the background embedding writes the memory once more) so that each round starts quiet,
and waits a random extra moment, so that writes fall anywhere in the listener's polling cycle.
The listener's process learns of the write from the database's change feed, which it reads every
``watch_interval_s`` (0.1 s by default): the median is expected near half of that.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

URI = "memory://users/bench/memories"


def _server_args(db: Path, *extra: str) -> list[str]:
    return ["-m", "memory_mcp", "serve", "--db-path", str(db), "--user-id", "bench", *extra]


def _env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, "PYTHONUNBUFFERED": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure(writes: int, transport: str) -> dict[str, float]:
    directory = Path(tempfile.mkdtemp(prefix="live-latency-"))
    db = directory / "shared.db"
    writer_params = StdioServerParameters(command=sys.executable, args=_server_args(db), env=_env())
    http: subprocess.Popen[bytes] | None = None
    if transport == "http":
        port = _free_port()
        http = subprocess.Popen([sys.executable, *_server_args(db, "--transport", "http", "--port", str(port))],
                                env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        listener_target: object = f"http://127.0.0.1:{port}/mcp"
    else:
        listener_target = StdioServerParameters(command=sys.executable, args=_server_args(db), env=_env())
    latencies: list[float] = []
    try:
        async with (
            Client(listener_target) as listener,  # type: ignore[arg-type]
            Client(writer_params) as writer,
            listener.listen(resource_subscriptions=[URI]) as sub,
        ):
            events: asyncio.Queue[float] = asyncio.Queue()

            async def read() -> None:
                async for _ in sub:
                    events.put_nowait(time.perf_counter())

            reader = asyncio.create_task(read())
            for i in range(writes + 3):  # the first rounds warm both processes up
                await writer.call_tool("remember", {"content": f"Bench fact number {i} about the garden"})
                committed = time.perf_counter()
                heard = await asyncio.wait_for(events.get(), 30)
                if i >= 3:
                    latencies.append(heard - committed)
                # The write's later events (its embedding) arrive and are dropped; the random part
                # keeps the rounds from falling into step with the listener's polling.
                await asyncio.sleep(0.4 + random.uniform(0, 0.2))
                while not events.empty():
                    events.get_nowait()
            reader.cancel()
    finally:
        if http is not None:
            http.terminate()
            http.wait(30)
    ms = sorted(x * 1000 for x in latencies)
    return {
        "writes": len(ms), "p50_ms": statistics.median(ms), "p95_ms": ms[int(0.95 * (len(ms) - 1))],
        "min_ms": ms[0], "max_ms": ms[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=100)
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--out", type=Path, help="also append the result line (Markdown) to this file")
    args = parser.parse_args()
    result = asyncio.run(measure(args.writes, args.transport))
    line = (f"| {args.transport} | {result['writes']} | {result['p50_ms']:.1f} | {result['p95_ms']:.1f} | "
            f"{result['min_ms']:.1f} | {result['max_ms']:.1f} |")
    print("| listener | writes | p50 ms | p95 ms | min ms | max ms |\n|---|---|---|---|---|---|\n" + line)
    if args.out:
        with args.out.open("a") as out:
            out.write(line + "\n")


if __name__ == "__main__":
    main()
