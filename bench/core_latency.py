"""Add and recall latency of the library at N memories of one user, beside the embedding floor.

    .venv/bin/python bench/core_latency.py --memories 10000

Prints medians and percentiles measured in one run on this machine; the floor is the time to embed
one query with the same model on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from workload import THINGS, query, sentence

from memory_mcp import HierarchicalMemory, MemoryConfig


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def report(name: str, values: list[float], floor: float | None = None) -> str:
    """One line of percentiles in milliseconds (and the median as a multiple of the floor)."""
    line = (f"{name}: p50 {statistics.median(values) * 1000:.1f} ms, p95 {pct(values, 95) * 1000:.1f} ms, "
            f"p99 {pct(values, 99) * 1000:.1f} ms")
    return line if floor is None else f"{line}, p50/floor {statistics.median(values) / floor:.2f}"


async def main(n: int, samples: int) -> None:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        memory = await HierarchicalMemory.create(MemoryConfig(db_path=Path(tmp) / "bench.db"))
        floor = []
        for i in range(samples):
            t = time.perf_counter()
            await memory.embedder.embed([f"what does the user think about {rng.choice(THINGS)} {i}"])
            floor.append(time.perf_counter() - t)
        t = time.perf_counter()
        await memory.add_many([{"content": sentence(rng, i), "user_id": "bench"} for i in range(n)])
        fill = time.perf_counter() - t
        adds, recalls, texts = [], [], []
        for i in range(samples):
            t = time.perf_counter()
            await memory.add(sentence(rng, n + i), user_id="bench")
            adds.append(time.perf_counter() - t)
        for _ in range(samples):
            asked = query(rng)
            t = time.perf_counter()
            await memory.recall(asked, user_id="bench", top_k=5)
            recalls.append(time.perf_counter() - t)
            t = time.perf_counter()
            await memory.text_search(asked, user_id="bench", top_k=5)
            texts.append(time.perf_counter() - t)
        await memory.close()
    print(f"memories: {n}  samples: {samples}")
    print(f"bulk import: {n / fill:.0f} memories/s")
    print(f"embed one query (floor): p50 {statistics.median(floor) * 1000:.1f} ms")
    for name, values in (("add", adds), ("recall (hybrid)", recalls), ("text_search", texts)):
        print(report(name, values, statistics.median(floor)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.memories, args.samples))
