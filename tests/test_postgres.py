"""What is PostgreSQL's own: bad configuration said in one line, and moving a database from
SQLite to PostgreSQL and back with nothing lost (the engine suite itself runs on both engines;
see ``conftest.py``)."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
from pg import PostgresForTests

from memory_mcp import HierarchicalMemory, MemoryConfig, MemoryFilter
from memory_mcp.compose import make_store
from memory_mcp.errors import EmbedderMismatchError, StorageError

pytestmark = pytest.mark.parametrize("storage_engine", ["postgres"])  # the fixtures' engine


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memory_mcp", *args, "--log-level", "WARNING"],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def _one_line(run: subprocess.CompletedProcess[str]) -> str:
    """The single line a refused start prints (exit code 2, no traceback)."""
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


async def _open_store(url: str, **settings: Any) -> None:
    store = make_store(MemoryConfig(database_url=url, **settings))
    await store.open()
    await store.close()


# -- bad configuration ------------------------------------------------------------------------


async def test_an_unreachable_server_or_unknown_host_is_named(storage_engine: str) -> None:
    with pytest.raises(StorageError) as refused:
        await _open_store("postgresql://mcp@127.0.0.1:1/memories")
    assert "127.0.0.1:1" in str(refused.value) and "running" in str(refused.value)
    with pytest.raises(StorageError) as unknown:
        await _open_store("postgresql://mcp@no-such-host.invalid/memories")
    assert "no-such-host.invalid" in str(unknown.value)
    run = _cli("serve", "--database-url", "postgresql://mcp@127.0.0.1:1/memories")
    assert "cannot reach PostgreSQL at 127.0.0.1:1" in _one_line(run)


def test_a_url_that_is_not_postgresql_is_refused_in_one_line(storage_engine: str) -> None:
    line = _one_line(_cli("export", "--database-url", "mysql://root@localhost/memories"))
    assert "postgresql://" in line and "'mysql'" in line


async def test_wrong_credentials_a_missing_database_and_a_missing_extension(
    postgres: PostgresForTests, storage_engine: str
) -> None:
    admin = await asyncpg.connect(postgres.admin_url)
    try:
        await admin.execute("DROP ROLE IF EXISTS mcp_login")
        await admin.execute("CREATE ROLE mcp_login LOGIN PASSWORD 'right-password'")
        # This role must give its password (the test server trusts everyone else).
        hba = Path(await admin.fetchval("SHOW hba_file"))
        rules = hba.read_text()
        if "mcp_login" not in rules:
            hba.write_text("local all mcp_login scram-sha-256\n" + rules)
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()
    socket_dir = postgres.admin_url.split("host=", 1)[1]
    with pytest.raises(StorageError) as wrong:
        await _open_store(f"postgresql://mcp_login:wrong-password@/postgres?host={socket_dir}")
    assert "refused user 'mcp_login'" in str(wrong.value) and "password" in str(wrong.value)
    assert "wrong-password" not in str(wrong.value)  # a password is never shown

    with pytest.raises(StorageError) as missing:
        await _open_store(postgres.url_of("no_such_database"))
    assert "no_such_database" in str(missing.value) and "CREATE DATABASE" in str(missing.value)

    # A database without pgvector, opened by a user who may not create extensions there.
    bare = await postgres.new_database(with_schema=False)
    try:
        url = bare.replace("postgres:@", "mcp_login:right-password@")
        with pytest.raises(StorageError) as no_vector:
            await _open_store(url)
        message = str(no_vector.value)
        assert "CREATE EXTENSION vector" in message and "right-password" not in message
        assert "CREATE EXTENSION vector" in _one_line(_cli("export", "--database-url", url))
    finally:
        await postgres.drop(bare)


class _OtherModel:
    model_name = "other-model"
    is_ready = True

    def __init__(self, dim: int):
        self.dim = dim

    async def dimension(self) -> int:
        return self.dim

    async def embed(self, texts: Sequence[str]) -> Any:
        return np.ones((len(texts), self.dim), dtype=np.float32) / np.sqrt(self.dim)

    async def warm_up(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("dim", [8, 384])
async def test_a_database_refuses_another_embedding_model_or_dimension(pg_url: str, memory: Any, dim: int) -> None:
    stored = await memory.add("Alice is allergic to peanuts", user_id="alice")
    with pytest.raises(EmbedderMismatchError) as refused:
        await HierarchicalMemory.create(MemoryConfig(database_url=memory.config.database_url), embedder=_OtherModel(dim))
    message = str(refused.value)
    assert "all-MiniLM-L6-v2" in message and "other-model" in message and str(dim) in message
    assert "reindex" in message
    found = await memory.search("food allergy", user_id="alice", top_k=1)  # nothing was changed
    assert [r.memory.id for r in found] == [stored.id]


async def test_a_lost_server_is_one_clear_error_and_the_engine_recovers_when_it_is_back(
    tmp_path: Path, embedder: Any, storage_engine: str
) -> None:
    import pgserver
    from conftest import _SharedEmbedder

    directory = tmp_path / "own-server"
    server = pgserver.get_server(directory, cleanup_mode="stop")
    config = MemoryConfig(database_url=server.get_uri(), connect_timeout_s=3)
    engine = await HierarchicalMemory.create(config, embedder=_SharedEmbedder(embedder))
    try:
        stored = await engine.add("Alice keeps bees on her roof", user_id="alice")
        server.cleanup()  # the server stops (a restart, a failover)
        for call in (engine.recall("bees", user_id="alice"), engine.add("Alice sells honey", user_id="alice")):
            with pytest.raises(StorageError) as lost:
                await asyncio.wait_for(call, 60)
            assert "PostgreSQL" in str(lost.value) and "retry" in str(lost.value)
        server = pgserver.get_server(directory, cleanup_mode="stop")  # back, on the same data
        found = await engine.recall("bees", user_id="alice")
        assert [r.memory.id for r in found] == [stored.id]
        assert (await engine.add("Alice sells honey", user_id="alice")).content == "Alice sells honey"
    finally:
        await engine.close()
        server.cleanup()


# -- moving a database ------------------------------------------------------------------------


async def _fill(memory: HierarchicalMemory) -> None:
    """Every kind of thing a database holds: chains, scopes, contexts, provenance, promotion."""
    job = await memory.add("Alice works as a nurse", user_id="alice", importance=0.8, entity_refs=["Alice"],
                           metadata={"source": "chat", "n": 3})
    await memory.supersede(job.id, "Alice works as a software engineer", user_id="alice")
    await memory.add("Prefers window seats", user_id="alice", session_id="trip", importance=0.3)
    await memory.add("Uses the staging cluster", user_id="alice", agent_id="ops", session_id="s2")
    await memory.add("Is reading chapter 3", user_id="alice", session_id="s3", turn_id="t1",
                     context="Where were we in the book?")
    await memory.add("Likes green tea", user_id="bob", session_id="s9", importance=0.95)  # promoted
    gone = await memory.add("A memory that is deleted", user_id="bob")
    await memory.delete(gone.id, user_id="bob")
    await memory.add("Lives in Lisbon", user_id="carol", valid_from="2023-05-08T00:00:00Z")


async def _everything(memory: HierarchicalMemory) -> list[dict[str, Any]]:
    """Every version as exported (every field of the API), by id."""
    out = io.StringIO()
    await memory.export_jsonl(out)
    return sorted((json.loads(line) for line in out.getvalue().splitlines()), key=lambda r: r["id"])


async def test_migrate_moves_sqlite_to_postgresql_and_back_with_nothing_lost(
    open_memory: Any, tmp_path: Path, postgres: PostgresForTests, embedder: Any, storage_engine: str
) -> None:
    from conftest import _SharedEmbedder

    source_path, back_path = tmp_path / "source.db", tmp_path / "back.db"
    sqlite = await HierarchicalMemory.create(MemoryConfig(db_path=source_path), embedder=_SharedEmbedder(embedder))
    try:
        await _fill(sqlite)
        before = await _everything(sqlite)
        probes = {q: [r.memory.id for r in await sqlite.search(q, user_id="alice", top_k=3)]
                  for q in ("what is her job", "seat on the plane", "kubernetes environment")}
    finally:
        await sqlite.close()
    assert len(before) == 7 and any(r["superseded_by"] for r in before) and any(r["context"] for r in before)

    url = await postgres.new_database()
    try:
        run = _cli("migrate", str(source_path), url)
        assert run.returncode == 0, run.stderr
        assert "copied 7 memory versions (7 with vectors)" in run.stderr
        again = _cli("migrate", str(source_path), url)  # re-runnable: nothing twice
        assert again.returncode == 0 and "copied 0" in again.stderr and "7 were there already" in again.stderr

        run = _cli("migrate", url, str(back_path))
        assert run.returncode == 0, run.stderr

        for config in (MemoryConfig(database_url=url), MemoryConfig(db_path=back_path)):
            engine = await HierarchicalMemory.create(config, embedder=_SharedEmbedder(embedder))
            try:
                assert await _everything(engine) == before, config
                for query, ids in probes.items():  # the vectors came along: same answers, no re-embedding
                    assert [r.memory.id for r in await engine.search(query, user_id="alice", top_k=3)] == ids
                current = await engine.query(MemoryFilter(user_id="alice", all_levels=True))
                assert "Alice works as a software engineer" in [m.content for m in current]
                history = await engine.get_history(next(r["id"] for r in before if r["superseded_by"]))
                assert [m.content for m in history] == ["Alice works as a nurse", "Alice works as a software engineer"]
            finally:
                await engine.close()
    finally:
        await postgres.drop(url)


async def test_migrate_refuses_a_missing_source_and_a_database_of_another_model(
    tmp_path: Path, pg_url: str, embedder: Any, storage_engine: str
) -> None:
    from conftest import _SharedEmbedder

    line = _one_line(_cli("migrate", str(tmp_path / "nothing.db"), pg_url))
    assert "nothing.db" in line
    store = make_store(MemoryConfig(database_url=pg_url))
    await store.open()
    try:
        async with store.transaction() as db:
            await db.set_meta("embedder_model", "other-model")
            await db.set_meta("embedding_dim", "8")
    finally:
        await store.close()
    source = tmp_path / "source.db"
    engine = await HierarchicalMemory.create(MemoryConfig(db_path=source), embedder=_SharedEmbedder(embedder))
    await engine.add("A fact", user_id="u")
    await engine.close()
    line = _one_line(_cli("migrate", str(source), pg_url))
    assert "other-model" in line and "all-MiniLM-L6-v2" in line
