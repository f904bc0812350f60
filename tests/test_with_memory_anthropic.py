"""``with_memory(Anthropic())`` with the real ``anthropic`` package against a local Messages API server.

The server (tests/fake_anthropic.py) speaks the Messages API's wire format, JSON and server-sent
events, and records each request, so these tests see the ``system`` the wrapper really sent and
what the SDK's own code (``Message``, ``Stream``, ``MessageStream``) made of the edited answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from anthropic import Anthropic, AsyncAnthropic
from anthropic.types import Message, RawContentBlockDeltaEvent
from fake_anthropic import FakeAnthropic, FakeAnthropicServer
from fake_openai import Reply
from wrapper_support import (
    CHUNK_SIZES,
    HOSTILE,
    PREFERENCE,
    assert_fenced,
    block,
    engine,
    fact,
    memories_in,
    wrapper,
)

from memory_mcp import SyncHierarchicalMemory

__all__ = ["engine"]  # a fixture, used by name

MODEL = "claude-sonnet-4-5"
VISIBLE = "Sure, Berlin is lovely in spring.\nEnjoy <b>the</b> move!"
CALL = {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
TOOLS = [{"name": "get_weather", "description": "Weather now", "input_schema": {"type": "object"}}]


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropicServer() as server:
        yield server


@pytest.fixture
def wrap(fake: FakeAnthropic, engine: SyncHierarchicalMemory) -> Callable[..., Any]:
    return wrapper(fake.base_url, engine, Anthropic)


def say(text: str, **kwargs: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": text}], **kwargs}


def test_a_preference_told_once_is_recalled_into_system_and_the_block_never_shows(
    wrap: Callable[..., Any], fake: FakeAnthropic
) -> None:
    client = wrap()
    fake.script(f"Noted: Python it is.\n\n{block(fact(PREFERENCE, category='preference', importance=0.8))}",
                "Python, as you prefer.")
    first = client.messages.create(**say("I prefer Python for backend work"))
    assert isinstance(first, Message)
    assert [(b.type, b.text) for b in first.content] == [("text", "Noted: Python it is.")]
    assert memories_in(fake.system_text(0)) == [] and "<memory>" in fake.system_text(0)
    second = client.messages.create(**say("What language should I use?"))
    assert second.content[0].text == "Python, as you prefer."
    assert [(m["content"], m["category"]) for m in memories_in(fake.system_text(1))] == [(PREFERENCE, "preference")]
    assert [(m.content, m.category.value) for m in client.memory.get_all()] == [(PREFERENCE, "preference")]
    assert client.memory.get_all()[0].provenance["response_id"] == "msg_1"


def test_a_system_string_or_blocks_is_extended_and_the_caller_s_arguments_stay_as_they_were(
    wrap: Callable[..., Any], fake: FakeAnthropic
) -> None:
    client = wrap()
    client.memory.add(PREFERENCE, category="preference")
    blocks = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    messages = [{"role": "user", "content": [{"type": "text", "text": "Which language for my backend?"}]}]
    before = json.dumps([blocks, messages])
    fake.script("Python.", "Python.")
    client.messages.create(model=MODEL, max_tokens=64, system="You are terse.", messages=messages)
    client.messages.create(model=MODEL, max_tokens=64, system=blocks, messages=messages)
    assert json.dumps([blocks, messages]) == before
    as_string, as_blocks = (fake.requests[0]["system"], fake.requests[1]["system"])
    assert as_string.startswith("You are terse.\n\n") and "<memory>" in as_string
    assert as_blocks[0] == blocks[0] and len(as_blocks) == 2  # the caller's block, cache_control and all, first
    assert as_string.removeprefix("You are terse.\n\n") == as_blocks[1]["text"]
    assert [m["content"] for m in memories_in(as_blocks[1]["text"])] == [PREFERENCE]
    assert fake.requests[0]["messages"] == messages


def test_supersession_by_the_label_the_model_was_shown(wrap: Callable[..., Any], fake: FakeAnthropic) -> None:
    client = wrap()
    fake.script("Nice." + block(fact("User works at Google")))
    client.messages.create(**say("I work at Google"))
    fake.script("Congrats!" + block(fact("User works at Anthropic", supersedes="m1")))
    client.messages.create(**say("I changed jobs: I work at Anthropic now"))
    assert memories_in(fake.system_text())[0]["id"] == "m1"
    current = client.memory.get_all()
    assert [m.content for m in current] == ["User works at Anthropic"]
    assert [m.content for m in client.memory.history(current[0].id)] == ["User works at Google", "User works at Anthropic"]


# -- streaming ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_create_stream_shows_the_text_as_it_comes_and_holds_the_block_back(
    wrap: Callable[..., Any], fake: FakeAnthropic, chunk_size: int
) -> None:
    client = wrap()
    fake.script(Reply(VISIBLE + "\n\n```json\n" + block(fact("User moved to Berlin")) + "\n```", chunk_size=chunk_size))
    deltas = []
    for event in client.messages.create(**say("I moved to Berlin"), stream=True):
        if event.type == "content_block_delta":
            assert isinstance(event, RawContentBlockDeltaEvent) and event.index == 0
            deltas.append(event.delta.text)
            if len("".join(deltas)) < len(VISIBLE):
                assert client.memory.get_all() == []  # stored only once the stream has ended
    assert "".join(deltas) == VISIBLE
    assert all(deltas) and not any(marker in "".join(deltas) for marker in ("<memory", "memories", "```"))
    if chunk_size <= 5:
        assert len(deltas) >= 5  # piece by piece, not one lump at the end
    assert [m.content for m in client.memory.get_all()] == ["User moved to Berlin"]
    assert client.memory.get_all()[0].provenance["response_id"] == "msg_1"


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_messages_stream_text_stream_and_final_message_show_the_answer_without_the_block(
    wrap: Callable[..., Any], fake: FakeAnthropic, chunk_size: int
) -> None:
    client = wrap()
    fake.script(Reply(VISIBLE + block(fact("User moved to Berlin")), chunk_size=chunk_size))
    with client.messages.stream(**say("I moved to Berlin")) as stream:
        shown = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(shown) == VISIBLE and "<memory" not in "".join(shown)
    assert [(b.type, b.text) for b in final.content] == [("text", VISIBLE)]
    assert fake.requests[-1]["stream"] is True and "<memory>" in fake.system_text()
    assert [m.content for m in client.memory.get_all()] == ["User moved to Berlin"]


@pytest.mark.parametrize("chunk_size", [1, 4, 64])
def test_a_text_block_holding_only_the_block_is_removed_and_later_blocks_keep_their_content(
    wrap: Callable[..., Any], fake: FakeAnthropic, chunk_size: int
) -> None:
    # The API refuses an empty text block when the message is sent back in the next turn.
    client = wrap()
    tool_first = Reply(["Let me check.", "\n\n" + block(fact("User lives in Oslo"))], tool_calls=[CALL],
                       chunk_size=chunk_size)
    fake.script(tool_first, tool_first, tool_first)
    plain = client.messages.create(**say("Weather at home? I live in Oslo"), tools=TOOLS)
    with client.messages.stream(**say("Weather at home? I live in Oslo"), tools=TOOLS) as stream:
        events = list(stream)
        streamed = stream.get_final_message()
    raw = list(client.messages.create(**say("Weather at home? I live in Oslo"), tools=TOOLS, stream=True))
    for message in (plain, streamed):
        assert [b.type for b in message.content] == ["text", "tool_use"]
        assert message.content[0].text == "Let me check."
        assert (message.content[1].name, message.content[1].input) == ("get_weather", {"city": "Oslo"})
    assert [e.index for e in raw if e.type == "content_block_start"] == [0, 1]
    assert [e.content_block.type for e in events if e.type == "content_block_stop"] == ["text", "tool_use"]
    assert [m.content for m in client.memory.get_all()] == ["User lives in Oslo"]


@pytest.mark.parametrize("answer", ["Write the tag as <mem", "Close it with ``", "Trailing space  \n"])
@pytest.mark.parametrize("chunk_size", [1, 3, 64])
def test_text_held_back_as_a_possible_block_is_released_when_the_block_never_comes(
    wrap: Callable[..., Any], fake: FakeAnthropic, answer: str, chunk_size: int
) -> None:
    client = wrap()
    fake.script(Reply(answer, chunk_size=chunk_size), Reply(answer, chunk_size=chunk_size))
    with client.messages.stream(**say("Show me")) as stream:
        shown = list(stream.text_stream)
        final = stream.get_final_message()
    raw = client.messages.create(**say("Show me"), stream=True)
    assert "".join(shown) == answer and final.content[0].text == answer
    assert "".join(e.delta.text for e in raw if e.type == "content_block_delta") == answer


def test_a_stream_abandoned_before_its_end_stores_nothing(wrap: Callable[..., Any], fake: FakeAnthropic) -> None:
    client = wrap()
    fake.script(Reply("Okay." + block(fact("User likes kites")), chunk_size=3))
    with client.messages.stream(**say("I like kites")) as stream:
        next(iter(stream.text_stream))
    assert client.memory.get_all() == []


# -- tool use, async -------------------------------------------------------------------------------------


def test_tool_use_passes_through_and_the_follow_up_recalls_for_the_question_and_is_remembered(
    wrap: Callable[..., Any], fake: FakeAnthropic
) -> None:
    client = wrap()
    client.memory.add("User prefers temperatures in Celsius", category="preference")
    messages: list[Any] = [{"role": "user", "content": "What is the temperature in Oslo right now? I live there."}]
    fake.script(Reply(None, tool_calls=[CALL]))
    first = client.messages.create(model=MODEL, max_tokens=256, messages=messages, tools=TOOLS)
    assert first.stop_reason == "tool_use" and [b.type for b in first.content] == ["tool_use"]
    assert first.content[0].input == {"city": "Oslo"}
    messages += [{"role": "assistant", "content": first.content},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "20C"}]}]
    fake.script("It is 20 °C in Oslo." + block(fact("User lives in Oslo")))
    second = client.messages.create(model=MODEL, max_tokens=256, messages=messages, tools=TOOLS)
    assert second.content[0].text == "It is 20 °C in Oslo."
    assert fake.requests[-1]["messages"][1]["content"][0]["type"] == "tool_use"  # sent back as the SDK made it
    # The tool result has no words of the user's: recall used the question that started the turn.
    assert "User prefers temperatures in Celsius" in [m["content"] for m in memories_in(fake.system_text())]
    assert sorted(m.content for m in client.memory.get_all()) == ["User lives in Oslo",
                                                                  "User prefers temperatures in Celsius"]


async def test_async_client_create_stream_and_messages_stream(wrap: Callable[..., Any], fake: FakeAnthropic) -> None:
    client = wrap(AsyncAnthropic)
    fake.script("Noted." + block(fact(PREFERENCE, category="preference")))
    message = await client.messages.create(**say("I prefer Python for backend work"))
    assert isinstance(message, Message) and message.content[0].text == "Noted."
    fake.script(Reply("Python." + block(fact("User asked about languages", scope="session")), chunk_size=2))
    stream = await client.messages.create(**say("Which language should I use?"), stream=True)
    text = "".join([e.delta.text async for e in stream if e.type == "content_block_delta"])
    assert text == "Python."
    assert [m["content"] for m in memories_in(fake.system_text())] == [PREFERENCE]
    fake.script(Reply("Go, then." + block(fact("User is learning Go")), chunk_size=3))
    async with client.messages.stream(**say("And for a CLI tool?")) as managed:
        shown = [piece async for piece in managed.text_stream]
        final = await managed.get_final_message()
    assert "".join(shown) == "Go, then." and final.content[0].text == "Go, then."
    assert PREFERENCE in [m["content"] for m in memories_in(fake.system_text())]
    assert (await client.memory.stats())["total"] == 3


@pytest.mark.parametrize("hostile", HOSTILE)
def test_stored_text_cannot_break_out_of_the_injected_block(
    wrap: Callable[..., Any], fake: FakeAnthropic, hostile: str
) -> None:
    client = wrap()
    client.memory.add(hostile)
    fake.script("Ok.")
    assert client.messages.create(**say(hostile)).content[0].text == "Ok."
    assert_fenced(fake.system_text(), hostile)
    assert client.memory.stats()["total"] == 1


# -- the README's example -------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "claude_with_memory.py"


def test_readme_shows_the_anthropic_one_liner_and_its_runnable_example() -> None:
    readme = (ROOT / "README.md").read_text()
    assert 'client = with_memory(Anthropic(), user_id="alice")' in readme
    assert "[examples/claude_with_memory.py](examples/claude_with_memory.py)" in readme


@pytest.mark.slow
def test_the_example_streams_the_answers_and_remembers(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.script(Reply("Python it is." + block(fact(PREFERENCE, category="preference")), chunk_size=4),
                Reply("Use Python, as you prefer.", chunk_size=4))
    env = {**os.environ, "ANTHROPIC_BASE_URL": fake.base_url, "ANTHROPIC_API_KEY": "test-key", "MODEL": "local-model",
           "MEMORY_MCP_DB_PATH": str(tmp_path / "example.db")}
    run = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "Python it is.\n" in run.stdout and "Use Python, as you prefer.\n" in run.stdout
    assert "<memory>" not in run.stdout and f"  [preference] {PREFERENCE}" in run.stdout
    assert [r["model"] for r in fake.requests] == ["local-model", "local-model"]
    assert [m["content"] for m in memories_in(fake.system_text(1))] == [PREFERENCE]
