"""Export and import as JSON lines: a round trip restores the same memories, chains and scopes;
bad lines are reported and the rest kept; the CLI shows progress on a terminal only."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from memory_mcp import HierarchicalMemory, MemoryFilter

EVERYTHING = dict(all_levels=True, include_superseded=True, include_expired=True)


async def _fill(memory: HierarchicalMemory) -> dict[str, Any]:
    """Memories of two users at every scope, a three-version chain, a promoted one, a turn note."""
    paris = await memory.add("Alice lives in Paris", user_id="alice", entity_refs=["Paris"], metadata={"src": "chat"})
    lyon = await memory.supersede(paris.id, "Alice lives in Lyon")
    oslo = await memory.supersede(lyon.id, "Alice lives in Oslo", importance=0.7)
    await memory.add("We are refactoring the auth module", user_id="alice", session_id="s1", category="context")
    await memory.add("The coder agent prefers pytest", user_id="alice", session_id="s1", agent_id="coder")
    await memory.add("Scratch: compare two libraries", user_id="alice", session_id="s1", turn_id="t1", importance=0.2)
    promoted = await memory.add("Alice is allergic to peanuts", user_id="alice", session_id="s2", importance=0.95)
    await memory.add("Bob plays the cello", user_id="bob", session_id="b1", category="preference")
    await memory.add("Alice likes green tea", user_id="alice")
    await memory.add("Alice likes green tea", user_id="alice")  # reinforced, not stored twice
    return {"chain": [paris.id, lyon.id, oslo.id], "promoted": promoted.id}


def _records(text: str) -> list[dict[str, Any]]:
    return sorted((json.loads(line) for line in text.splitlines()), key=lambda r: r["id"])


async def test_round_trip_restores_versions_chains_scopes_and_search(open_memory: Any, tmp_path: Path) -> None:
    source = await open_memory()
    try:
        ids = await _fill(source)
        exported = io.StringIO()
        assert await source.export_jsonl(exported) == 9
        before = {m.id: m for m in await source.query(MemoryFilter(user_id="alice", **EVERYTHING))}
    finally:
        await source.close()
    target = await open_memory(db_path=tmp_path / "copy.db")
    try:
        await _check_copy(target, exported.getvalue(), before, ids)
    finally:
        await target.close()


async def _check_copy(target: HierarchicalMemory, exported_text: str, before: dict[str, Any], ids: dict[str, Any]) -> None:
    exported = io.StringIO(exported_text)
    report = await target.import_jsonl(exported.getvalue().splitlines())
    assert (report.imported, report.already_present, report.errors) == (9, 0, [])
    again = io.StringIO()
    await target.export_jsonl(again)
    assert _records(again.getvalue()) == _records(exported.getvalue())  # every field, every version

    after = {m.id: m for m in await target.query(MemoryFilter(user_id="alice", **EVERYTHING))}
    assert after == {k: v.model_copy(update={"embedded": True}) for k, v in before.items()}
    history = await target.get_history(ids["chain"][1])
    assert [m.id for m in history] == ids["chain"] and [m.is_current for m in history] == [False, False, True]
    promoted = await target.get(ids["promoted"])
    assert promoted.scope_level.value == "user" and promoted.origin_session_id == "s2"
    # Both indexes know the imported memories: a paraphrase finds the current city, a word finds tea.
    found = await target.recall("which city is Alice's home?", user_id="alice", mode="semantic", top_k=1)
    assert [r.id for r in found] == [ids["chain"][2]]
    assert [r.content for r in await target.text_search("tea", user_id="alice")] == ["Alice likes green tea"]
    assert await target.text_search("cello", user_id="alice") == []  # Bob's stays Bob's
    # An import can be run again: nothing is stored twice.
    report = await target.import_jsonl(exported.getvalue().splitlines())
    assert (report.imported, report.already_present) == (0, 9)
    assert (await target.stats()).total == 9


async def test_export_of_one_user_holds_only_that_user(memory: HierarchicalMemory) -> None:
    await _fill(memory)
    out = io.StringIO()
    assert await memory.export_jsonl(out, user_id="bob") == 1
    assert {r["user_id"] for r in _records(out.getvalue())} == {"bob"}
    assert await memory.export_jsonl(io.StringIO(), user_id="nobody") == 0


async def test_bad_lines_are_reported_by_number_and_the_rest_is_imported(memory: HierarchicalMemory) -> None:
    good = {"user_id": "carol", "content": "Carol sails on weekends"}
    full = {"id": "m-1", "user_id": "carol", "content": "Carol speaks Dutch", "created_at": "2025-01-02T03:04:05Z",
            "valid_from": "2025-01-02T03:04:05Z", "category": "fact"}
    lines = [
        json.dumps(good),                                          # 1: added
        "this is not json",                                        # 2
        "[1, 2, 3]",                                               # 3
        json.dumps({**full, "category": "feeling"}),               # 4: bad category
        json.dumps({**full, "id": "m-2", "content": "x" * 9000}),  # 5: too long
        json.dumps({"user_id": "carol"}),                          # 6: no content
        json.dumps({**good, "colour": "red"}),                     # 7: unknown field
        "",                                                        # blank lines are skipped
        json.dumps(full),                                          # 9: restored with its id and time
        json.dumps({**full, "id": "m-3", "user_id": " "}),         # 10: no user
    ]
    report = await memory.import_jsonl(lines)
    assert report.imported == 2
    assert [number for number, _ in report.errors] == [2, 3, 4, 5, 6, 7, 10]
    messages = dict(report.errors)
    assert "not a JSON object" in messages[2] and "category" in messages[4] and "8000" in messages[5]
    assert "colour" in messages[7] and "user_id" in messages[10]
    stored = {m.content: m for m in await memory.query(MemoryFilter(user_id="carol", **EVERYTHING))}
    assert set(stored) == {"Carol sails on weekends", "Carol speaks Dutch"}
    assert stored["Carol speaks Dutch"].id == "m-1" and stored["Carol speaks Dutch"].valid_from.year == 2025


def _cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memory_mcp", *args, "--log-level", "WARNING"],
                          capture_output=True, text=True, timeout=300, **kwargs)


async def test_cli_export_import_round_trip_quiet_when_piped(open_memory: Any, tmp_path: Path) -> None:
    source = await open_memory(db_path=tmp_path / "a.db")
    try:
        await _fill(source)
    finally:
        await source.close()
    target = await open_memory(db_path=tmp_path / "b.db")
    await target.close()
    a, b = (
        ["--database-url", str(engine.config.database_url)] if engine.config.database_url
        else ["--db-path", str(engine.config.db_path)]
        for engine in (source, target)
    )
    exported = _cli("export", *a)
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) == 9 and "exported 9" in exported.stderr
    assert "\r" not in exported.stderr and "it/s" not in exported.stderr  # no bar when not a terminal
    dump = tmp_path / "dump.jsonl"
    dump.write_text(exported.stdout + "not json\n")
    imported = _cli("import", str(dump), *b)
    assert imported.returncode == 1  # a bad line makes the exit code say so ...
    assert "line 10: not a JSON object" in imported.stderr and "imported 9" in imported.stderr  # ... and the rest is in
    assert "\r" not in imported.stderr and "Traceback" not in imported.stderr
    again = _cli("export", *b, "-o", str(tmp_path / "again.jsonl"))
    assert again.returncode == 0
    assert _records((tmp_path / "again.jsonl").read_text()) == _records(exported.stdout)


def test_cli_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    dump = tmp_path / "many.jsonl"
    dump.write_text("".join(json.dumps({"user_id": "dan", "content": f"Dan fact number {i} about topic {i * 7}"}) + "\n"
                            for i in range(300)))
    leader, follower = os.openpty()
    try:
        run = subprocess.run([sys.executable, "-m", "memory_mcp", "import", str(dump), "--db-path",
                              str(tmp_path / "t.db"), "--log-level", "WARNING"],
                             stdout=subprocess.PIPE, stderr=follower, timeout=300)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert run.returncode == 0
    text = shown.decode(errors="replace")
    assert "100%" in text and "B/s" in text and "300 records read" in text and "imported 300" in text
