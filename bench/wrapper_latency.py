"""What with_memory adds to a model call, on each surface it wraps: the same client, wrapped and
not, against one local server per API.

    .venv/bin/python bench/wrapper_latency.py --memories 1000 --samples 200

The servers are the tests' stand-ins on 127.0.0.1 (tests/fake_openai.py for chat completions and
the Responses API, tests/fake_anthropic.py for the Anthropic Messages API), answering at once
with a ``<memory>`` block holding one new fact, so the difference between the wrapped and the
plain call is the wrapper's own work. Storage runs in the background after a call returns, so two
series are wrapped: a call after a pause (recall and injection only on its path) and a call right
after another wrapped call (which first waits for that call's storage). The series and the
surfaces alternate so all see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from anthropic import Anthropic
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from core_latency import report  # noqa: E402
from fake_anthropic import FakeAnthropicServer  # noqa: E402
from fake_openai import FakeOpenAIServer  # noqa: E402
from workload import THINGS, sentence  # noqa: E402

from memory_mcp import MemoryConfig, SyncHierarchicalMemory, with_memory  # noqa: E402

# Each surface: the client class, which server speaks its API, and one call with a question.
SURFACES: dict[str, tuple[type, type, Callable[[Any, str], Any]]] = {
    "chat.completions": (OpenAI, FakeOpenAIServer, lambda client, question: client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": question}])),
    "responses": (OpenAI, FakeOpenAIServer, lambda client, question: client.responses.create(
        model="m", input=question)),
    "messages (Anthropic)": (Anthropic, FakeAnthropicServer, lambda client, question: client.messages.create(
        model="m", max_tokens=256, messages=[{"role": "user", "content": question}])),
}
SERIES = ("plain", "wrapped", "wrapped right after wrapped")


def main(n: int, samples: int, surfaces: list[str]) -> None:
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        engine = SyncHierarchicalMemory(MemoryConfig(db_path=Path(tmp) / "bench.db"))
        engine.add_many([{"content": sentence(rng, i), "user_id": "bench"} for i in range(n)])
        fakes, clients = {}, {}
        for name in surfaces:
            client_class, server_class, _ = SURFACES[name]
            fake = fakes[name] = servers.enter_context(server_class())
            plain = client_class(base_url=fake.base_url, api_key="k", max_retries=0)
            wrapped = with_memory(client_class(base_url=fake.base_url, api_key="k", max_retries=0),
                                  user_id="bench", memory=engine)
            clients[name] = {"plain": plain, "wrapped": wrapped, "wrapped right after wrapped": wrapped}
        times = {name: {series: [] for series in SERIES} for name in surfaces}

        def call(name: str, series: str, i: int) -> None:
            fact = {"content": f"The user tried {rng.choice(THINGS)} on day {i} ({series})", "category": "fact"}
            fakes[name].script("Sounds good.\n<memory>" + json.dumps({"memories": [fact]}) + "</memory>")
            question = f"What do you think about {rng.choice(THINGS)} for my next project? ({i})"
            start = time.perf_counter()
            SURFACES[name][2](clients[name][series], question)
            if i >= 10:  # the first calls warm up connections and caches
                times[name][series].append(time.perf_counter() - start)

        for i in range(samples + 10):
            for name in surfaces:
                for series in SERIES:  # the second wrapped call first waits for the first's storage
                    call(name, series, i)
                engine.stats("bench")  # let the last storage finish before the next plain call
        print(f"# with_memory overhead, {n}+ memories of one user, {samples} calls per series, top_k=5")
        for name in surfaces:
            print(f"## {name}")
            for series, values in times[name].items():
                print(report(series, values))
            for series in SERIES[1:]:
                added = [w - p for w, p in zip(times[name][series], times[name]["plain"], strict=True)]
                print(report(f"added: {series} - plain (paired)", added))
        engine.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--surfaces", default=",".join(SURFACES),
                        help=f"comma-separated, of: {', '.join(SURFACES)}")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.surfaces.split(",")]
    if unknown := [s for s in chosen if s not in SURFACES]:
        parser.error(f"unknown surface(s) {unknown}; choose from {list(SURFACES)}")
    main(args.memories, args.samples, chosen)
