"""What with_memory adds to a chat call: the same client, wrapped and not, against one local server.

    .venv/bin/python bench/wrapper_latency.py --memories 1000 --samples 200

The server is the tests' OpenAI-compatible stand-in on 127.0.0.1, answering at once with a
``<memory>`` block holding one new fact, so the difference between the wrapped and the plain
call is the wrapper's own work. Storage runs in the background after a call returns, so two
series are wrapped: a call after a pause (recall and injection only on its path) and a call right
after another wrapped call (which first waits for that call's storage). The series alternate so
all see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from core_latency import report  # noqa: E402
from fake_openai import FakeOpenAIServer  # noqa: E402
from workload import THINGS, sentence  # noqa: E402

from memory_mcp import MemoryConfig, SyncHierarchicalMemory, with_memory  # noqa: E402


def main(n: int, samples: int) -> None:
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer() as fake:
        engine = SyncHierarchicalMemory(MemoryConfig(db_path=Path(tmp) / "bench.db"))
        engine.add_many([{"content": sentence(rng, i), "user_id": "bench"} for i in range(n)])
        plain = OpenAI(base_url=fake.base_url, api_key="k", max_retries=0)
        wrapped = with_memory(OpenAI(base_url=fake.base_url, api_key="k", max_retries=0), user_id="bench",
                              memory=engine)
        times: dict[str, list[float]] = {"plain": [], "wrapped": [], "wrapped right after wrapped": []}

        def call(series: str, client: object, i: int) -> None:
            fact = {"content": f"The user tried {rng.choice(THINGS)} on day {i} ({series})", "category": "fact"}
            fake.script("Sounds good.\n<memory>" + json.dumps({"memories": [fact]}) + "</memory>")
            question = f"What do you think about {rng.choice(THINGS)} for my next project? ({i})"
            start = time.perf_counter()
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": question}])
            if i >= 10:  # the first calls warm up connections and caches
                times[series].append(time.perf_counter() - start)

        for i in range(samples + 10):
            call("plain", plain, i)
            call("wrapped", wrapped, i)  # its storage runs in the background ...
            call("wrapped right after wrapped", wrapped, i)  # ... which this call waits for first
            wrapped.memory.stats()  # let the last storage finish before the next plain call
        print(f"# with_memory overhead, {n} memories of one user, {samples} calls per series, top_k=5")
        for series, values in times.items():
            print(report(series, values))
        for series in ("wrapped", "wrapped right after wrapped"):
            added = [w - p for w, p in zip(times[series], times["plain"], strict=True)]
            print(report(f"added: {series} - plain (paired)", added))
        engine.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    main(args.memories, args.samples)
