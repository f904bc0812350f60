"""The benchmarks' synthetic workload and measuring helpers, standard library only.

Shared by ``core_latency.py``, ``suite.py``, ``wrapper_latency.py`` and the peers' runners (which run
in an environment without memory_mcp), so every system stores and is asked the same texts.
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path

SUBJECTS = ["The user", "Alice", "My manager", "The team", "Our client", "Bob", "The project", "Sarah"]
VERBS = ["prefers", "dislikes", "is migrating to", "works on", "decided on", "asked about", "uses", "wants"]
THINGS = [
    "Python", "Go", "Rust", "PostgreSQL", "Kubernetes", "dark mode", "green tea", "remote work", "React",
    "GraphQL", "hiking", "jazz", "Terraform", "the Berlin office", "vegan food", "TypeScript", "Redis",
    "morning meetings", "code reviews", "the Apollo project", "espresso", "cycling", "Linux", "Figma",
]
DETAILS = ["since last spring", "for backend work", "on weekends", "because it is faster", "for the demo",
           "after the outage", "at the new job", "for personal projects", "in 2024", "for the migration"]


def sentence(rng: random.Random, i: int) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(THINGS)} {rng.choice(DETAILS)} (note {i})"


def query(rng: random.Random) -> str:
    return f"what does {rng.choice(SUBJECTS)} think about {rng.choice(THINGS)}?"


def pcts(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds, of values in seconds."""
    if len(values) < 2:
        return dict.fromkeys(("p50", "p95", "p99"), values[0] * 1000)
    q = statistics.quantiles(values, n=100)
    return {"p50": statistics.median(values) * 1000, "p95": q[94] * 1000, "p99": q[98] * 1000}


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
