"""What the peers' runners share: the suite's data generators, percentiles, RSS and LoCoMo tallies.

Standard library only, so that it loads both in the peers' venv (Mem0) and in the project's venv
(server-memory). The memories and queries are the suite's own: ``sentence`` and the word lists come
from ``bench/core_latency.py``, read from its source (importing it would import memory_mcp, which the
peers' venv does not have), and the random generator is consumed in the same order as
``bench/suite.py``'s library measurement, so every system stores and is asked exactly the same texts.
"""

from __future__ import annotations

import ast
import json
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

from locomo_data import CATEGORIES, KS, first_hit, load  # noqa: E402

__all__ = ["CATEGORIES", "KS", "first_hit", "load"]


def _core_latency_generators() -> dict[str, Any]:
    """``SUBJECTS``, ``VERBS``, ``THINGS``, ``DETAILS`` and ``sentence`` from core_latency.py's source."""
    source = (BENCH / "core_latency.py").read_text(encoding="utf-8")
    wanted = {"SUBJECTS", "VERBS", "THINGS", "DETAILS", "sentence"}
    body = [
        node for node in ast.parse(source).body
        if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) in wanted for t in node.targets))
        or (isinstance(node, ast.FunctionDef) and node.name in wanted)
    ]
    namespace: dict[str, Any] = {"random": random}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(BENCH / "core_latency.py"), "exec"), namespace)
    missing = wanted - namespace.keys()
    if missing:
        raise RuntimeError(f"bench/core_latency.py no longer defines {sorted(missing)}")
    return namespace


_GEN = _core_latency_generators()
SUBJECTS: list[str] = _GEN["SUBJECTS"]
THINGS: list[str] = _GEN["THINGS"]
sentence: Callable[[random.Random, int], str] = _GEN["sentence"]


def query(rng: random.Random) -> str:  # as bench/suite.py
    return f"what does {rng.choice(SUBJECTS)} think about {rng.choice(THINGS)}?"


class SpeedData:
    """The suite's texts, drawn from ``Random(7)`` in the order of ``suite.measure_library``."""

    def __init__(self, n: int, users: int) -> None:
        self.rng = random.Random(7)
        self.n, self.users = n, users
        self.warm_queries = [query(self.rng) for _ in range(20)]
        self.batch_texts = [sentence(self.rng, 10_000_000 + i) for i in range(2048)]
        self.items = [(sentence(self.rng, i), f"user{i % users}") for i in range(n)]

    def sample(self, i: int) -> tuple[str, str, str, str]:
        """(user, floor query, memory to add, query to recall) of sample ``i``, drawn in suite order."""
        user = f"user{self.rng.randrange(self.users)}"
        floor_query = query(self.rng)
        text = sentence(self.rng, self.n + i)
        return user, floor_query, text, query(self.rng)


def pcts(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds, of values in seconds (as bench/suite.py)."""
    if len(values) < 2:
        return {"p50": values[0] * 1000, "p95": values[0] * 1000, "p99": values[0] * 1000}
    q = statistics.quantiles(values, n=100)
    return {"p50": statistics.median(values) * 1000, "p95": q[94] * 1000, "p99": q[98] * 1000}


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def process_start_wall(pid: int | str = "self") -> float:
    """Wall-clock time at which a process started (from /proc; resolution one clock tick)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return time.time() - (uptime - started_after_boot)


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class Tally:
    """Recall@k overall and per category, as bench/locomo_eval.py's ModeResult."""

    def __init__(self) -> None:
        self.hits: dict[Any, dict[int, int]] = defaultdict(lambda: dict.fromkeys(KS, 0))
        self.counts: dict[Any, int] = defaultdict(int)
        self.latencies: list[float] = []

    def add(self, category: int, rank: int | None) -> None:
        for group in ("all", category):
            self.counts[group] += 1
            for k in KS:
                if rank is not None and rank <= k:
                    self.hits[group][k] += 1

    def recall_at(self, group: Any) -> dict[str, float | None]:
        n = self.counts[group]
        return {str(k): (self.hits[group][k] / n if n else None) for k in KS}

    def summary(self) -> dict[str, Any]:
        return {
            "overall": self.recall_at("all"),
            "per_category": {str(c): {"n": self.counts[c], **self.recall_at(c)} for c in CATEGORIES
                             if self.counts[c]},  # a category without questions is left out
            "latency_ms": {"p50": statistics.median(self.latencies) * 1000,
                           "p95": pcts(self.latencies)["p95"], "n": len(self.latencies)},
        }


def machine() -> dict[str, Any]:
    """CPUs and load average now (the machine may be shared: a loaded one slows every figure)."""
    loadavg = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    return {"cpus": os.cpu_count(), "loadavg": loadavg, "python": sys.version.split()[0]}


def emit(result: dict[str, Any]) -> None:
    """The result as one JSON line, the last line of stdout."""
    sys.stdout.flush()
    print(json.dumps(result), flush=True)


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)
