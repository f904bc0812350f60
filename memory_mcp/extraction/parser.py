"""Finding ``<memory>`` blocks in a model's answer: the memories they hold and the answer without them.

Models write these blocks imperfectly: inside code fences, with trailing commas, single quotes or
Python literals, cut off at the end of the answer when the token limit hits, or with one broken
item among good ones. The parser keeps every item it can read, reports the rest, and never loses
or alters the answer around the blocks. :class:`StreamingAnswer` applies the same rules to an
answer arriving in pieces, so a stream shows exactly the text the non-streamed answer would.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from ..memory.models import MemoryCategory

log = logging.getLogger("memory_mcp.extraction")

Scope = Literal["user", "session", "agent", "turn"]
_SCOPES: tuple[str, ...] = ("user", "session", "agent", "turn")

_OPEN = re.compile(r"<memory>", re.IGNORECASE)
_CLOSE = re.compile(r"</memory>", re.IGNORECASE)
# After "<memory>": a block holds JSON (maybe fenced) or nothing. Anything else is prose that
# mentions the tag, such as an answer about XML, and stays in the answer.
# At the end of a partial answer, the start of a fence or closing tag counts: more may follow.
_BODY_START = re.compile(
    r"\s*(?:`{1,3}[\w-]*\s*)?(?:[{\[]|</memory>|(?:<(?:/(?:m(?:e(?:m(?:o(?:r(?:y)?)?)?)?)?)?)?)?\Z)", re.IGNORECASE
)
_FENCE_BEFORE = re.compile(r"```[\w-]*[ \t]*\n?[ \t]*\Z")
# The closing fence may be missing or, mid-stream, incomplete at the end of the answer.
_FENCE_AFTER = re.compile(r"[ \t]*\n?[ \t]*(?:```[ \t]*(?=\n|\Z)|`{0,2}\Z)")
_INNER_FENCE = re.compile(r"\A\s*```[\w-]*\s*|\s*```\s*\Z")
# What may still grow into a block opener at the end of a partial answer: "<mem", "```js", "```\n<".
_PARTIAL_OPENER = re.compile(r"(?:`{1,3}[\w-]*\s*)?(?:<(?:m(?:e(?:m(?:o(?:r(?:y)?)?)?)?)?)?)?\Z", re.IGNORECASE)


@dataclass(frozen=True)
class ExtractedMemory:
    """One memory the model asked to keep. ``scope`` None means the caller's default."""

    content: str
    category: MemoryCategory = MemoryCategory.FACT
    importance: float = 0.5
    scope: Scope | None = None
    supersedes: str | None = None


@dataclass
class ParsedAnswer:
    """The visible answer, the memories read from its blocks, and what could not be read."""

    text: str
    memories: list[ExtractedMemory] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    blocks: int = 0


def combine(answers: Iterable[ParsedAnswer]) -> ParsedAnswer | None:
    """One answer from the parsed pieces of an answer written in several parts (an Anthropic
    message's text blocks, a Responses output's text parts), in order; None when there are none."""
    answers = list(answers)
    if not answers:
        return None
    return ParsedAnswer(
        "".join(a.text for a in answers), [m for a in answers for m in a.memories],
        [p for a in answers for p in a.problems], sum(a.blocks for a in answers),
    )


def parse_answer(answer: str) -> ParsedAnswer:
    """Split ``answer`` into the text to show and the memories its ``<memory>`` blocks hold."""
    text, payloads = split_answer(answer)
    parsed = ParsedAnswer(text=text, blocks=len(payloads))
    for payload in payloads:
        items, problems = _read_payload(payload)
        parsed.problems.extend(problems)
        for item in items:
            memory, problem = _to_memory(item)
            if problem:
                parsed.problems.append(problem)
            if memory is not None:
                parsed.memories.append(memory)
    for problem in parsed.problems:
        log.warning("memory block: %s", problem)
    return parsed


def split_answer(answer: str) -> tuple[str, list[str]]:
    """The answer with every block removed, and each block's raw payload, in order."""
    pieces: list[str] = []
    payloads: list[str] = []
    pos = 0
    for start, body_start, body_end, end in _blocks(answer):
        start, end = _widen_to_fence(answer, pos, start, end)
        _join(pieces, answer[pos:start])
        payloads.append(answer[body_start:body_end])
        pieces.append("\0")  # seam marker, resolved below
        pos = end
    if not payloads:
        return answer, []
    _join(pieces, answer[pos:])
    return _close_seams(pieces), payloads


