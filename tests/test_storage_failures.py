"""When the disk fills up, the filesystem is read-only, or the vector index's directory is unusable,
the server says so in one line naming the cause, keeps answering what it can read, and loses nothing
it acknowledged. The filesystems are real: small and read-only tmpfs and bind mounts, which need
root (the tests say so and skip without it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import StdioServerParameters
from mcp.client.stdio import stdio_client
from support import client_session, kill_leftovers
from test_server_transports import serve_args, server_env

from memory_mcp import HierarchicalMemory, MemoryConfig

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def no_server_outlives_the_test(tmp_path: Path) -> Iterator[None]:
    yield
    assert not kill_leftovers(tmp_path, 10), "a server process outlived the test"


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a filesystem here (needs root with CAP_SYS_ADMIN): {done.stderr.strip()}")


@contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir()
    _mount("-t", "tmpfs", "-o", options, "tmpfs", str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextmanager
def read_only_view(source: Path, where: Path) -> Iterator[Path]:
    """``source`` seen read-only at ``where`` (a read-only bind mount)."""
    where.mkdir()
    _mount("--bind", str(source), str(where))
    try:
        _mount("-o", "remount,bind,ro", str(where))
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _stdio(db: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=serve_args(db), env=server_env(), cwd=str(db.parent))


def _text(result: Any) -> str:
    return "\n".join(part.text for part in result.content)


async def test_a_full_disk_is_named_the_reads_go_on_and_nothing_acknowledged_is_lost(tmp_path: Path) -> None:
    acknowledged: list[str] = []
    with tmpfs(tmp_path / "small", "size=768k") as disk, (tmp_path / "server.log").open("w") as log:
        filler = disk / "filler"
        filler.write_bytes(os.urandom(128 * 1024))  # room to make once the disk is full
        db = disk / "m.db"
        async with client_session(stdio_client(_stdio(db), errlog=log)) as client:
            refusal = None
            for i in range(2000):
                fact = f"Fact {i}: the user keeps a notebook numbered {i * 7919} in drawer {i % 13}"
                result = await client.call_tool("remember", {"content": fact, "importance": 0.6})
                if result.is_error:
                    refusal = _text(result)
                    break
                acknowledged.append(fact)
            assert refusal is not None, "the disk never filled up"
            assert acknowledged, "the disk was full before the first memory"
            assert refusal.startswith(f"the disk holding the memory database {db} is full"), refusal
            assert "Error executing tool" not in refusal

            recalled = await client.call_tool("recall", {"query": "notebook in drawer", "top_k": 3})
            assert not recalled.is_error, _text(recalled)  # reading needs no room
            assert recalled.structured_content["results"], _text(recalled)
            listed = await client.call_tool("list_memories", {"limit": 500})
            assert not listed.is_error, _text(listed)
            assert {m["content"] for m in listed.structured_content["memories"]} == set(acknowledged)

            filler.unlink()  # room again: the same server stores again, no restart needed
            again = await client.call_tool("remember", {"content": "The user bought a bigger disk"})
            assert not again.is_error, _text(again)
            acknowledged.append("The user bought a bigger disk")
        copy = tmp_path / "copy"
        copy.mkdir()
        for part in disk.iterdir():
            if part.is_file() and part.name.startswith("m.db"):
                shutil.copy(part, copy / part.name)
    assert "Traceback" not in (tmp_path / "server.log").read_text()
    async with await HierarchicalMemory.create(MemoryConfig(db_path=copy / "m.db")) as memory:
        kept = {m.content for m in await memory.get_all("alice", limit=5000)}
    assert kept == set(acknowledged)


async def test_an_unusable_vector_index_directory_is_named_and_recall_still_answers(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    (tmp_path / "m.db.vectors").write_text("not a directory")  # a file where the index files go
    with (tmp_path / "server.log").open("w") as log:
        async with client_session(stdio_client(_stdio(db), errlog=log)) as client:
            for fact in ("The user plays the cello", "The user's dog is called Biscuit", "The user lives in Lyon"):
                stored = await client.call_tool("remember", {"content": fact})
                assert not stored.is_error, _text(stored)
            recalled = await client.call_tool("recall", {"query": "which instrument does she play?", "mode": "semantic"})
            assert not recalled.is_error, _text(recalled)
            assert recalled.structured_content["results"][0]["content"] == "The user plays the cello"
            assert recalled.structured_content["semantic_ready"]
            warning = recalled.content[-1].text
            assert warning.startswith(f"Warning: cannot write the vector index at {db}.vectors (a file is in its place)")
            assert "move that file away" in warning
    log_text = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log_text
    assert log_text.count("cannot write the vector index") == 1  # told once, not at every call


@pytest.mark.parametrize("existing", [False, True], ids=["new database", "existing database"])
def test_a_database_on_a_read_only_filesystem_is_one_line_and_exit_code_2(tmp_path: Path, existing: bool) -> None:
    source = tmp_path / "data"
    source.mkdir()
    if existing:
        done = subprocess.run([sys.executable, "-m", "memory_mcp", "import", "-", "--db-path", str(source / "m.db")],
                              input='{"user_id": "alice", "content": "The user likes tea"}\n', text=True,
                              capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
    before = {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()}
    with read_only_view(source, tmp_path / "ro") as ro:
        db = ro / "m.db"
        reading = [["export"], ["list"]] if existing else []  # (a command that only reads makes no database)
        for command in (["serve"], ["serve", "--transport", "http", "--port", "0"], *reading):
            done = subprocess.run([sys.executable, "-m", "memory_mcp", *command, "--db-path", str(db)],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2, (command, done.returncode, done.stderr[-2000:])
            assert len(lines) == 1, (command, lines)
            assert lines[0].startswith(f"memory-mcp: cannot open the memory database {db}"), lines
            assert "read-only filesystem" in lines[0], lines
    assert {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()} == before
    assert ("m.db" in before) == existing


async def test_temporary_files_left_by_a_crashed_save_are_removed_at_the_next_start(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    async with await HierarchicalMemory.create(MemoryConfig(db_path=db)) as memory:
        await memory.add("The user plays the cello", user_id="alice")
    vectors = tmp_path / "m.db.vectors"
    vectors.mkdir(exist_ok=True)
    crashed = vectors / "u1-7-0123abcd.99999999.tmp"  # no process has this id
    crashed.write_bytes(b"half an index")
    writer = subprocess.Popen(["sleep", "60"])  # stands for another server saving its index now
    try:
        live = vectors / f"u1-8-4567cdef.{writer.pid}.tmp"
        live.write_bytes(b"an index being written")
        async with await HierarchicalMemory.create(MemoryConfig(db_path=db)) as memory:
            hits = await memory.recall("cello", user_id="alice", mode="semantic")
            assert [h.memory.content for h in hits] == ["The user plays the cello"]
        assert not crashed.exists()
        assert live.exists()
    finally:
        writer.kill()
        writer.wait()
