"""A small Anthropic Messages API server on 127.0.0.1 for the wrapper's tests.

``POST /v1/messages`` answers with scripted replies as the API does: a ``message`` with text and
``tool_use`` content blocks, or, when the request asks for ``stream``, its server-sent events
(``message_start``, ``content_block_start`` / ``_delta`` / ``_stop`` per block, ``ping``,
``message_delta``, ``message_stop``). Every request body is recorded, as tests/fake_openai.py does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fake_openai import Event, FakeOpenAI, FakeServer, Reply


@dataclass
class FakeAnthropic(FakeOpenAI):
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"  # the client adds /v1/messages

    def system_text(self, request: int = -1) -> str:
        """The ``system`` the server received ('' if none), its text blocks joined by newlines."""
        system = self.requests[request].get("system") or ""
        return system if isinstance(system, str) else "\n".join(block["text"] for block in system)


def messages(reply: Reply, ident: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text} for text in reply.texts]
    for call in reply.tool_calls or []:
        blocks.append({"type": "tool_use", "id": call["id"], "name": call["function"]["name"],
                       "input": json.loads(call["function"]["arguments"])})
    stop = "tool_use" if reply.tool_calls else "end_turn"
    message = {"id": f"msg_{ident}", "type": "message", "role": "assistant", "model": body.get("model", "fake"),
               "content": blocks, "stop_reason": stop, "stop_sequence": None,
               "usage": {"input_tokens": 1, "output_tokens": 1}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**message, "content": [], "stop_reason": None}}, {"type": "ping"},
    ]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            events.append({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
            events += [{"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}
                       for piece in reply.pieces(block["text"])]
        else:
            events.append({"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}})
            arguments = json.dumps(block["input"])
            events += [{"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece}} for piece in reply.pieces(arguments)]
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                   "usage": {"output_tokens": 1}})
    events.append({"type": "message_stop"})
    return message, [(event["type"], event) for event in events]


class FakeAnthropicServer(FakeServer):
    """Context manager: ``with FakeAnthropicServer() as fake: Anthropic(base_url=fake.base_url, ...)``."""

    def __init__(self) -> None:
        super().__init__(FakeAnthropic(), {"/v1/messages": messages})

    def __enter__(self) -> FakeAnthropic:
        return super().__enter__()  # type: ignore[no-any-return]
