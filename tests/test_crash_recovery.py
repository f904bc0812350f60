"""SIGKILL at random instants while several clients remember and supersede at full speed.

After every kill the database is opened again (as the next process would) and must hold every
acknowledged write as acknowledged, no half-written supersession (old closed <=> new stored), and
indexes that agree with the store: ``HierarchicalMemory.check`` compares the version links, the
FTS5 index (integrity check) and each user's vector index key by key.

CI runs a few cycles; ``MEMORY_MCP_SOAK=1`` runs many (the figure reported in the closing note).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from memory_mcp import MemoryFilter

WRITER = Path(__file__).parent / "programs" / "crash_writer.py"
CYCLES = 60 if os.environ.get("MEMORY_MCP_SOAK") else 6
CLIENTS = 4


def _run_and_kill(where: dict[str, Any], cycle: int, rng: random.Random) -> list[dict[str, Any]]:
    """Start the writer on the database ``where`` names (a SQLite file, or PostgreSQL through the
    environment), let it write for a random while, SIGKILL it; the acks it printed."""
    env = dict(os.environ)
    if "database_url" in where:
        env["MEMORY_MCP_DATABASE_URL"] = where["database_url"]
    proc = subprocess.Popen([sys.executable, str(WRITER), str(where.get("db_path", "unused.db")), str(cycle),
                             str(CLIENTS)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    acks: list[dict[str, Any]] = []
    first = threading.Event()  # set once every user has an acknowledged write: each kill lands mid-work

    def read() -> None:
        assert proc.stdout is not None
        users = set()
        for line in proc.stdout:
            acks.append(json.loads(line))
            users.add(acks[-1]["user"])
            if len(users) == min(CLIENTS, 3):
                first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert first.wait(120), "the writer did not acknowledge a write for every user"
    # Sometimes at once (model still loading, nothing embedded), sometimes after index saves.
    time.sleep(rng.choice([0.0, rng.uniform(0.05, 1.0), rng.uniform(1.0, 6.0)]))
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    reader.join(30)
    return acks


async def _verify(memory: Any, acks: list[dict[str, Any]]) -> None:
    for entry in acks:
        if entry["op"] == "add":
            await memory.get(entry["id"], user_id=entry["user"])  # raises when lost
        else:
            old = await memory.get(entry["old"], user_id=entry["user"])
            new = await memory.get(entry["new"], user_id=entry["user"])
            assert old.superseded_by == new.id and old.valid_until is not None, (old, new)
            assert new.supersedes == old.id
    problems = await memory.check()
    assert problems == {"links": [], "text_index": [], "vector_index": []}, problems


async def test_sigkill_during_writes_loses_nothing_acknowledged(
    open_memory: Any, database_for: Any, tmp_path: Path
) -> None:
    db = tmp_path / "crash.db"
    where = await database_for(db)
    rng = random.Random(20261124)
    acknowledged: list[dict[str, Any]] = []
    cycles_with_writes_after_kill = 0
    for cycle in range(CYCLES):
        acks = _run_and_kill(where, cycle, rng)
        acknowledged += acks
        memory = await open_memory(db_path=db)
        try:
            await _verify(memory, acknowledged)  # this cycle's writes and every earlier cycle's
            stored = await memory.query(MemoryFilter(user_id="user0", all_levels=True, include_superseded=True))
            cycles_with_writes_after_kill += any(m.content.startswith(f"user0 cycle {cycle} ") for m in stored)
        finally:
            await memory.close()
    print(f"\ncrash test: {CYCLES} SIGKILLs, {len(acknowledged)} acknowledged writes, all present and consistent")
    assert cycles_with_writes_after_kill == CYCLES
    assert len(acknowledged) > CYCLES * CLIENTS


async def test_a_lost_ack_is_the_only_difference_a_kill_can_make(
    open_memory: Any, database_for: Any, tmp_path: Path
) -> None:
    """Writes that committed but were not acknowledged (killed in between) are whole, not half:
    every stored version is reachable from its chain and every chain has at most one current."""
    db = tmp_path / "crash.db"
    _run_and_kill(await database_for(db), 0, random.Random(3))
    memory = await open_memory(db_path=db)
    try:
        for user in ("user0", "user1", "user2"):
            everything = await memory.query(
                MemoryFilter(user_id=user, all_levels=True, include_superseded=True, include_expired=True)
            )
            for version in everything:
                chain = await memory.get_history(version.id, user_id=user)
                assert version.id in [m.id for m in chain]
                assert sum(m.is_current for m in chain) <= 1
        assert await memory.check() == {"links": [], "text_index": [], "vector_index": []}
    finally:
        await memory.close()
