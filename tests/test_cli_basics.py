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