class StreamingAnswer:
    """Filters an answer that arrives in pieces: ``feed`` returns the text that may be shown now.

    Text that could still turn out to be (the start of) a block is held back until it is known;
    the concatenation of everything returned by ``feed`` and ``finish`` equals
    ``parse_answer(whole answer).text``.
    """

    def __init__(self) -> None:
        self.raw = ""
        self._shown = ""

    def feed(self, delta: str) -> str:
        self.raw += delta
        visible, _ = split_answer(self.raw)
        match = _PARTIAL_OPENER.search(visible)
        assert match is not None  # it matches the empty end at least
        # Space before a block disappears with it, so trailing space waits too.
        return self._advance(visible[: match.start()].rstrip())

    def finish(self) -> tuple[str, ParsedAnswer]:
        """The text not shown yet, and the whole answer parsed."""
        parsed = parse_answer(self.raw)
        return self._advance(parsed.text), parsed

    def _advance(self, visible: str) -> str:
        if not visible.startswith(self._shown):  # cannot happen by construction; never retract
            log.debug("streamed text diverged from the parsed answer; holding back the rest")
            return ""
        new = visible[len(self._shown) :]
        self._shown = visible
        return new


# -- finding blocks ---------------------------------------------------------------------------------


def _blocks(answer: str) -> Iterator[tuple[int, int, int, int]]:
    """(tag start, payload start, payload end, block end) of each block, left to right."""
    pos = 0
    while (opened := _OPEN.search(answer, pos)) is not None:
        body_start = opened.end()
        if not _BODY_START.match(answer, body_start):
            pos = body_start
            continue
        closed = _CLOSE.search(answer, body_start)
        reopened = _OPEN.search(answer, body_start)
        if closed is not None and (reopened is None or closed.start() < reopened.start()):
            yield opened.start(), body_start, closed.start(), closed.end()
            pos = closed.end()
        else:  # never closed: the block runs to the next block or to the end of the answer
            end = reopened.start() if reopened is not None else len(answer)
            yield opened.start(), body_start, end, end
            pos = end


def _widen_to_fence(answer: str, pos: int, start: int, end: int) -> tuple[int, int]:
    """Take a code fence that wraps exactly one block away with the block."""
    before = _FENCE_BEFORE.search(answer, pos, start)
    after = _FENCE_AFTER.match(answer, end)
    if before is not None and after is not None:
        return before.start(), after.end()
    return start, end


def _join(pieces: list[str], text: str) -> None:
    if text:
        pieces.append(text)


def _close_seams(pieces: list[str]) -> str:
    """Remove each block's seam: the blank space it leaves, and nothing else of the answer."""
    out = ""
    for index, piece in enumerate(pieces):
        if piece != "\0":
            out += piece
            continue
        rest = "".join(p for p in pieces[index + 1 :] if p != "\0")
        if not rest.strip():  # a block at the end: drop the space that led up to it
            out = out.rstrip()
        elif not out and pieces[index + 1] != "\0":  # a block at the start: drop the space after it
            pieces[index + 1] = pieces[index + 1].lstrip()
        elif out.endswith("\n") and pieces[index + 1 : index + 2] and pieces[index + 1].startswith("\n"):
            pieces[index + 1] = pieces[index + 1][1:]  # a block on its own line: drop that line
    return out


# -- reading payloads -------------------------------------------------------------------------------


def _read_payload(payload: str) -> tuple[list[Any], list[str]]:
    body = _INNER_FENCE.sub("", payload).strip()
    if not body:
        return [], []
    repaired = _repair(body)
    try:
        data = json.loads(repaired, strict=False)
    except ValueError:
        return _salvage(repaired)
    try:
        return _items(data), []
    except _NotMemories as error:
        return [], [str(error)]


class _NotMemories(Exception):
    pass


def _items(data: Any) -> list[Any]:
    if isinstance(data, dict) and "memories" in data:
        data = data["memories"]
    elif isinstance(data, dict) and "content" in data:
        data = [data]
    if not isinstance(data, list):
        raise _NotMemories(f"expected {{\"memories\": [...]}}, got {_snippet(json.dumps(data))}")
    return data


