"""Importing history: ChatGPT and Claude exports message by message (the branch the user ended
on, each message dated when it was said), server-memory graphs and Mem0 exports as facts; a re-run
stores nothing twice; damaged records are named and skipped; the format is told from the file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from export_samples import ChatGPTConversation, at, claude_conversation, mem0_memory, write_json, write_lines

from memory_mcp import HierarchicalMemory, MemoryFilter
from memory_mcp.errors import ImportSourceError
from memory_mcp.importers import detect, import_file, open_export

EVERYTHING = dict(all_levels=True, include_superseded=True, include_expired=True)


def trip() -> ChatGPTConversation:
    """A ChatGPT conversation with an edited message, a regenerated answer, a tool call, an image,
    an attachment, an empty message and text in several scripts."""
    chat = ChatGPTConversation("Trip planning", at("2023-05-14T09:59:00"))
    chat.add("user", "My sister Maya just moved to Porto to study architecture.", at("2023-05-14T10:00:00"))
    asked = chat.add("assistant", "That's exciting! Porto has a renowned school of architecture.", at("2023-05-14T10:01:00"))
    chat.add("user", "I'm flying to Paris on the 3rd of June.", at("2023-05-14T10:02:00"))  # then edited:
    chat.add("assistant", "Paris in June, lovely.", at("2023-05-14T10:02:30"))
    edited = chat.add("user", "I'm flying to Lisbon on the 3rd of June.", at("2023-05-14T10:03:00"), parent=asked)
    chat.add("assistant", "A first draft of the answer.", at("2023-05-14T10:03:30"))  # then regenerated:
    chat.add("assistant", "Lisbon in June is lovely; book the tram early.", at("2023-05-14T10:04:00"), parent=edited)
    chat.add("assistant", None, at("2023-05-14T10:05:00"), recipient="python",
             content={"content_type": "code", "language": "python", "text": "print(2 * 80)"})
    chat.add("tool", None, at("2023-05-14T10:05:10"), content={"content_type": "execution_output", "text": "160"})
    chat.add("assistant", "The flight takes 2 h 40 min.", at("2023-05-14T10:05:20"))
    chat.add("user", None, at("2023-05-14T10:06:00"), content={"content_type": "multimodal_text", "parts": [
        {"content_type": "image_asset_pointer", "asset_pointer": "file-service://file-1", "width": 800, "height": 600},
        "Here is my boarding pass",
    ]}, metadata={"attachments": [{"id": "file-1", "name": "boarding-pass.png", "mime_type": "image/png"}]})
    chat.add("user", "", at("2023-05-14T10:06:30"))
    leaf = chat.add("user", "Danke! 東京 next year — שלום 🎉", None)  # no time of its own: after the one before
    # The answer regenerated once more, and the user switched back to the branch above: the newest
    # branch is not the one they ended on.
    chat.add("assistant", "Another draft they switched away from.", at("2023-05-14T10:07:00"), parent=edited)
    chat.current = leaf
    return chat


TRIP_BRANCH = [
    "user: My sister Maya just moved to Porto to study architecture.",
    "assistant: That's exciting! Porto has a renowned school of architecture.",
    "user: I'm flying to Lisbon on the 3rd of June.",
    "assistant: Lisbon in June is lovely; book the tram early.",
    "assistant: The flight takes 2 h 40 min.",
    "user: Here is my boarding pass\n(attached: an image, boarding-pass.png)",
    "user: Danke! 東京 next year — שלום 🎉",
]


def garden(*more: tuple[str, str, str]) -> ChatGPTConversation:
    chat = ChatGPTConversation("Balcony garden", at("2024-02-01T18:00:00"), conversation_id="garden-1")
    chat.add("user", "I grow tomatoes and basil on my balcony.", at("2024-02-01T18:00:00"), node_id="g1")
    chat.add("assistant", "Basil likes the sun; water the tomatoes deeply.", at("2024-02-01T18:00:20"), node_id="g2")
    chat.add("user", "Thanks, that helps.", at("2024-02-01T18:01:00"), node_id="g3")
    for node_id, role, text in more:
        chat.add(role, text, at("2024-02-02T08:00:00"), node_id=node_id)
    return chat


def gym() -> ChatGPTConversation:
    chat = ChatGPTConversation("Gym", at("2024-03-01T07:00:00"))
    chat.add("user", "Which muscles does a deadlift train?", at("2024-03-01T07:00:00"))
    chat.add("assistant", "Mostly the hamstrings, glutes and back.", at("2024-03-01T07:00:10"))
    chat.add("user", "Thanks, that helps.", at("2024-03-01T07:01:00"))  # said before: reinforces, not stored twice
    return chat


async def _contents(memory: HierarchicalMemory, user: str = "me") -> list[Any]:
    return await memory.query(MemoryFilter(user_id=user, **EVERYTHING))


async def test_a_chatgpt_export_is_stored_message_by_message_on_the_branch_the_user_ended_on(
    memory: HierarchicalMemory, tmp_path: Path
) -> None:
    chat = trip()
    path = write_json(tmp_path / "conversations.json", [chat.record()])
    report = await import_file(memory, str(path), user_id="me")
    assert (report.format, report.records, report.messages, report.stored, report.refused) == ("chatgpt", 1, 7, 7, 0)
    stored = {m.content: m for m in await _contents(memory)}
    assert sorted(stored) == sorted(TRIP_BRANCH)  # no draft, no tool call, no system or empty message
    maya = stored[TRIP_BRANCH[0]]
    assert maya.valid_from.timestamp() == at("2023-05-14T10:00:00") and maya.scope_level.value == "user"
    assert stored[TRIP_BRANCH[-1]].valid_from.timestamp() == at("2023-05-14T10:06:30")
    node = next(k for k, n in chat.mapping.items() if n["message"] and n["message"]["content"].get("parts") == [
        "My sister Maya just moved to Porto to study architecture."])
    assert {k: v for k, v in maya.provenance.items() if k != "recorded_at"} == {
        "source": "chatgpt", "conversation_id": chat.id, "message_id": node, "conversation_title": "Trip planning"}
    # Its neighbours are its context: the words of the answer find the question.
    assert maya.context == "\n".join(TRIP_BRANCH[1:3])


async def test_a_fact_from_an_imported_conversation_is_recalled_dated_by_its_message(
    memory: HierarchicalMemory, tmp_path: Path
) -> None:
    path = write_json(tmp_path / "conversations.json", [trip().record(), garden().record()])
    await import_file(memory, str(path), "chatgpt", user_id="me")
    found = await memory.recall("Where does my sister live?", user_id="me", top_k=1)
    assert found[0].content == TRIP_BRANCH[0]
    assert found[0].memory.valid_from.timestamp() == at("2023-05-14T10:00:00")
    # as_of sees the history as it was: a minute before the flight was mentioned, it was not yet said.
    earlier = await memory.recall("flying to Lisbon", user_id="me", as_of="2023-05-14T10:02:59Z", mode="text")
    later = await memory.recall("flying to Lisbon", user_id="me", as_of="2023-05-14T10:03:00Z", mode="text")
    assert TRIP_BRANCH[2] not in [r.content for r in earlier] and TRIP_BRANCH[2] in [r.content for r in later]
    assert await memory.recall("tomatoes", user_id="me", as_of="2023-12-31T00:00:00Z", mode="text") == []


async def test_importing_again_stores_nothing_twice_and_a_longer_export_adds_only_its_new_messages(
    memory: HierarchicalMemory, tmp_path: Path
) -> None:
    path = write_json(tmp_path / "conversations.json", [trip().record(), garden().record(), gym().record()])
    first = await import_file(memory, str(path), user_id="me")
    assert (first.stored, first.repeated, first.already_present) == (12, 1, 0)  # "Thanks, that helps." twice
    before = {m.id: m.reinforcement_count for m in await _contents(memory)}
    again = await import_file(memory, str(path), user_id="me")
    assert (again.stored, again.repeated, again.already_present, again.refused) == (0, 0, 13, 0)
    assert {m.id: m.reinforcement_count for m in await _contents(memory)} == before
    grown = garden(("g4", "user", "The basil flowered, should I pinch it?"), ("g5", "assistant", "Yes, pinch the flowers."))
    later = await import_file(memory, str(write_json(tmp_path / "later.json", [grown.record()])), user_id="me")
    assert (later.stored, later.already_present) == (2, 3)
    assert len(await _contents(memory)) == len(before) + 2
    # The same export for another user is that user's own.
    other = await import_file(memory, str(path), user_id="you")
    assert other.stored == 12


@pytest.mark.sqlite_only
async def test_damaged_records_are_reported_by_number_and_the_rest_is_imported(
    memory: HierarchicalMemory, tmp_path: Path
) -> None:
    broken = garden().record()
    broken["conversation_id"] = broken["id"] = "broken-1"
    first = broken["mapping"]["g1"]["message"]
    first["content"]["parts"] = [123]
    broken["mapping"]["g3"]["message"]["content"]["parts"] = ["Thanks,\x00 that helps."]
    records = [trip().record(), 42, {"title": "no messages"}, broken, gym().record(), garden().record()]
    text = json.dumps(records)
    path = tmp_path / "conversations.json"
    path.write_text(text[: text.rindex("g3") - 40])  # the last conversation is cut short
    report = await import_file(memory, str(path), user_id="me")
    assert report.errors == [
        ("record 2", "expected a conversation object, got int"),
        ("record 3", "no 'mapping' of messages: not a ChatGPT conversation"),
        ("record 4, message g1", "a part of the message is a int, not text"),
        ("record 4, message g3", "content contains a NUL character"),
    ]
    assert report.stopped == "record 6: the file ends in the middle of a record: it was cut short; " \
        "the records before it were imported"
    contents = {m.content for m in await _contents(memory)}
    assert set(TRIP_BRANCH) <= contents and "assistant: Mostly the hamstrings, glutes and back." in contents
    assert "assistant: Basil likes the sun; water the tomatoes deeply." in contents  # the good message of record 4


@pytest.mark.sqlite_only
async def test_a_message_longer_than_a_memory_is_stored_in_parts(memory: HierarchicalMemory, tmp_path: Path) -> None:
    chat = ChatGPTConversation("Long answer", at("2024-05-01T12:00:00"))
    chat.add("user", "Explain the plan.", at("2024-05-01T12:00:00"))
    paragraphs = [f"Step {i}: " + "carefully " * 60 + "done." for i in range(30)]
    long_id = chat.add("assistant", "\n\n".join(paragraphs), at("2024-05-01T12:00:30"))
    report = await import_file(memory, str(write_json(tmp_path / "c.json", [chat.record()])), user_id="me")
    parts = sorted((m for m in await _contents(memory) if m.provenance.get("message_id") == long_id),
                   key=lambda m: m.provenance["part"])
    assert report.stored == 1 + len(parts) and len(parts) == 3
    assert [m.provenance["part"] for m in parts] == ["1/3", "2/3", "3/3"]
    assert all(len(m.content) <= 8000 and m.content.startswith("assistant: Step ") for m in parts)
    assert " ".join(m.content.removeprefix("assistant: ") for m in parts).split() == "\n\n".join(paragraphs).split()


@pytest.mark.sqlite_only
async def test_a_claude_export_follows_the_current_branch_and_notes_attachments(
    memory: HierarchicalMemory, tmp_path: Path
) -> None:
    linear = claude_conversation("Recipes", "2024-06-01T08:00:00Z", [
        {"sender": "human", "text": "I'm vegetarian and I love Sichuan food.", "created_at": "2024-06-01T08:00:00Z",
         "attachments": [{"file_name": "menu.txt", "file_type": "txt", "file_size": 120,
                          "extracted_content": "Mapo tofu, dan dan noodles"}]},
        {"sender": "assistant", "text": "", "created_at": "2024-06-01T08:00:40Z", "content": [
            {"type": "thinking", "thinking": "They want ideas."}, {"type": "text", "text": "Try mapo tofu with mushrooms."}]},
        {"sender": "human", "text": "", "created_at": "2024-06-01T08:01:00Z", "files": [{"file_name": "photo.jpg"}]},
        {"sender": "human", "text": "   ", "created_at": "2024-06-01T08:02:00Z"},
    ], uuid="claude-1")
    ids = {name: f"m-{name}" for name in ("q", "a", "tea", "coffee", "reply")}
    branched = claude_conversation("Drinks", "2024-06-02T09:00:00Z", [
        {"uuid": ids["q"], "sender": "human", "text": "Morning drink ideas?", "created_at": "2024-06-02T09:00:00Z",
         "parent_message_uuid": "00000000-0000-4000-8000-000000000000"},
        {"uuid": ids["a"], "sender": "assistant", "text": "Do you prefer tea or coffee?", "created_at": "2024-06-02T09:00:10Z",
         "parent_message_uuid": ids["q"]},
        {"uuid": ids["tea"], "sender": "human", "text": "I prefer tea.", "created_at": "2024-06-02T09:01:00Z",
         "parent_message_uuid": ids["a"]},
        {"uuid": ids["coffee"], "sender": "human", "text": "I prefer coffee, black.", "created_at": "2024-06-02T09:02:00Z",
         "parent_message_uuid": ids["a"]},
        {"uuid": ids["reply"], "sender": "assistant", "text": "A flat white then? No, black it is.",
         "created_at": "2024-06-02T09:02:10Z", "parent_message_uuid": ids["coffee"]},
    ], current_leaf_message_uuid=ids["reply"])
    path = write_json(tmp_path / "conversations.json", [linear, branched])
    report = await import_file(memory, str(path), user_id="me")
    assert (report.format, report.stored, report.refused) == ("claude", 7, 0)
    stored = {m.content: m for m in await _contents(memory)}
    assert sorted(stored) == sorted([
        "user: I'm vegetarian and I love Sichuan food.\n(attached: menu.txt)",
        "assistant: Try mapo tofu with mushrooms.",
        "user: (attached: photo.jpg)",
        "user: Morning drink ideas?", "assistant: Do you prefer tea or coffee?", "user: I prefer coffee, black.",
        "assistant: A flat white then? No, black it is.",
    ])
    coffee = stored["user: I prefer coffee, black."]
    assert coffee.valid_from.timestamp() == at("2024-06-02T09:02:00")
    assert coffee.provenance["message_id"] == ids["coffee"] and coffee.provenance["conversation_title"] == "Drinks"


@pytest.mark.sqlite_only
async def test_a_server_memory_graph_becomes_observations_and_relations(memory: HierarchicalMemory, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "memory.json", [
        {"type": "entity", "name": "Maya", "entityType": "person",
         "observations": ["Studies architecture in Porto", "Speaks Portuguese", "Speaks Portuguese"]},
        {"type": "entity", "name": "Porto", "entityType": "city", "observations": []},
        {"type": "relation", "from": "Maya", "to": "Porto", "relationType": "lives_in"},
        "{not json",
        {"type": "note", "text": "?"},
        {"type": "entity", "name": "Bob", "entityType": "person", "observations": "Plays chess"},
        {"type": "relation", "from": "Maya", "relationType": "knows"},
        {"type": "entity", "name": "Zoë", "entityType": "person", "observations": ["Lives in Zürich 🇨🇭"]},
    ])
    report = await import_file(memory, str(path), user_id="me")
    assert (report.format, report.records, report.stored) == ("server-memory", 8, 4)
    assert [where for where, _ in report.errors] == ["line 4", "line 5", "line 6", "line 7"]
    assert "expected 'entity' or 'relation'" in report.errors[1][1] and "list of strings" in report.errors[2][1]
    stored = {m.content: m for m in await _contents(memory)}
    assert set(stored) == {"Maya: Studies architecture in Porto", "Maya: Speaks Portuguese", "Maya lives in Porto",
                           "Zoë: Lives in Zürich 🇨🇭"}
    relation = stored["Maya lives in Porto"]
    assert relation.entity_refs == ["Maya", "Porto"] and relation.category.value == "entity"
    assert relation.provenance["relation"] == ["Maya", "lives_in", "Porto"]
    assert stored["Maya: Speaks Portuguese"].entity_refs == ["Maya"]
    assert stored["Maya: Speaks Portuguese"].provenance["entity_type"] == "person"
    found = await memory.search("Porto", user_id="me", mode="text", entity_refs=["Porto"])
    assert [r.content for r in found] == ["Maya lives in Porto"]
    again = await import_file(memory, str(path), user_id="me")
    assert (again.stored, again.already_present) == (0, 4)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("shape", ["results", "list"])
async def test_a_mem0_export_keeps_its_texts_times_and_ids_mapped_to_scopes(
    memory: HierarchicalMemory, tmp_path: Path, shape: str
) -> None:
    memories = [
        mem0_memory("a1", "Alice is allergic to shellfish", "alice", "2024-01-05T10:00:00.123456-08:00",
                    categories=["health"], metadata={"origin": "chat"}),
        mem0_memory("a2", "Alice wants a window seat on the Lisbon trip", "alice", "2024-02-01T09:00:00Z",
                    "2024-02-03T12:30:00Z", run_id="trip-42", agent_id="planner"),
        mem0_memory("a3", "Prefers metric units", None, "2024-03-01T00:00:00Z"),
        {"id": "a4", "user_id": "alice", "created_at": "2024-03-02T00:00:00Z"},
        mem0_memory("a5", "Likes jazz", "alice", "2024-03-03T00:00:00Z", metadata=["not", "an", "object"]),
        mem0_memory("a6", "Moved to Berlin", "alice", "in March"),
    ]
    path = write_json(tmp_path / "mem0.json", {"results": memories} if shape == "results" else memories)
    report = await import_file(memory, str(path), user_id="me")
    assert (report.format, report.stored) == ("mem0", 3)
    assert [where for where, _ in report.errors] == ["record 4", "record 5", "record 6"]
    assert "no 'memory' text" in report.errors[0][1] and "not an ISO 8601 time" in report.errors[2][1]
    alice = {m.content: m for m in await _contents(memory, "alice")}
    shellfish, seat = alice["Alice is allergic to shellfish"], alice["Alice wants a window seat on the Lisbon trip"]
    assert shellfish.scope_level.value == "user" and shellfish.metadata == {"origin": "chat", "categories": ["health"]}
    assert shellfish.valid_from.timestamp() == at("2024-01-05T18:00:00.123456")
    assert (seat.session_id, seat.agent_id) == ("trip-42", "planner")
    assert seat.valid_from.timestamp() == at("2024-02-03T12:30:00")  # when its current text was written
    assert seat.provenance["memory_id"] == "a2" and seat.provenance["created_at"] == "2024-02-01T09:00:00Z"
    assert [m.content for m in await _contents(memory, "me")] == ["Prefers metric units"]
    again = await import_file(memory, str(path), user_id="me")
    assert (again.stored, again.already_present) == (0, 3)


def _samples(tmp_path: Path) -> dict[str, Path]:
    archive = tmp_path / "chatgpt-export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("user.json", json.dumps({"id": "user-1"}))
        z.writestr("conversations.json", json.dumps([trip().record()]))
    pretty = tmp_path / "mem0-pretty.json"
    pretty.write_text(json.dumps({"results": [mem0_memory("x", "Likes tea", "u", "2024-01-01T00:00:00Z")]}, indent=2))
    return {
        "chatgpt": write_json(tmp_path / "chatgpt.json", [trip().record()]),
        "chatgpt-zip": archive,
        "claude": write_json(tmp_path / "claude.json", [claude_conversation("c", "2024-01-01T00:00:00Z", [])]),
        "server-memory": write_lines(tmp_path / "graph.json", [{"type": "relation", "from": "a", "to": "b",
                                                                "relationType": "knows"}]),
        "mem0": write_json(tmp_path / "mem0.json", [mem0_memory("x", "Likes tea", "u", "2024-01-01T00:00:00Z")]),
        "mem0-pretty": pretty,
        "jsonl": write_lines(tmp_path / "memories.jsonl", [{"user_id": "u", "content": "Likes tea"}]),
    }


def test_the_format_is_told_from_the_first_bytes(tmp_path: Path) -> None:
    for name, path in _samples(tmp_path).items():
        source, found = open_export(str(path))
        source.close()
        assert found == ("server-memory" if name == "server-memory" else name.split("-")[0]), name
    assert detect(b"  [\n  {\"title\": \"x\", \"create_time\": 1.0, \"mapping\": {\"a\": ") == "chatgpt"  # cut mid-record


def test_a_file_of_no_known_format_or_the_wrong_one_is_one_clear_error(tmp_path: Path) -> None:
    samples = _samples(tmp_path)
    with pytest.raises(ImportSourceError, match=r"looks like a ChatGPT export, not a Claude export: use --format chatgpt"):
        open_export(str(samples["chatgpt"]), "claude")
    (tmp_path / "notes.txt").write_text("Dear diary,\n")
    with pytest.raises(ImportSourceError, match=r"cannot tell what kind of export .*notes.txt is \(it starts with "
                                                r"'Dear diary,\\n'\): give --format"):
        open_export(str(tmp_path / "notes.txt"))
    with pytest.raises(ImportSourceError, match="unknown format 'csv'"):
        open_export(str(samples["chatgpt"]), "csv")
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("photos/1.jpg", b"\xff\xd8")
    with pytest.raises(ImportSourceError, match="zip archive without a conversations.json"):
        open_export(str(other))


def test_the_command_line_offers_every_format() -> None:
    from memory_mcp.cli import _parser
    from memory_mcp.importers import FORMATS

    load = _parser()._subparsers._group_actions[0].choices["import"]  # type: ignore[union-attr]
    choices = next(a.choices for a in load._actions if a.dest == "format")
    assert tuple(choices) == FORMATS
