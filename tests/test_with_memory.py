"""``with_memory(client)`` with the real ``openai`` package against a local OpenAI-compatible server.

The server (tests/fake_openai.py) returns scripted answers with ``<memory>`` blocks, streamed and
not, and records each request, so these tests see what the wrapper really sent over HTTP and what
the real client code path returned. The engine is the real one (SQLite, usearch, MiniLM).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, FakeOpenAIServer, Reply
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from wrapper_support import HOSTILE, PREFERENCE, assert_fenced, block, engine, fact, memories_in, wrapper

from memory_mcp import (
    InvalidArgumentError,
    MemoryCategory,
    MemoryFilter,
    MissingUserError,
    SyncHierarchicalMemory,
    with_memory,
)

__all__ = ["engine"]  # a fixture, used by name


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def wrap(fake: FakeOpenAI, engine: SyncHierarchicalMemory) -> Callable[..., Any]:
    return wrapper(fake.base_url, engine, OpenAI)


def ask(client: Any, text: str, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}], **kwargs)


# -- the documented examples --------------------------------------------------------------------------


def test_quick_start_preference_told_once_is_injected_into_the_next_conversation(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    # The default path: no engine passed, only db_path, as a user would write it.
    client = with_memory(OpenAI(base_url=fake.base_url, api_key="k"), user_id="alice", db_path=tmp_path / "m.db")
    fake.script(f"Noted: Python it is.\n\n{block(fact(PREFERENCE, category='preference', importance=0.8))}",
                "Python, as you prefer.")
    first = ask(client, "I prefer Python for backend work")
    assert isinstance(first, ChatCompletion)
    assert first.choices[0].message.content == "Noted: Python it is."
    assert memories_in(fake.system_text(0)) == []  # nothing known yet
    ask(client, "What language should I use?")
    injected = memories_in(fake.system_text(1))
    assert [(m["content"], m["category"]) for m in injected] == [(PREFERENCE, "preference")]
    assert "<memory>" in fake.system_text(1)  # the extraction instruction is sent every time
    assert [m.content for m in client.memory.get_all()] == [PREFERENCE]


def test_multi_session_memory_is_recalled_in_a_different_session(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    morning = wrap(user_id="bob", session_id="morning-session")
    afternoon = wrap(user_id="bob", session_id="afternoon-session")
    fake.script("Go is a fine choice." + block(fact("User prefers Go for performance-critical code",
                                                    category="preference", scope="user")), "Go.")
    ask(morning, "I prefer Go for performance-critical code")
    ask(afternoon, "What language for my new microservice?")
    assert [m["content"] for m in memories_in(fake.system_text())] == ["User prefers Go for performance-critical code"]


def test_full_conversation_flow_stores_each_item_with_its_category(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    client = wrap(user_id="developer_jane")
    fake.script("Great stack!\n" + block(
        fact("Python developer at a fintech startup"),
        fact("Uses PostgreSQL for databases", category="preference"),
        fact("Uses FastAPI for web APIs", category="preference"),
    ), "Stick with PostgreSQL.")
    ask(client, "I'm a Python developer at a fintech startup. We use PostgreSQL and FastAPI.")
    answer = ask(client, "What database should I use for my new project?")
    assert answer.choices[0].message.content == "Stick with PostgreSQL."
    stored = {m.content: m.category for m in client.memory.get_all()}
    assert stored == {
        "Python developer at a fintech startup": MemoryCategory.FACT,
        "Uses PostgreSQL for databases": MemoryCategory.PREFERENCE,
        "Uses FastAPI for web APIs": MemoryCategory.PREFERENCE,
    }
    injected = [m["content"] for m in memories_in(fake.system_text())]
    assert injected and injected[0] == "Uses PostgreSQL for databases"


def test_users_are_isolated_on_one_database(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    alice, bob = wrap(user_id="alice"), wrap(user_id="bob")
    fake.script("Ok." + block(fact("Alice's bank PIN hint is her cat's name")), "Hm.")
    ask(alice, "Remember my PIN hint is my cat's name")
    ask(bob, "What is Alice's PIN hint? Tell me about cats and PINs.")
    assert memories_in(fake.system_text()) == []
    assert bob.memory.get_all() == [] and bob.memory.search("PIN hint cat") == []
    assert bob.memory.stats()["total"] == 0 and alice.memory.stats()["total"] == 1


# -- supersession and what blocks may say ------------------------------------------------------------


def test_supersession_from_a_block_by_the_label_the_model_was_shown(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    client = wrap()
    fake.script("Nice." + block(fact("User works at Google")))
    ask(client, "I work at Google")
    fake.script("Congrats!" + block(fact("User works at Anthropic", supersedes="m1")))
    ask(client, "I changed jobs: I work at Anthropic now")
    assert memories_in(fake.system_text())[0]["id"] == "m1"
    current = client.memory.get_all()
    assert [m.content for m in current] == ["User works at Anthropic"]
    history = client.memory.history(current[0].id)
    assert [(m.content, m.is_current) for m in history] == [("User works at Google", False), ("User works at Anthropic", True)]


def test_supersession_by_exact_old_text_and_by_id(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    client = wrap()
    client.memory.add("User lives in Paris")
    lyon = client.memory.add("User drives a red car")
    fake.script("Ok." + block(fact("User lives in Lyon", supersedes="user lives in paris"),
                              fact("User drives a blue car", supersedes=lyon.id)))
    ask(client, "I moved to Lyon and repainted my car blue")
    assert sorted(m.content for m in client.memory.get_all()) == ["User drives a blue car", "User lives in Lyon"]
    assert all(len(client.memory.history(m.id)) == 2 for m in client.memory.get_all())


def test_a_supersedes_that_names_nothing_stores_a_new_memory(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    client = wrap()
    client.memory.add("User lives in Paris")
    fake.script("Ok." + block(fact("User has a dog", supersedes="m7")))
    ask(client, "I got a dog")
    assert sorted(m.content for m in client.memory.get_all()) == ["User has a dog", "User lives in Paris"]


def test_malformed_block_keeps_the_valid_items_and_the_whole_answer(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    client = wrap()
    answer = "Here is your plan:\n1. Rest\n2. Hydrate"
    fake.script(answer + "\n<memory>{'memories': [{'content': 'User is training for a marathon',}, "
                "{content: 'User runs in the morning', category: 'preference'}, {\"content\": 42}, oops]}</memory>")
    response = ask(client, "I'm training for a marathon and I run in the mornings")
    assert response.choices[0].message.content == answer
    stored = {m.content: m.category.value for m in client.memory.get_all()}
    assert stored == {"User is training for a marathon": "fact", "User runs in the morning": "preference"}


def test_an_answer_without_a_block_is_returned_unchanged_and_nothing_is_stored(
    wrap: Callable[..., Any], fake: FakeOpenAI
) -> None:
    client = wrap()
    answer = "Hello!  Nice to meet you.\n\n```python\nprint('<memo')\n```\n  "
    fake.script(answer, "Hi" + block())
    assert ask(client, "hi").choices[0].message.content == answer
    assert ask(client, "hello again").choices[0].message.content == "Hi"
    assert client.memory.stats()["total"] == 0


def test_scopes_in_a_block_land_where_they_say_and_no_narrower_than_the_wrapper(
    wrap: Callable[..., Any], fake: FakeOpenAI, engine: SyncHierarchicalMemory
) -> None:
    in_session = wrap(session_id="s1", agent_id="coder")
    fake.script("Ok." + block(fact("User prefers tabs"), fact("We are refactoring auth", scope="session"),
                              fact("Coder agent uses pytest", scope="agent"), fact("Scratch note", scope="turn", importance=0.3)))
    ask(in_session, "Let's refactor auth; I prefer tabs")
    levels = {m.content: m.scope_level.value for m in engine.query(MemoryFilter(user_id="alice", all_levels=True))}
    assert levels == {"User prefers tabs": "user", "We are refactoring auth": "session",
                      "Coder agent uses pytest": "agent", "Scratch note": "turn"}
    other_session = wrap(session_id="s2")
    assert [m.content for m in other_session.memory.get_all()] == ["User prefers tabs"]
    assert "Scratch note" not in [m.content for m in in_session.memory.get_all()]  # a turn's memory stays in it
    no_session = wrap(user_id="carol")
    fake.script("Ok." + block(fact("Carol likes jazz", scope="session"), fact("Carol scratch", scope="turn")))
    ask(no_session, "I like jazz")
    assert {m.content: m.scope_level.value for m in no_session.memory.get_all()} == {"Carol likes jazz": "user"}


# -- streaming ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 8, 13, 64])
def test_streaming_holds_back_the_block_split_across_chunks(
    wrap: Callable[..., Any], fake: FakeOpenAI, chunk_size: int
) -> None:
    client = wrap()
    visible = "Sure, Berlin is lovely in spring.\nEnjoy <b>the</b> move!"
    fake.script(Reply(visible + "\n\n```json\n" + block(fact("User moved to Berlin")) + "\n```", chunk_size=chunk_size))
    stream = ask(client, "I moved to Berlin", stream=True)
    deltas = []
    for chunk in stream:
        assert isinstance(chunk, ChatCompletionChunk)
        if chunk.choices and chunk.choices[0].delta.content:
            deltas.append(chunk.choices[0].delta.content)
        if "</b>" in "".join(deltas) and not "".join(deltas).endswith("move!"):
            assert client.memory.get_all() == []  # stored only once the stream has ended
    assert "".join(deltas) == visible
    assert all("<" not in d or "<b>" in "".join(deltas) for d in deltas)
    assert not any(marker in "".join(deltas) for marker in ("<memory", "memories", "```"))
    assert [m.content for m in client.memory.get_all()] == ["User moved to Berlin"]


def test_streaming_text_arrives_before_the_stream_ends(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    client = wrap()
    fake.script(Reply("One two three four five six seven." + block(fact("User counts")), chunk_size=4))
    shown = []
    with ask(client, "count", stream=True) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                shown.append(chunk.choices[0].delta.content)
    assert len(shown) >= 5  # streamed piece by piece, not released in one lump at the end
    assert "".join(shown) == "One two three four five six seven."


def test_stream_abandoned_before_the_block_ends_stores_nothing(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    client = wrap()
    fake.script(Reply("Okay." + block(fact("User likes kites")), chunk_size=3))
    stream = ask(client, "I like kites", stream=True)
    next(iter(stream)), next(iter(stream))
    stream.close()
    assert client.memory.get_all() == []


# -- async client, event loops, tool calls, message shapes -------------------------------------------


async def test_async_client_remembers_and_recalls(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    client = wrap(AsyncOpenAI)
    fake.script("Noted." + block(fact(PREFERENCE, category="preference")))
    response = await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "I prefer Python for backend work"}]
    )
    assert isinstance(response, ChatCompletion) and response.choices[0].message.content == "Noted."
    fake.script(Reply("Python." + block(fact("User asked about languages", scope="session")), chunk_size=2))
    stream = await client.chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": "Which language should I use?"}]
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Python."
    assert [m["content"] for m in memories_in(fake.system_text())] == [PREFERENCE]
    found = await client.memory.search("Python for the backend")
    assert found[0].content == PREFERENCE
    assert (await client.memory.stats())["total"] == 2


async def test_sync_client_works_inside_a_running_event_loop(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    assert asyncio.get_running_loop() is not None
    client = wrap()
    fake.script("Ok." + block(fact("User lives in Oslo")))
    assert ask(client, "I live in Oslo").choices[0].message.content == "Ok."
    assert [m.content for m in client.memory.get_all()] == ["User lives in Oslo"]


def test_tool_call_responses_pass_through_and_the_follow_up_is_remembered(
    wrap: Callable[..., Any], fake: FakeOpenAI
) -> None:
    client = wrap()
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    fake.script(Reply(None, tool_calls=[call]))
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo? I live there."}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
    assert first.choices[0].message.content is None
    assert first.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert client.memory.get_all() == []
    messages += [first.choices[0].message, {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 20C"}]
    fake.script("Sunny in Oslo." + block(fact("User lives in Oslo")))
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
    assert second.choices[0].message.content == "Sunny in Oslo."
    assert [m.content for m in client.memory.get_all()] == ["User lives in Oslo"]
    fake.script(Reply(None, tool_calls=[call]))
    streamed = list(client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools, stream=True))
    assert streamed[-1].choices[0].finish_reason == "tool_calls"
    assert any(c.choices and c.choices[0].delta.tool_calls for c in streamed)


def test_list_of_parts_content_is_read_for_recall_and_sent_unchanged(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    client = wrap()
    client.memory.add(PREFERENCE, category="preference")
    parts = [{"type": "text", "text": "Which programming language should I pick?"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    fake.script("Python.")
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": parts}])
    assert fake.requests[-1]["messages"][-1]["content"] == parts
    assert [m["content"] for m in memories_in(fake.system_text())] == [PREFERENCE]


def test_the_caller_s_messages_are_not_changed_and_an_existing_system_message_is_extended(
    wrap: Callable[..., Any], fake: FakeOpenAI
) -> None:
    client = wrap()
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]
    before = json.dumps(messages)
    fake.script("Hi.")
    client.chat.completions.create(model="gpt-4o", messages=messages)
    assert json.dumps(messages) == before
    sent = fake.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[0]["content"].startswith("You are terse.\n\n") and "<memory>" in sent[0]["content"]


def test_every_choice_is_cleaned_and_the_response_keeps_its_type(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    client = wrap()
    fake.script(Reply("Yes." + block(fact("User likes chess")), choices=3))
    response = ask(client, "I like chess", n=3)
    assert isinstance(response, ChatCompletion)
    assert [c.message.content for c in response.choices] == ["Yes.", "Yes.", "Yes."]
    assert [m.content for m in client.memory.get_all()] == ["User likes chess"]


# -- injected memories stay data ---------------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE)
def test_stored_text_cannot_break_out_of_the_injected_block(
    wrap: Callable[..., Any], fake: FakeOpenAI, hostile: str
) -> None:
    client = wrap()
    client.memory.add(hostile)
    fake.script("Ok.")
    ask(client, hostile)
    assert_fenced(fake.system_text(), hostile)
    assert client.memory.stats()["total"] == 1  # and the echoed text was not stored as a memory


# -- the .memory API ----------------------------------------------------------------------------------


def test_memory_api_search_add_get_all_stats_supersede_history(wrap: Callable[..., Any]) -> None:
    client = wrap()
    senior = client.memory.add("User is a senior engineer", category="fact", importance=0.9)
    client.memory.add("User likes dark mode", category="preference")
    assert client.memory.search("python preferences", top_k=5)  # something, best first
    assert client.memory.search("seniority at work", top_k=1)[0].content == "User is a senior engineer"
    stats = client.memory.stats()
    assert stats["total"] == 2 and stats["categories"] == {"fact": 1, "preference": 1}
    staff = client.memory.supersede(senior.id, "User is a staff engineer")
    assert [m.content for m in client.memory.history(staff.id)] == ["User is a senior engineer", "User is a staff engineer"]
    assert sorted(m.content for m in client.memory.get_all()) == ["User is a staff engineer", "User likes dark mode"]
    with pytest.raises(InvalidArgumentError, match="scope"):
        client.memory.add("x", scope="planet")


def test_memory_clear_removes_this_session_only_unless_asked(wrap: Callable[..., Any]) -> None:
    one, two = wrap(session_id="one"), wrap(session_id="two")
    one.memory.add("User prefers tea")
    one.memory.add("Session one task: write docs", scope="session")
    two.memory.add("Session two task: fix bug", scope="session")
    assert one.memory.clear() == 1
    assert sorted(m.content for m in two.memory.get_all()) == ["Session two task: fix bug", "User prefers tea"]
    assert one.memory.clear(all_sessions=True) == 2
    assert two.memory.get_all() == []


# -- what cannot be wrapped, and bad arguments ---------------------------------------------------------


class _NoChat:
    pass


class _ChatWithoutCompletions:
    chat = object()


class _MessagesWithoutCreate:
    class messages:  # noqa: N801 - a resource, as a client has it
        stream = staticmethod(lambda **kwargs: None)


@pytest.mark.parametrize(("client", "missing"), [
    (_NoChat(), "client.chat, no client.messages and no client.responses."),
    (_ChatWithoutCompletions(), "client.chat.completions, no client.messages and no client.responses."),
    (_MessagesWithoutCreate(), "client.chat, no client.messages.create and no client.responses."),
])
def test_a_client_without_a_surface_gets_a_clear_error_naming_what_is_missing(
    client: Any, missing: str, engine: SyncHierarchicalMemory
) -> None:
    with pytest.raises(TypeError, match=re.escape(f"cannot wrap {type(client).__name__}: it has no {missing}")) as error:
        with_memory(client, user_id="alice", memory=engine)
    for call in ("client.chat.completions.create(model=..., messages=...)",
                 "client.messages.create(model=..., max_tokens=..., messages=...)",
                 "client.responses.create(model=..., input=...)"):
        assert call in str(error.value)


def test_chat_completions_stream_helper_shows_and_returns_the_answer_without_the_block(
    wrap: Callable[..., Any], fake: FakeOpenAI
) -> None:
    client = wrap()
    fake.script(Reply("Berlin it is." + block(fact("User moved to Berlin")), chunk_size=3))
    with client.chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": "I moved"}]) as stream:
        shown = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(shown) == "Berlin it is." and final.choices[0].message.content == "Berlin it is."
    assert "<memory>" in fake.system_text()
    assert [m.content for m in client.memory.get_all()] == ["User moved to Berlin"]


def test_bad_wrapper_arguments_are_refused(fake: FakeOpenAI, engine: SyncHierarchicalMemory) -> None:
    client = OpenAI(base_url=fake.base_url, api_key="k")
    with pytest.raises(MissingUserError):
        with_memory(client, user_id="  ", memory=engine)
    with pytest.raises(InvalidArgumentError, match="top_k"):
        with_memory(client, user_id="a", top_k=-1, memory=engine)
    with pytest.raises(InvalidArgumentError, match="session_id"):
        with_memory(client, user_id="a", session_id="x" * 1000, memory=engine)


def test_a_memory_that_cannot_be_stored_does_not_fail_the_call(
    wrap: Callable[..., Any], fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    client = wrap()
    fake.script("Fine." + block(fact("x" * 20_000), fact("User likes short notes")))
    assert ask(client, "note this").choices[0].message.content == "Fine."
    assert [m.content for m in client.memory.get_all()] == ["User likes short notes"]
    assert any("could not store" in r.getMessage() for r in caplog.records)


# -- the README's example -------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "chat_with_memory.py"


def test_readme_shows_the_runnable_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    code = EXAMPLE.read_text().split('"""', 2)[2].strip()  # the example without its docstring
    assert f"```python\n{code}\n```" in readme
    assert 'client = with_memory(OpenAI(), user_id="alice")' in readme


def test_the_readme_example_runs_against_an_openai_compatible_endpoint(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.script("Python it is." + block(fact(PREFERENCE, category="preference")), "Use Python, as you prefer.")
    env = {**os.environ, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test-key", "MODEL": "local-model",
           "MEMORY_MCP_DB_PATH": str(tmp_path / "example.db")}
    run = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "Python it is.\n" in run.stdout and "<memory>" not in run.stdout
    assert f"  [preference] {PREFERENCE}" in run.stdout
    assert [r["model"] for r in fake.requests] == ["local-model", "local-model"]
    assert [m["content"] for m in memories_in(fake.system_text(1))] == [PREFERENCE]
