"""``client.responses`` of a wrapped ``OpenAI()`` with the real ``openai`` package against a local server.

The server (tests/fake_openai.py) speaks the Responses API's wire format, JSON and its typed,
numbered server-sent events, and records each request, so these tests see the ``instructions``
the wrapper really sent and what the SDK's own code (``Response``, ``ResponseStream``) made of
the edited answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fake_openai import FakeOpenAI, FakeOpenAIServer, Reply
from openai import AsyncOpenAI, OpenAI
from openai.types.responses import Response
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

MODEL = "gpt-5"
VISIBLE = "Sure, Berlin is lovely in spring.\nEnjoy <b>the</b> move!"
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def wrap(fake: FakeOpenAI, engine: SyncHierarchicalMemory) -> Callable[..., Any]:
    return wrapper(fake.base_url, engine, OpenAI)


def texts_of(output: Any) -> list[str]:
    return [part.text for item in output if item.type == "message" for part in item.content]


def test_a_preference_told_once_is_recalled_into_instructions_and_the_block_never_shows(
    wrap: Callable[..., Any], fake: FakeOpenAI
) -> None:
    client = wrap()
    fake.script(f"Noted: Python it is.\n\n{block(fact(PREFERENCE, category='preference', importance=0.8))}",
                "Python, as you prefer.")
    first = client.responses.create(model=MODEL, input="I prefer Python for backend work")
    assert isinstance(first, Response)
    assert first.output_text == "Noted: Python it is." and texts_of(first.output) == ["Noted: Python it is."]
    assert memories_in(fake.instructions(0)) == [] and "<memory>" in fake.instructions(0)
    second = client.responses.create(model=MODEL, input="What language should I use?")
    assert second.output_text == "Python, as you prefer."
    assert [(m["content"], m["category"]) for m in memories_in(fake.instructions(1))] == [(PREFERENCE, "preference")]
    assert [(m.content, m.category.value) for m in client.memory.get_all()] == [(PREFERENCE, "preference")]
    assert client.memory.get_all()[0].provenance["response_id"] == "resp_1"


def test_instructions_are_extended_and_input_items_are_read_for_recall_and_sent_unchanged(
    wrap: Callable[..., Any], fake: FakeOpenAI
) -> None:
    client = wrap()
    client.memory.add(PREFERENCE, category="preference")
    given = [{"role": "developer", "content": "Answer in one word."},
             {"type": "message", "role": "user", "content": [
                 {"type": "input_text", "text": "Which programming language for my backend?"},
                 {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}]
    before = json.dumps(given)
    fake.script("Python.")
    client.responses.create(model=MODEL, instructions="You are terse.", input=given)
    assert json.dumps(given) == before and fake.requests[-1]["input"] == given
    sent = fake.instructions()
    assert sent.startswith("You are terse.\n\n") and "<memory>" in sent
    assert [m["content"] for m in memories_in(sent)] == [PREFERENCE]


def test_every_output_text_part_is_cleaned_and_all_their_memories_stored(
    wrap: Callable[..., Any], fake: FakeOpenAI
) -> None:
    client = wrap()
    fake.script(Reply(["Part one. " + block(fact("User likes chess")), "Part two." + block(fact("User plays Go"))]))
    response = client.responses.create(model=MODEL, input="I like chess and I play Go")
    assert texts_of(response.output) == ["Part one.", "Part two."]
    assert response.output_text == "Part one.Part two."
    assert sorted(m.content for m in client.memory.get_all()) == ["User likes chess", "User plays Go"]


def test_supersession_by_the_label_the_model_was_shown(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    client = wrap()
    fake.script("Nice." + block(fact("User works at Google")))
    client.responses.create(model=MODEL, input="I work at Google")
    fake.script("Congrats!" + block(fact("User works at Anthropic", supersedes="m1")))
    client.responses.create(model=MODEL, input="I changed jobs: I work at Anthropic now")
    assert memories_in(fake.instructions())[0]["id"] == "m1"
    current = client.memory.get_all()
    assert [m.content for m in current] == ["User works at Anthropic"]
    assert [m.content for m in client.memory.history(current[0].id)] == ["User works at Google", "User works at Anthropic"]


# -- streaming ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_create_stream_shows_the_text_as_it_comes_and_every_whole_text_is_cleaned(
    wrap: Callable[..., Any], fake: FakeOpenAI, chunk_size: int
) -> None:
    client = wrap()
    fake.script(Reply(VISIBLE + "\n\n```json\n" + block(fact("User moved to Berlin")) + "\n```", chunk_size=chunk_size))
    deltas, events = [], []
    for event in client.responses.create(model=MODEL, input="I moved to Berlin", stream=True):
        events.append(event)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
            if len("".join(deltas)) < len(VISIBLE):
                assert client.memory.get_all() == []  # stored only once the stream has ended
    assert "".join(deltas) == VISIBLE
    assert not any(marker in "".join(deltas) for marker in ("<memory", "memories", "```"))
    if chunk_size <= 5:
        assert sum(1 for d in deltas if d) >= 5  # piece by piece, not one lump at the end
    whole = {e.type: e for e in events}
    assert whole["response.output_text.done"].text == VISIBLE
    assert whole["response.content_part.done"].part.text == VISIBLE
    assert texts_of([whole["response.output_item.done"].item]) == [VISIBLE]
    assert whole["response.completed"].response.output_text == VISIBLE
    assert [e.sequence_number for e in events] == sorted(e.sequence_number for e in events)
    assert [m.content for m in client.memory.get_all()] == ["User moved to Berlin"]
    assert client.memory.get_all()[0].provenance["response_id"] == "resp_1"


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_responses_stream_events_and_final_response_show_the_answer_without_the_block(
    wrap: Callable[..., Any], fake: FakeOpenAI, chunk_size: int
) -> None:
    client = wrap()
    fake.script(Reply(VISIBLE + block(fact("User moved to Berlin")), chunk_size=chunk_size))
    with client.responses.stream(model=MODEL, input="I moved to Berlin") as stream:
        deltas = [(e.delta, e.snapshot) for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(d for d, _ in deltas) == VISIBLE and deltas[-1][1] == VISIBLE
    assert final.output_text == VISIBLE
    assert fake.requests[-1]["stream"] is True and "<memory>" in fake.instructions()
    assert [m.content for m in client.memory.get_all()] == ["User moved to Berlin"]


@pytest.mark.parametrize("answer", ["Write the tag as <mem", "Close it with ``", "Trailing space  \n"])
@pytest.mark.parametrize("chunk_size", [1, 3, 64])
def test_text_held_back_as_a_possible_block_is_released_when_the_block_never_comes(
    wrap: Callable[..., Any], fake: FakeOpenAI, answer: str, chunk_size: int
) -> None:
    client = wrap()
    fake.script(Reply(answer, chunk_size=chunk_size))
    with client.responses.stream(model=MODEL, input="Show me") as stream:
        events = list(stream)
        final = stream.get_final_response()
    shown = [e for e in events if e.type == "response.output_text.delta"]
    assert "".join(e.delta for e in shown) == answer and shown[-1].snapshot == answer
    assert final.output_text == answer


def test_a_stream_abandoned_before_its_end_stores_nothing(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    client = wrap()
    fake.script(Reply("Okay." + block(fact("User likes kites")), chunk_size=3))
    stream = client.responses.create(model=MODEL, input="I like kites", stream=True)
    for event in stream:
        if event.type == "response.output_text.delta":
            break
    stream.close()
    assert client.memory.get_all() == []


# -- tool calls, async, one wrapper for both OpenAI surfaces ------------------------------------------


def test_function_calls_pass_through_and_the_follow_up_recalls_for_the_question_and_is_remembered(
    wrap: Callable[..., Any], fake: FakeOpenAI
) -> None:
    client = wrap()
    client.memory.add("User prefers temperatures in Celsius", category="preference")
    given: list[Any] = [{"role": "user", "content": "What is the temperature in Oslo right now? I live there."}]
    fake.script(Reply(None, tool_calls=[CALL]))
    first = client.responses.create(model=MODEL, input=given, tools=TOOLS)
    assert [item.type for item in first.output] == ["function_call"] and first.output_text == ""
    assert (first.output[0].name, first.output[0].arguments) == ("get_weather", '{"city": "Oslo"}')
    given += [*first.output, {"type": "function_call_output", "call_id": "call_1", "output": "20C"}]
    fake.script(Reply("It is 20 °C in Oslo." + block(fact("User lives in Oslo")), chunk_size=4))
    with client.responses.stream(model=MODEL, input=given, tools=TOOLS) as stream:
        final = stream.get_final_response()
    assert final.output_text == "It is 20 °C in Oslo."
    assert fake.requests[-1]["input"][1]["type"] == "function_call"  # sent back as the SDK made it
    assert "User prefers temperatures in Celsius" in [m["content"] for m in memories_in(fake.instructions())]
    assert sorted(m.content for m in client.memory.get_all()) == ["User lives in Oslo",
                                                                  "User prefers temperatures in Celsius"]


async def test_async_client_create_stream_and_responses_stream(wrap: Callable[..., Any], fake: FakeOpenAI) -> None:
    client = wrap(AsyncOpenAI)
    fake.script("Noted." + block(fact(PREFERENCE, category="preference")))
    response = await client.responses.create(model=MODEL, input="I prefer Python for backend work")
    assert isinstance(response, Response) and response.output_text == "Noted."
    fake.script(Reply("Python." + block(fact("User asked about languages", scope="session")), chunk_size=2))
    stream = await client.responses.create(model=MODEL, input="Which language should I use?", stream=True)
    text = "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])
    assert text == "Python."
    assert [m["content"] for m in memories_in(fake.instructions())] == [PREFERENCE]
    fake.script(Reply("Go, then." + block(fact("User is learning Go")), chunk_size=3))
    async with client.responses.stream(model=MODEL, input="And for a CLI tool?") as managed:
        shown = [e.delta async for e in managed if e.type == "response.output_text.delta"]
        final = await managed.get_final_response()
    assert "".join(shown) == "Go, then." and final.output_text == "Go, then."
    assert PREFERENCE in [m["content"] for m in memories_in(fake.instructions())]
    assert (await client.memory.stats())["total"] == 3


def test_one_wrapper_remembers_through_chat_completions_and_recalls_through_responses(
    wrap: Callable[..., Any], fake: FakeOpenAI
) -> None:
    client = wrap()
    fake.script("Noted." + block(fact(PREFERENCE, category="preference")), "Python.")
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "I prefer Python"}])
    assert chat.choices[0].message.content == "Noted."
    assert client.responses.create(model=MODEL, input="Which language for my API?").output_text == "Python."
    assert [m["content"] for m in memories_in(fake.instructions())] == [PREFERENCE]
    assert fake.system_text(0).split("\n\n")[0] == fake.instructions().split("\n\n")[0]  # one instruction


@pytest.mark.parametrize("hostile", HOSTILE)
def test_stored_text_cannot_break_out_of_the_injected_block(
    wrap: Callable[..., Any], fake: FakeOpenAI, hostile: str
) -> None:
    client = wrap()
    client.memory.add(hostile)
    fake.script("Ok.")
    assert client.responses.create(model=MODEL, input=hostile).output_text == "Ok."
    assert_fenced(fake.instructions(), hostile)
    assert client.memory.stats()["total"] == 1
