"""A memory database of one user at a given size for the browser's bench and screenshots.

    .venv/bin/python bench/ui_data.py /tmp/ui-100k.db --memories 100000

Every version is written as an exported record (ids, scopes, chains, times) and imported, so the
database is built at batch-embedding speed: a fifth of the user's memories at user scope, the rest
in 50 sessions (half of those with one of three agents, a few in a turn), one fact in ten
superseded once or twice, times spread over the last 400 days.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from workload import sentence  # noqa: E402

from memory_mcp import HierarchicalMemory, MemoryConfig  # noqa: E402

CATEGORIES = ["preference", "fact", "context", "entity", "decision", "insight"]
AGENTS = ["planner", "coder", "critic"]


def records(user_id: str, n: int, seed: int = 7) -> list[dict]:
    """``n`` memory versions of ``user_id`` as export records, chains included."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out: list[dict] = []
    while len(out) < n:
        place = rng.random()
        session = agent = turn = None
        if place > 0.2:
            session = f"s{rng.randrange(50):03d}"
            if place > 0.6:
                agent = rng.choice(AGENTS)
                if place > 0.97:
                    turn = f"t{rng.randrange(4)}"
        versions = 1 if rng.random() > 0.1 else rng.choice((2, 3))
        versions = min(versions, n - len(out))
        start = now - timedelta(days=rng.uniform(1, 400))
        ids = [str(uuid.uuid4()) for _ in range(versions)]
        base = {"user_id": user_id, "session_id": session, "agent_id": agent, "turn_id": turn,
                "category": rng.choice(CATEGORIES), "importance": round(rng.uniform(0.1, 0.55), 2),
                "provenance": {"source": "bench"}}
        for v in range(versions):
            made = start + timedelta(days=v * rng.uniform(0.5, 3))
            closed = start + timedelta(days=(v + 1) * rng.uniform(0.5, 3)) if v + 1 < versions else None
            out.append({
                **base, "id": ids[v], "content": sentence(rng, len(out)),
                "created_at": made.isoformat(), "valid_from": made.isoformat(),
                "valid_until": closed.isoformat() if closed else None,
                "expires_at": (now + timedelta(days=3650)).isoformat() if turn else None,
                "supersedes": ids[v - 1] if v else None, "superseded_by": ids[v + 1] if v + 1 < versions else None,
            })
    return out


async def build(path: Path, n: int, user_id: str = "bench") -> None:
    import json

    memory = await HierarchicalMemory.create(MemoryConfig(db_path=path))
    try:
        t = time.perf_counter()
        lines = [json.dumps(r) for r in records(user_id, n)]
        lines += [json.dumps(r) for r in records("someone-else", 200, seed=8)]
        report = await memory.import_jsonl(lines)
        print(f"imported {report.imported} versions in {time.perf_counter() - t:.0f} s "
              f"(refused {len(report.errors)})", file=sys.stderr)
    finally:
        await memory.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--memories", type=int, default=100_000)
    args = parser.parse_args()
    if args.db.exists():
        sys.exit(f"{args.db} exists already")
    asyncio.run(build(args.db, args.memories))
