"""The official MCP Inspector, in CLI mode, against the stdio server: a client written by someone
else (the TypeScript SDK) must list the tools, store a memory and get it back.

    npx -y @modelcontextprotocol/inspector --cli [-e KEY=VALUE ...] \
        <python> -m memory_mcp serve ... --method ...

The Inspector is fetched from the npm registry by npx on first use (hence the long timeout). The
server's environment is the Inspector's own plus its ``-e`` options. Skipped only when node/npx are
not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import kill_leftovers

NPX = shutil.which("npx")
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NPX is None or NODE is None,
    reason="the MCP Inspector CLI needs node and npx on PATH (not found: "
    + ", ".join(name for name, path in (("node", NODE), ("npx", NPX)) if path is None)
    + ")",
)

INSPECTOR = "@modelcontextprotocol/inspector"
TIMEOUT_S = 600  # the first run downloads the Inspector from the npm registry
TOOLS = {"remember", "remember_conversation", "recall", "supersede", "history", "forget", "list_memories"}


def _env() -> dict[str, str]:
    # The Inspector passes its environment on to the server: keep MEMORY_MCP_* of the test run out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORY_MCP_")}
    env.setdefault("npm_config_yes", "true")
    return env


@pytest.fixture(autouse=True)
def no_server_outlives_the_test(tmp_path: Path) -> Iterator[None]:
    yield
    left = kill_leftovers(tmp_path, 15)
    assert not left, f"processes still running after the Inspector exited: {left}"


def inspector(
    *args: str, server: list[str], env: dict[str, str] | None = None, expect_ok: bool = True
) -> Any:
    """Run the Inspector CLI once; its stdout is the JSON result of the method."""
    command = [NPX or "npx", "-y", INSPECTOR, "--cli"]
    for key, value in (env or {}).items():
        command += ["-e", f"{key}={value}"]
    command += [sys.executable, *server, *args]
    started = time.monotonic()
    # Its own process group, so that on a timeout npx, node and the server all go together.
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"Inspector did not finish in {TIMEOUT_S} s: {command}\n{stderr[-4000:]}")
    done = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    print(f"\ninspector {' '.join(args)}: {time.monotonic() - started:.1f} s, exit {done.returncode}")
    if not expect_ok:
        return done
    assert done.returncode == 0, (
        f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    )
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"Inspector output is not JSON:\n{done.stdout[:4000]}\nstderr:\n{done.stderr[-4000:]}")


def serve(db: Path, user: str = "alice") -> list[str]:
    return ["-m", "memory_mcp", "serve", "--db-path", str(db), "--user-id", user]


def test_inspector_lists_tools_resources_and_prompts(tmp_path: Path) -> None:
    server = serve(tmp_path / "inspector.db")
    tools = inspector("--method", "tools/list", server=server)["tools"]
    assert {t["name"] for t in tools} == TOOLS
    by_name = {t["name"]: t for t in tools}
    assert by_name["remember"]["inputSchema"]["required"] == ["content"]
    assert not any("outputSchema" in t for t in tools), "output schemas are documented, not listed"
    assert "destructiveHint" not in by_name["forget"]["annotations"]  # destructive is the protocol default
    assert by_name["recall"]["annotations"]["readOnlyHint"] is True

    templates = inspector("--method", "resources/templates/list", server=server)["resourceTemplates"]
    assert "memory://users/{user_id}/memories{?offset,limit}" in {t["uriTemplate"] for t in templates}
    prompts = inspector("--method", "prompts/list", server=server)["prompts"]
    assert {p["name"] for p in prompts} == {"extract_memories", "memory_context"}


def test_inspector_remembers_then_gets_the_memory_back(tmp_path: Path) -> None:
    db = tmp_path / "inspector.db"
    server = serve(db)
    stored = inspector(
        "--method",
        "tools/call",
        "--tool-name",
        "remember",
        "--tool-arg",
        "content=Prefers tea over coffee, no sugar",
        "--tool-arg",
        "category=preference",
        "--tool-arg",
        "importance=0.9",
        server=server,
    )
    assert stored.get("isError") is False, stored
    memory = stored["structuredContent"]
    assert memory["content"] == "Prefers tea over coffee, no sugar"
    assert memory["category"] == "preference" and memory["importance"] == 0.9
    assert memory["id"] in stored["content"][0]["text"]

    # Each Inspector run is a new server process on the same database.
    found = inspector(
        "--method", "tools/call", "--tool-name", "recall", "--tool-arg", "query=tea coffee", server=server
    )
    assert [h["id"] for h in found["structuredContent"]["results"]] == [memory["id"]], found
    listed = inspector("--method", "tools/call", "--tool-name", "list_memories", server=server)
    assert [m["content"] for m in listed["structuredContent"]["memories"]] == [
        "Prefers tea over coffee, no sugar"
    ]

    read = inspector(
        "--method", "resources/read", "--uri", f"memory://memories/{memory['id']}", server=server
    )
    assert json.loads(read["contents"][0]["text"])["id"] == memory["id"]
    prompt = inspector(
        "--method",
        "prompts/get",
        "--prompt-name",
        "memory_context",
        "--prompt-args",
        "query=tea",
        server=server,
    )
    text = prompt["messages"][0]["content"]["text"]
    assert "<memories>" in text and memory["id"] in text

    # A bad call comes back as a tool error, not a crash.
    refused = inspector(
        "--method", "tools/call", "--tool-name", "forget", "--tool-arg", "memory_id=no-such-id", server=server
    )
    assert refused["isError"] is True and "no-such-id" in refused["content"][0]["text"]


def test_inspector_passes_settings_to_the_server_as_environment(tmp_path: Path) -> None:
    """No flags at all: the database and the user come from MEMORY_MCP_* set with -e."""
    db = tmp_path / "from-env.db"
    env = {"MEMORY_MCP_DB_PATH": str(db), "MEMORY_MCP_USER_ID": "carol"}
    stored = inspector(
        "--method",
        "tools/call",
        "--tool-name",
        "remember",
        "--tool-arg",
        "content=Carol rides a tandem",
        server=["-m", "memory_mcp", "serve"],
        env=env,
    )
    assert stored["isError"] is False, stored
    assert db.exists(), "MEMORY_MCP_DB_PATH was not used"
    mine = inspector(
        "--method",
        "tools/call",
        "--tool-name",
        "list_memories",
        server=["-m", "memory_mcp", "serve"],
        env=env,
    )
    assert [m["content"] for m in mine["structuredContent"]["memories"]] == ["Carol rides a tandem"]
    # carol was the default user: alice (named with the flag) has nothing there
    other = inspector("--method", "tools/call", "--tool-name", "list_memories", server=serve(db, "alice"))
    assert other["structuredContent"]["memories"] == []
