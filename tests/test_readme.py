"""The README documents what the code does: its settings table and its two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

from memory_mcp.server.settings import ServerSettings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_table_and_nothing_else() -> None:
    documented = set(re.findall(r"^\| `MEMORY_MCP_([A-Z0-9_]+)`", README, re.MULTILINE))
    assert documented == {name.upper() for name in ServerSettings.model_fields}


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```bash\n(python3 -m venv .*)\n```", README)
    assert len(commands) == 2, commands
    test_command = next(c for c in commands if c.endswith("pytest"))
    assert test_command in (ROOT / ".ci" / "run").read_text()
