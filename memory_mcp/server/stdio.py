"""stdio that answers every request, even one whose line cannot be decoded.

The SDK's stdio transport parses each line with one pydantic adapter and drops, unanswered, a line
the adapter refuses: a lone UTF-16 surrogate (``"\\ud800"``), nesting deeper than its parser allows,
a raw control character in a string, a batch array, a missing ``"jsonrpc"``. The client waits for
that answer forever. Here each line is checked with the same adapter before the SDK sees it; a line
it refuses is answered with a JSON-RPC error that names the problem, carrying the request's id when
one can be read (``null`` otherwise, as JSON-RPC 2.0 has it), and is not passed on.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator
from io import TextIOWrapper
from typing import Any

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

_MAX_SHOWN = 200  # characters of a parser's message quoted in an error
_DEEPEST = 190  # the SDK's parser refuses a message nested about 200 levels deep
_TOO_DEEP = f"the message is nested {_DEEPEST} or more levels deep, deeper than the server reads: flatten it"
_MARKS = re.compile(r'["{}\[\]]')  # what changes the depth, and where strings start


async def serve_stdio(server: MCPServer) -> None:
    """``server.run("stdio")``, with every line checked first (see the module's docstring)."""
    lines = CheckedLines(anyio.wrap_file(TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")))
    lowlevel = server._lowlevel_server  # MCPServer.run_stdio_async does the same, with the SDK's own stdin
    async with stdio_server(stdin=lines) as (read_stream, write_stream):  # type: ignore[arg-type]
        lines.answer_to(write_stream)
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


class CheckedLines:
    """The lines of ``source`` that decode as JSON-RPC messages; each other line is answered."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._replies: Any = None
        self._ready = anyio.Event()

    def answer_to(self, write_stream: Any) -> None:
        self._replies = write_stream
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async for line in self._source:
            try:
                types.jsonrpc_message_adapter.validate_json(line, by_name=False)
            except Exception as exc:  # pydantic's or the JSON parser's refusal, whatever its type
                for error in refusals(line, exc):
                    await self._ready.wait()
                    await self._replies.send(SessionMessage(error))
                continue
            yield line


def refusals(line: str, exc: Exception) -> list[types.JSONRPCError]:
    """The errors that answer an undecodable line: one per request it holds (a batch holds several),
    one with id null for a line that is not JSON, none for a notification or a response."""
    if not line.strip():
        return []
    try:
        message = json.loads(line)
    except json.JSONDecodeError as bad:  # raw control characters land here too
        request_id = _top_level_id(line)
        why = bad.msg.removesuffix(" at")
        if why.startswith("Invalid control character"):
            why += " (a control character in a string is sent escaped, as \\u0000)"
        return [_error(request_id, types.PARSE_ERROR, f"the line is not valid JSON: {why} at character {bad.pos}")]
    except RecursionError:
        return [_error(_top_level_id(line), types.INVALID_REQUEST, _TOO_DEEP)]
    if isinstance(message, list):
        why = "batch arrays are not supported: send each request on a line of its own"
        answers = [_error(_request_id(m), types.INVALID_REQUEST, why) for m in message if _is_request(m)]
        return answers or [_error(None, types.INVALID_REQUEST, why)]
    if not isinstance(message, dict) or not ("method" in message or "result" in message or "error" in message):
        return [_error(_request_id(message), types.INVALID_REQUEST,
                       "a JSON-RPC message is an object with \"jsonrpc\": \"2.0\" and a \"method\"")]
    if not _is_request(message):
        return []  # a notification or a response is never answered
    return [_error(_request_id(message), types.INVALID_REQUEST, _why(message, exc))]


def _why(message: dict[str, Any], exc: Exception) -> str:
    if message.get("jsonrpc") != "2.0":
        return 'every message needs "jsonrpc": "2.0"'
    try:
        json.dumps(message, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "a string holds a lone UTF-16 surrogate (such as \\ud800), which is not text: send valid Unicode"
    except RecursionError:
        return _TOO_DEEP
    if _depth(message) >= _DEEPEST:
        return _TOO_DEEP
    said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"the message could not be read: {said[:_MAX_SHOWN]}"


def _is_request(message: Any) -> bool:
    return isinstance(message, dict) and "method" in message and _request_id(message) is not None


def _request_id(message: Any) -> str | int | None:
    value = message.get("id") if isinstance(message, dict) else None
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def _depth(value: Any, limit: int = _DEEPEST + 1) -> int:
    """How deeply ``value`` nests, counted up to ``limit``."""
    if limit <= 0 or not isinstance(value, dict | list):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, limit - 1) for child in children), default=0)


def _top_level_id(line: str) -> str | int | None:
    """The ``"id"`` of the outermost object of a line that does not parse as a whole (too deep, or a
    raw control character somewhere), read by walking the text: None when there is none to read."""
    depth, decoder = 0, json.JSONDecoder(strict=False)
    mark = _MARKS.search(line)
    while mark is not None:
        char, i = mark.group(), mark.start()
        if char == '"':
            try:
                key, end = decoder.raw_decode(line, i)
            except json.JSONDecodeError:
                return None
            after = len(line) - len(line[end:].lstrip())
            if depth == 1 and key == "id" and line.startswith(":", after):
                start = after + 1 + len(line[after + 1:]) - len(line[after + 1:].lstrip())
                try:
                    value, _ = decoder.raw_decode(line, start)
                except (json.JSONDecodeError, RecursionError):
                    return None
                return value if isinstance(value, str | int) and not isinstance(value, bool) else None
            mark = _MARKS.search(line, end)
            continue
        depth += 1 if char in "{[" else -1
        mark = _MARKS.search(line, i + 1)
    return None


def _error(request_id: str | int | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))
