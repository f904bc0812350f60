"""A client that goes away mid-call loses nothing the server acknowledged, and the server process
it leaves behind (killed, not shut down) leaves a database the next server opens cleanly."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import suppress
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from support import processes_mentioning

from memory_mcp import HierarchicalMemory, MemoryConfig, MemoryFilter


def _params(db: Path) -> StdioServerParameters:
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "memory_mcp", "serve", "--db-path", str(db), "--user-id", "alice", "--log-level", "WARNING"],
        env=env,
    )


async def test_acknowledged_memories_survive_a_client_vanishing_mid_call(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    acknowledged = []
    async with Client(_params(db)) as client:
        for i in range(5):
            result = await client.call_tool("remember", {"content": f"Acknowledged fact number {i}"})
            assert not result.is_error
            acknowledged.append(result.structured_content["id"])
        # Start a call and abandon it: the client disappears without waiting for the answer.
        with anyio.move_on_after(0.001):
            await client.call_tool("remember", {"content": "A call the client never waited for"})
        pids = processes_mentioning(str(tmp_path))
    for pid in pids:  # whatever is left of the server, killed rather than shut down
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    async with await HierarchicalMemory.create(MemoryConfig(db_path=db)) as memory:
        stored = await memory.query(MemoryFilter(user_id="alice"))
        ids = {m.id for m in stored}
        assert set(acknowledged) <= ids
        # The abandoned call either landed whole or not at all.
        assert len(ids - set(acknowledged)) <= 1
        results = await memory.recall("acknowledged fact number 3", user_id="alice")
        assert results[0].memory.id == acknowledged[3]
