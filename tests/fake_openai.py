"""A small OpenAI-compatible chat server on 127.0.0.1 for the wrapper's tests.

It answers ``POST /v1/chat/completions`` with scripted replies, streamed as server-sent events
when the request asks for ``stream``, and records every request body, so a test sees exactly
what the real ``openai`` client sent (and so what the wrapper injected).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer: text (None for a tool call), and how to cut it into stream chunks."""

    content: str | None
    tool_calls: list[dict[str, Any]] | None = None
    chunk_size: int = 7
    choices: int = 1


@dataclass
class FakeOpenAI:
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply | str | None) -> None:
        for reply in replies:
            self.replies.append(reply if isinstance(reply, Reply) else Reply(reply))

    def system_text(self, request: int = -1) -> str:
        """The system message the server received in a request ('' if none)."""
        messages = self.requests[request]["messages"]
        first = messages[0]
        if first["role"] != "system":
            return ""
        content = first["content"]
        return content if isinstance(content, str) else "\n".join(p.get("text", "") for p in content)

    def answer(self, body: dict[str, Any]) -> tuple[Reply, str]:
        self.requests.append(body)
        reply = self.replies.popleft() if self.replies else Reply("(no scripted reply)")
        return reply, f"chatcmpl-{len(self.requests)}"


def _message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    return message


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reply, ident = fake.answer(body)
            base = {"id": ident, "created": int(time.time()), "model": body.get("model", "fake")}
            finish = "tool_calls" if reply.tool_calls else "stop"
            if not body.get("stream"):
                payload = {
                    **base, "object": "chat.completion",
                    "choices": [
                        {"index": i, "message": _message(reply), "finish_reason": finish}
                        for i in range(reply.choices)
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
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
            events: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
            text = reply.content or ""
            events += [{"content": text[i : i + reply.chunk_size]} for i in range(0, len(text), reply.chunk_size)]
            if reply.tool_calls:
                events.append({"tool_calls": [{**call, "index": n} for n, call in enumerate(reply.tool_calls)]})
            for delta in events:
                chunk = {**base, "object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            last = {**base, "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
            self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()
            self.close_connection = True

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-stream (a test abandoning a stream) is expected


class FakeOpenAIServer:
    """Context manager: ``with FakeOpenAIServer() as fake: OpenAI(base_url=fake.base_url, ...)``."""

    def __init__(self) -> None:
        self.fake = FakeOpenAI()
        self._server = _Server(("127.0.0.1", 0), _handler(self.fake))
        self.fake.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self.fake

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
