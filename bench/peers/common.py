"""What the peers' runners share: the suite's texts in the suite's order, LoCoMo tallies, machine info.

Standard library only, so that it loads both in the peers' venv (Mem0) and in the project's venv
(server-memory). The memories and queries are the suite's own (``bench/workload.py``), drawn from the
random generator in the same order as ``bench/suite.py``'s library measurement, so every system
stores and is asked exactly the same texts.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

from locomo_data import CATEGORIES, KS, METRICS, RecallTally, load  # noqa: E402
from workload import pcts, query, rss_mb, sentence  # noqa: E402

__all__ = ["CATEGORIES", "KS", "RecallTally", "load", "pcts", "query", "rss_mb", "sentence"]


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


def summary(tally: RecallTally) -> dict[str, Any]:
    """The tally as the runners report it (a category without questions is left out)."""

    def at(group: int | str) -> dict[str, float]:
        return {**{str(k): tally.recall_at(group, k) for k in KS}, **{m: tally.mean(group, m) for m in METRICS}}

    return {
        "overall": at("all"),
        "per_category": {str(c): {"n": tally.counts[c], **at(c)} for c in CATEGORIES if tally.counts[c]},
        "latency_ms": {"p50": statistics.median(tally.latencies) * 1000,
                       "p95": pcts(tally.latencies)["p95"], "n": len(tally.latencies)},
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
