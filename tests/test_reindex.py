"""``reindex``: both indexes rebuilt from the store, and re-embedding when the model changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from memory_mcp import EmbedderMismatchError, HierarchicalMemory


class TinyEmbedder:
    """A different 'model' (8 dimensions, hashed bag of words) to switch a database to."""

    model_name = "tiny-hash-8"
    is_ready = True

    async def dimension(self) -> int:
        return 8

    async def warm_up(self) -> None:
        pass

    async def embed(self, texts: Any) -> np.ndarray:
        rows = np.zeros((len(texts), 8), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                rows[i, sum(map(ord, word)) % 8] += 1
        rows += 1e-3
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    async def aclose(self) -> None:
        pass


async def test_reindex_rebuilds_both_indexes_and_search_still_works(open_memory: Any) -> None:
    memory = await open_memory()
    try:
        await memory.add("Prefers Go for backend work", user_id="alice")
        await memory.add("Allergic to peanuts", user_id="bob")
        counts = await memory.reindex()
        assert counts == {"memories": 2, "vectors": 2, "users": 2}
        assert (await memory.text_search("peanuts", user_id="bob"))[0].content == "Allergic to peanuts"
        assert (await memory.search("programming language", user_id="alice"))[0].content == "Prefers Go for backend work"
    finally:
        await memory.close()


async def test_reembed_switches_the_database_to_another_model(open_memory: Any, db_path: Path) -> None:
    memory = await open_memory()
    config = memory.config  # the same database, on either engine
    stored = await memory.add("Prefers Go for backend work", user_id="alice")
    await memory.close()

    refused = None
    try:
        await HierarchicalMemory.create(config, embedder=TinyEmbedder())  # type: ignore[arg-type]
    except EmbedderMismatchError as exc:
        refused = exc
    assert refused is not None and "reembed=True" in str(refused)

    memory = await HierarchicalMemory.create(config, embedder=TinyEmbedder(), reembed=True)  # type: ignore[arg-type]
    try:
        await memory.reindex()
        assert (await memory.get(stored.id)).embedded
        results = await memory.search("Prefers Go for backend work", user_id="alice")
        assert [r.memory.id for r in results] == [stored.id]
        assert results[0].similarity is not None and results[0].similarity > 0.99
    finally:
        await memory.close()
    # The switch is recorded: the tiny model now opens the database without re-embedding.
    memory = await HierarchicalMemory.create(config, embedder=TinyEmbedder())  # type: ignore[arg-type]
    await memory.close()


def test_reindex_command_rebuilds_a_database(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    script = (
        "import asyncio\n"
        "from memory_mcp import HierarchicalMemory, MemoryConfig\n"
        "async def main():\n"
        f"    async with await HierarchicalMemory.create(MemoryConfig(db_path={str(db)!r})) as m:\n"
        "        await m.add('Allergic to peanuts', user_id='bob')\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    done = subprocess.run(
        [sys.executable, "-m", "memory_mcp", "reindex", "--db-path", str(db)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "'memories': 1" in done.stderr and "'vectors': 1" in done.stderr
