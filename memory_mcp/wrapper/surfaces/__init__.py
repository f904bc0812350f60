"""The client surfaces ``with_memory`` wraps, one adapter each over the shared steps.

An adapter says how a call of its surface carries the user's words and the system text (where
the recalled memories and the instruction go), where an answer's text is and how to edit it, and
how its stream events carry text. Recall, the template, the parser and storage are shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ...extraction.parser import ParsedAnswer
from ..streams import StreamEditor
from .anthropic_messages import AnthropicMessages
from .openai_chat import ChatCompletions
from .openai_responses import Responses


class Surface(Protocol):
    path: tuple[str, ...]  # where the resource is on the client: ("chat", "completions"), ("messages",)
    example: str  # the call, for error messages

    def query(self, request: Mapping[str, Any]) -> str | None:
        """The user's last words, which select the memories to recall ('' when there are none);
        None when the call is not one this adapter understands (it then goes through unchanged)."""

    def with_note(self, request: Mapping[str, Any], note: str) -> dict[str, Any]:
        """The call's arguments with ``note`` added to its system text, the caller's left as they were."""

    def clean(self, response: Any) -> ParsedAnswer | None:
        """Remove the blocks from the answer in place; what the answer asked to remember."""

    def editor(self) -> StreamEditor:
        """A fresh editor for one streamed answer."""


SURFACES: tuple[Surface, ...] = (ChatCompletions(), AnthropicMessages(), Responses())

__all__ = ["SURFACES", "Surface"]
