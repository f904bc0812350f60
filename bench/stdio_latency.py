"""Remember and recall latency through a real MCP client over stdio, at N memories of one user,
and the time from process start to the first answer.

    .venv/bin/python bench/stdio_latency.py --memories 10000

The database is filled through the library first (bulk import), then the server is started as a
subprocess and spoken to with the SDK's own client, as Claude Desktop or Cursor would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from core_latency import SUBJECTS, THINGS, report, sentence
from mcp import Client, StdioServerParameters

from memory_mcp import HierarchicalMemory, MemoryConfig


async def main(n: int, samples: int) -> None:
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        memory = await HierarchicalMemory.create(MemoryConfig(db_path=db))
        await memory.add_many([{"content": sentence(rng, i), "user_id": "bench"} for i in range(n)])
        await memory.close()

        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "memory_mcp", "serve", "--db-path", str(db), "--user-id", "bench", "--log-level", "WARNING"],
            env={k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ},
        )
        start = time.perf_counter()
        async with Client(params) as client:
            await client.list_tools()
            first_answer = time.perf_counter() - start
            while not (await client.call_tool("recall", {"query": "warm up"})).structured_content["semantic_ready"]:
                await asyncio.sleep(0.2)
            remembers, recalls = [], []
            for i in range(samples):
                t = time.perf_counter()
                await client.call_tool("remember", {"content": sentence(rng, n + i)})
                remembers.append(time.perf_counter() - t)
            for _ in range(samples):
                query = f"what does {rng.choice(SUBJECTS)} think about {rng.choice(THINGS)}?"
                t = time.perf_counter()
                await client.call_tool("recall", {"query": query})
                recalls.append(time.perf_counter() - t)
    print(f"memories: {n}  samples: {samples}")
    print(f"process start to first answer (tools/list): {first_answer:.2f} s")
    for name, values in (("remember", remembers), ("recall", recalls)):
        print(report(f"{name} over stdio", values))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.memories, args.samples))
