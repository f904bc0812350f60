"""Small promises of the command line and the settings: ``--version``, and a database path given
with ``~`` (from an environment variable or a JSON ``args`` array, where no shell expands it)
means the home directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from memory_mcp import MemoryConfig, __version__
from memory_mcp.server import ServerSettings


def test_version_is_printed_and_the_process_exits_zero() -> None:
    done = subprocess.run([sys.executable, "-m", "memory_mcp", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"memory-mcp {__version__}"


@pytest.mark.parametrize("kind", [MemoryConfig, ServerSettings])
def test_a_tilde_in_the_database_path_is_the_home_directory(
    kind: type[MemoryConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MEMORY_MCP_DB_PATH", "~/memories.db")
    assert kind().db_path == tmp_path / "memories.db"
    assert kind(db_path="~/other/m.db").db_path == tmp_path / "other" / "m.db"  # as --db-path gives it
    assert kind(db_path="plain.db").db_path == Path("plain.db")


def _damaged(path: Path, kind: str) -> Path:
    if kind == "random bytes":
        path.write_bytes(bytes(range(256)) * 32)
    elif kind == "header only":
        path.write_bytes(b"SQLite format 3\x00" + bytes(84))
    elif kind == "text file":
        path.write_text("these are my notes, not a database\n" * 50)
    else:  # a directory where the file should be
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["random bytes", "header only", "text file", "directory"])
def test_a_database_that_cannot_be_opened_is_one_line_and_exit_code_2(tmp_path: Path, kind: str) -> None:
    bad = _damaged(tmp_path / "memories.db", kind)
    before = bad.read_bytes() if bad.is_file() else None
    for transport in ("stdio", "http"):
        done = subprocess.run(
            [sys.executable, "-m", "memory_mcp", "serve", "--db-path", str(bad), "--transport", transport,
             "--port", "0"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (transport, done.returncode, done.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith(f"memory-mcp: cannot open the memory database {bad}"), lines
        assert "Traceback" not in done.stderr
    if before is not None:
        assert bad.read_bytes() == before  # nothing was written to it


async def test_the_library_says_the_same_in_a_storage_error(tmp_path: Path) -> None:
    from memory_mcp import HierarchicalMemory
    from memory_mcp.errors import StorageError

    bad = _damaged(tmp_path / "memories.db", "random bytes")
    with pytest.raises(StorageError, match="damaged or not a memory database"):
        await HierarchicalMemory.create(MemoryConfig(db_path=bad))


def test_the_browser_on_a_busy_port_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "memory_mcp", "ui", "--port", str(port), "--db-path", str(tmp_path / "m.db")],
            capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 2
    assert done.stderr.startswith(f"memory-mcp ui: cannot listen on 127.0.0.1:{port}") and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "m.db").exists()  # said before the database is opened


def test_the_browser_beside_mcp_needs_the_http_transport(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "memory_mcp", "serve", "--ui", "--db-path", str(tmp_path / "m.db")],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "--transport http" in done.stderr
