"""A small OpenAI-compatible server on 127.0.0.1 for the wrapper's tests.

It answers ``POST /v1/chat/completions`` and ``POST /v1/responses`` with scripted replies, in
each API's wire format, streamed as server-sent events when the request asks for ``stream``, and
records every request body, so a test sees exactly what the real ``openai`` client sent (and so
what the wrapper injected). tests/fake_anthropic.py serves the Anthropic Messages API the same way.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# One SSE event: its name (None for data-only events) and its data ("[DONE]" is sent as it is).
Event = tuple[str | None, dict[str, Any] | str]
# A wire format: (reply, answer id, request body) -> (the JSON answer, the events of the streamed answer)
Wire = Callable[["Reply", str, dict[str, Any]], tuple[dict[str, Any], list[Event]]]


@dataclass
class Reply:
    """One scripted answer: its text (None for tool calls only; a list for several text blocks or
    parts), its tool calls (in chat completions' shape), and how to cut the text into stream
    events. ``choices`` is for chat completions only."""

    content: str | list[str] | None
    tool_calls: list[dict[str, Any]] | None = None
    chunk_size: int = 7
    choices: int = 1

    @property
    def texts(self) -> list[str]:
        if self.content is None:
            return []
        return [self.content] if isinstance(self.content, str) else list(self.content)

    def pieces(self, text: str) -> list[str]:
        return [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]


@dataclass
class FakeOpenAI:
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply | str | list[str] | None) -> None:
        for reply in replies:
            self.replies.append(reply if isinstance(reply, Reply) else Reply(reply))

    def system_text(self, request: int = -1) -> str:
        """The system message the server received in a chat request ('' if none)."""
        messages = self.requests[request]["messages"]
        first = messages[0]
        if first["role"] != "system":
            return ""
        content = first["content"]
        return content if isinstance(content, str) else "\n".join(p.get("text", "") for p in content)

    def instructions(self, request: int = -1) -> str:
        """The ``instructions`` the server received in a Responses request ('' if none)."""
        return self.requests[request].get("instructions") or ""

    def answer(self, body: dict[str, Any]) -> tuple[Reply, str]:
        self.requests.append(body)
        reply = self.replies.popleft() if self.replies else Reply("(no scripted reply)")
        return reply, str(len(self.requests))


def chat_completions(reply: Reply, ident: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
    base = {"id": f"chatcmpl-{ident}", "created": int(time.time()), "model": body.get("model", "fake")}
    finish = "tool_calls" if reply.tool_calls else "stop"
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    payload = {
        **base, "object": "chat.completion",
        "choices": [{"index": i, "message": message, "finish_reason": finish} for i in range(reply.choices)],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": piece} for piece in reply.pieces("".join(reply.texts))]
    if reply.tool_calls:
        deltas.append({"tool_calls": [{**call, "index": n} for n, call in enumerate(reply.tool_calls)]})
    chunks = [{**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
              for d in deltas]
    chunks.append({**base, "object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return payload, [*((None, chunk) for chunk in chunks), (None, "[DONE]")]


def responses(reply: Reply, ident: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
    """The Responses API: a message item with one ``output_text`` part per text, then one
    ``function_call`` item per tool call; streamed as its typed, numbered events."""
    item_id = f"msg_{ident}"
    parts = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []} for text in reply.texts]
    items: list[dict[str, Any]] = []
    if parts:
        items.append({"type": "message", "id": item_id, "status": "completed", "role": "assistant", "content": parts})
    for n, call in enumerate(reply.tool_calls or []):
        items.append({"type": "function_call", "id": f"fc_{ident}_{n}", "call_id": call["id"], "status": "completed",
                      "name": call["function"]["name"], "arguments": call["function"]["arguments"]})
    response = {
        "id": f"resp_{ident}", "object": "response", "created_at": int(time.time()), "status": "completed",
        "model": body.get("model", "fake"), "output": items, "instructions": body.get("instructions"),
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": body.get("tools", []), "metadata": {},
        "temperature": 1.0, "top_p": 1.0, "error": None, "incomplete_details": None,
        "text": {"format": {"type": "text"}},
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
    }
    events: list[dict[str, Any]] = []
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    events += [{"type": "response.created", "response": started}, {"type": "response.in_progress", "response": started}]
    for index, item in enumerate(items):
        at = {"output_index": index}
        if item["type"] == "message":
            events.append({"type": "response.output_item.added", **at,
                           "item": {**item, "status": "in_progress", "content": []}})
            for part_index, part in enumerate(item["content"]):
                where = {"item_id": item_id, **at, "content_index": part_index}
                events.append({"type": "response.content_part.added", **where, "part": {**part, "text": ""}})
                events += [{"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
                           for piece in reply.pieces(part["text"])]
                events.append({"type": "response.output_text.done", **where, "text": part["text"], "logprobs": []})
                events.append({"type": "response.content_part.done", **where, "part": part})
        else:
            events.append({"type": "response.output_item.added", **at,
                           "item": {**item, "status": "in_progress", "arguments": ""}})
            events.append({"type": "response.function_call_arguments.delta", "item_id": item["id"], **at,
                           "delta": item["arguments"]})
            events.append({"type": "response.function_call_arguments.done", "item_id": item["id"], **at,
                           "name": item["name"], "arguments": item["arguments"]})
        events.append({"type": "response.output_item.done", **at, "item": item})
    events.append({"type": "response.completed", "response": response})
    return response, [(event["type"], {**event, "sequence_number": n}) for n, event in enumerate(events)]


def _handler(fake: FakeOpenAI, routes: dict[str, Wire]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            wire = routes.get(self.path.split("?")[0])
            if wire is None:
                self.send_error(404, f"no route {self.path}")
                return
            reply, ident = fake.answer(body)
            payload, events = wire(reply, ident, body)
            if not body.get("stream"):
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for name, data in events:
                line = data if isinstance(data, str) else json.dumps(data)
                self.wfile.write((f"event: {name}\n" if name else "").encode() + f"data: {line}\n\n".encode())
            self.wfile.flush()
            self.close_connection = True

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-stream (a test abandoning a stream) is expected


class FakeServer:
    """Serves ``routes`` (path -> wire format) for the ``fake`` that scripts and records."""

    def __init__(self, fake: FakeOpenAI, routes: dict[str, Wire]) -> None:
        self.fake = fake
        self._server = _Server(("127.0.0.1", 0), _handler(fake, routes))
        self.fake.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Any:
        self._thread.start()
        return self.fake

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class FakeOpenAIServer(FakeServer):
    """Context manager: ``with FakeOpenAIServer() as fake: OpenAI(base_url=fake.base_url, ...)``."""

    def __init__(self) -> None:
        super().__init__(FakeOpenAI(), {"/v1/chat/completions": chat_completions, "/v1/responses": responses})

    def __enter__(self) -> FakeOpenAI:
        return super().__enter__()  # type: ignore[no-any-return]