def _salvage(text: str) -> tuple[list[Any], list[str]]:
    """Keep every complete item object that parses; report what is left over."""
    items: list[Any] = []
    covered: list[tuple[int, int]] = []
    for start, end in _objects(text):
        if any(s <= start and end <= e for s, e in covered):
            continue
        try:
            data = json.loads(text[start:end], strict=False)
        except ValueError:
            continue
        if isinstance(data, dict) and "content" in data:
            items.append(data)
            covered.append((start, end))
    problems = []
    edges = [0, *(edge for span in sorted(covered) for edge in span), len(text)]
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        piece = text[start:end]
        if re.sub(r'[\s,\[\]{}:]|"memories"', "", piece):
            problems.append(f"could not read {_snippet(piece.strip(' ,'))}; kept the items around it")
    return items, problems


def _objects(text: str) -> Iterator[tuple[int, int]]:
    """Spans of balanced ``{...}`` in ``text`` (strings respected), outermost first."""
    starts: list[int] = []
    spans: list[tuple[int, int]] = []
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            starts.append(index)
        elif char == "}" and starts:
            spans.append((starts.pop(), index + 1))
    yield from sorted(spans)


_LITERALS = {"True": "true", "False": "false", "None": "null", "true": "true", "false": "false", "null": "null"}


def _repair(text: str) -> str:
    """Model-written JSON made strict: single-quoted strings, Python literals, unquoted keys and
    trailing commas are rewritten; text inside double-quoted strings is left as it is."""
    out: list[str] = []
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        if char == '"':
            end = _string_end(text, index, '"')
            out.append(text[index:end])
            index = end
        elif char == "'":
            end = _string_end(text, index, "'")
            inner = text[index + 1 : end - 1 if end <= size and text[end - 1] == "'" else end]
            out.append(json.dumps(inner.replace("\\'", "'"), ensure_ascii=False))
            index = end
        elif char == ",":
            following = text[index + 1 :].lstrip()
            if not following or following[0] not in "}]":
                out.append(char)
            index += 1
        elif char.isalpha() or char == "_":
            match = re.compile(r"[A-Za-z_]\w*").match(text, index)
            assert match is not None
            word = match.group()
            if text[match.end() :].lstrip().startswith(":"):
                out.append(json.dumps(word))
            else:
                out.append(_LITERALS.get(word, word))
            index = match.end()
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _string_end(text: str, start: int, quote: str) -> int:
    index = start + 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == quote:
            return index + 1
        index += 1
    return len(text)


# -- items ------------------------------------------------------------------------------------------


def _to_memory(item: Any) -> tuple[ExtractedMemory | None, str | None]:
    if not isinstance(item, dict):
        return None, f"skipped an item that is not an object: {_snippet(json.dumps(item))}"
    content = item.get("content")
    if not isinstance(content, str) or not content.strip():
        return None, f"skipped an item without content: {_snippet(json.dumps(item))}"
    notes: list[str] = []
    category = MemoryCategory.FACT
    raw_category = item.get("category")
    if raw_category is not None:
        try:
            category = MemoryCategory(str(raw_category).strip().lower())
        except ValueError:
            notes.append(f"category {raw_category!r} is not one of {[c.value for c in MemoryCategory]}; used 'fact'")
    importance = _importance(item.get("importance"), notes)
    scope: Scope | None = None
    raw_scope = item.get("scope")
    if isinstance(raw_scope, str) and raw_scope.strip().lower() in _SCOPES:
        scope = raw_scope.strip().lower()  # type: ignore[assignment]
    elif raw_scope is not None:
        notes.append(f"scope {raw_scope!r} is not one of {list(_SCOPES)}; used the default")
    supersedes = item.get("supersedes")
    if not isinstance(supersedes, str) or supersedes.strip().lower() in ("", "null", "none"):
        supersedes = None
    memory = ExtractedMemory(content.strip(), category, importance, scope, supersedes and supersedes.strip())
    problem = f"{_snippet(content)}: " + "; ".join(notes) if notes else None
    return memory, problem


def _importance(value: Any, notes: list[str]) -> float:
    if value is None:
        return 0.5
    if isinstance(value, bool):
        notes.append(f"importance {value!r} is not a number; used 0.5")
        return 0.5
    try:
        number = float(value)
    except (TypeError, ValueError):
        notes.append(f"importance {value!r} is not a number; used 0.5")
        return 0.5
    if not math.isfinite(number):
        notes.append(f"importance {value!r} is not finite; used 0.5")
        return 0.5
    if not 0.0 <= number <= 1.0:
        notes.append(f"importance {value!r} is outside 0..1; clamped")
    return min(1.0, max(0.0, number))


def _snippet(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
