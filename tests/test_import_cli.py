"""``memory-mcp import`` in a subprocess: a ChatGPT archive as it came, damaged files, files that
cannot be read, and ``--extract`` against a local OpenAI-compatible server (the real HTTP wire
format, recorded by the server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from export_samples import at, write_json
from fake_openai import FakeOpenAIServer
from test_importers import TRIP_BRANCH, garden, gym, trip

from memory_mcp import HierarchicalMemory, MemoryConfig, MemoryFilter
from memory_mcp.extraction import EXTRACTION_INSTRUCTION
from memory_mcp.importers import Extractor, import_file

pytestmark = pytest.mark.slow

EVERYTHING = dict(all_levels=True, include_superseded=True, include_expired=True)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memory_mcp", "import", *args, "--log-level", "WARNING"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL)


async def _stored(db: Path, user: str = "me") -> list[Any]:
    async with await HierarchicalMemory.create(MemoryConfig(db_path=db)) as memory:
        return await memory.query(MemoryFilter(user_id=user, **EVERYTHING))


async def test_a_chatgpt_archive_is_imported_as_it_came_and_again_adds_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "chatgpt-export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("user.json", json.dumps({"id": "user-1"}))
        z.writestr("conversations.json", json.dumps([trip().record(), garden().record(), gym().record()]))
    db = tmp_path / "m.db"
    done = _cli(str(archive), "--user-id", "me", "--db-path", str(db))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ("imported 12, repeated 1, already present 0, refused 0 "
                                   "(read 3 conversations, 13 messages)")  # no bar, no log when piped
    assert set(TRIP_BRANCH) <= {m.content for m in await _stored(db)}
    again = _cli("--format", "chatgpt", str(archive), "--user-id", "me", "--db-path", str(db))
    assert again.returncode == 0 and "imported 0, repeated 0, already present 13" in again.stderr
    assert len(await _stored(db)) == 12


def test_damaged_records_are_named_and_the_exit_code_says_so(tmp_path: Path) -> None:
    path = write_json(tmp_path / "conversations.json", [trip().record(), "oops", garden().record()])
    done = _cli(str(path), "--user-id", "me", "--db-path", str(tmp_path / "m.db"))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "record 2: expected a conversation object, got str",
        "imported 10, repeated 0, already present 0, refused 1 (read 3 conversations, 10 messages)",
    ]


def _file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(("make", "said"), [
    (lambda p: p / "nope.json", "memory-mcp: no such file: {p}/nope.json"),
    (lambda p: _file(p / "empty.json", ""), "memory-mcp: {p}/empty.json is empty: there is nothing to import"),
    (lambda p: _file(p / "x.csv", "a,b\n1,2\n"),
     "memory-mcp: cannot tell what kind of export {p}/x.csv is (it starts with 'a,b\\n1,2\\n'): give --format, one of "
     "chatgpt, claude, server-memory, mem0, jsonl"),
])
def test_a_file_that_cannot_be_imported_is_one_line_and_exit_code_2(tmp_path: Path, make: Any, said: str) -> None:
    done = _cli(str(make(tmp_path)), "--db-path", str(tmp_path / "m.db"))
    assert (done.returncode, done.stderr.splitlines()) == (2, [said.format(p=tmp_path)])
    assert not (tmp_path / "m.db").exists()  # told before any database is opened


MEMORY_BLOCK = (
    "<memory>" + json.dumps({"memories": [
        {"content": "The user's sister Maya studies architecture in Porto", "category": "fact", "importance": 0.7,
         "scope": "user"},
        {"content": "The user flies to Lisbon on 3 June 2023", "category": "context", "importance": 0.6, "scope": "user"},
        {"content": "Wants tram tips for this trip", "category": "context", "scope": "session"},
    ]}) + "</memory>"
)


async def test_extract_distils_each_conversation_with_one_model_call_and_not_again(tmp_path: Path) -> None:
    chat = trip()
    path = write_json(tmp_path / "conversations.json", [chat.record()])
    db = tmp_path / "m.db"
    with FakeOpenAIServer() as fake:
        fake.script(MEMORY_BLOCK)
        env = {"MEMORY_MCP_EXTRACT_BASE_URL": fake.base_url, "MEMORY_MCP_EXTRACT_API_KEY": "sk-test"}
        done = _cli(str(path), "--extract", "--extract-model", "test-model", "--user-id", "me", "--db-path", str(db),
                    env=env)
        assert done.returncode == 0, done.stderr
        assert "imported 2," in done.stderr and "1 model call, 1 fact about one conversation only left out" in done.stderr
        (request,) = fake.requests
        assert request["model"] == "test-model"
        system, user = request["messages"]
        assert EXTRACTION_INSTRUCTION in system["content"]
        assert "[2023-05-14 10:00 UTC] user: My sister Maya just moved to Porto" in user["content"]
        assert "Paris" not in user["content"] and "draft" not in user["content"]  # the branch the user ended on
        facts = {m.content: m for m in await _stored(db)}
        assert set(facts) == {"The user's sister Maya studies architecture in Porto",
                              "The user flies to Lisbon on 3 June 2023"}
        maya = facts["The user's sister Maya studies architecture in Porto"]
        assert maya.importance == 0.7 and maya.provenance["extracted_by"] == "test-model"
        assert maya.provenance["conversation_id"] == chat.id
        assert maya.valid_from.timestamp() == at("2023-05-14T10:06:30")  # the chunk's last message
        again = _cli(str(path), "--extract", "--extract-model", "test-model", "--user-id", "me", "--db-path", str(db),
                     env=env)
        assert again.returncode == 0 and len(fake.requests) == 1  # the chunk is known: no second call
        assert "already present 1" in again.stderr


def test_extract_without_a_reachable_model_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    path = write_json(tmp_path / "conversations.json", [trip().record()])
    no_model = _cli(str(path), "--extract", "--db-path", str(tmp_path / "m.db"))
    assert (no_model.returncode, no_model.stderr.strip()) == (
        2, "memory-mcp: --extract needs a model: give --extract-model NAME or set MEMORY_MCP_EXTRACT_MODEL")
    with FakeOpenAIServer() as fake:
        port = fake.port
    down = _cli(str(path), "--extract", "--extract-model", "m", "--extract-base-url", f"http://127.0.0.1:{port}/v1",
                "--db-path", str(tmp_path / "m.db"))
    lines = down.stderr.strip().splitlines()
    assert down.returncode == 2 and "Traceback" not in down.stderr
    assert lines[0].startswith(f"stopped at record 1: cannot reach the model at http://127.0.0.1:{port}/v1/chat/completions")
    assert lines[1].startswith("imported 0,")


async def test_the_library_extracts_through_the_same_endpoint(memory: HierarchicalMemory, tmp_path: Path) -> None:
    path = write_json(tmp_path / "conversations.json", [garden().record()])
    with FakeOpenAIServer() as fake:
        fake.script('<memory>{"memories": [{"content": "The user grows tomatoes and basil on the balcony"}]}</memory>')
        extractor = Extractor("m", fake.base_url)
        try:
            report = await import_file(memory, str(path), user_id="me", extractor=extractor)
        finally:
            await extractor.aclose()
    assert (report.stored, report.model_calls, report.messages) == (1, 1, 3)
    found = await memory.recall("what does the user grow?", user_id="me", top_k=1)
    assert found[0].content == "The user grows tomatoes and basil on the balcony"
    assert found[0].memory.provenance["last_message_id"] == "g3"


async def test_a_long_conversation_is_one_model_call_per_chunk_of_whole_messages(
    memory: HierarchicalMemory, tmp_path: Path
) -> None:
    path = write_json(tmp_path / "conversations.json", [trip().record()])
    with FakeOpenAIServer() as fake:
        fake.script(*[f'<memory>{{"memories": [{{"content": "Fact number {n} about the trip"}}]}}</memory>'
                      for n in range(10)])
        extractor = Extractor("m", fake.base_url, chunk_chars=150)
        try:
            report = await import_file(memory, str(path), user_id="me", extractor=extractor)
        finally:
            await extractor.aclose()
    transcripts = [r["messages"][1]["content"] for r in fake.requests]
    assert report.model_calls == len(transcripts) == 3 and report.stored == 3
    joined = "\n".join(transcripts)
    assert all(joined.count("] " + message) == 1 for message in TRIP_BRANCH)  # every message once, whole
    assert [joined.index("] " + message) for message in TRIP_BRANCH] == sorted(
        joined.index("] " + message) for message in TRIP_BRANCH)  # in order
