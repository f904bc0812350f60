"""Completions (``completion/complete``) for the arguments of the resource templates and prompts.

A client that lets a person fill in ``memory://users/{user_id}/memories`` or the
``memory_context`` prompt offers the values this database has seen: user ids (under a bearer
token, the token's own user only), the session and agent ids of that user's memories (the user
named in the same request, else the caller's), and the memory categories. Values come in order,
at most 100, those starting with what was typed so far.
"""

from __future__ import annotations

from typing import Any

from mcp import MCPError
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import INVALID_PARAMS, Completion

from ..errors import MemoryMCPError
from ..memory.models import MemoryCategory

MAX_VALUES = 100


async def complete(holder: Any, name: str, prefix: str, given: dict[str, str]) -> Completion:
    """The completion of argument ``name`` from ``prefix``; ``given`` holds the request's other
    arguments already filled in."""
    engine = holder.engine
    try:
        if engine is None:
            values: list[str] = []
        elif name == "user_id":
            owner = holder.owner()
            if owner is None:
                values = await engine.user_ids(prefix, limit=MAX_VALUES)
            else:
                values = [owner] if owner.startswith(prefix) else []
        elif name in ("session_id", "agent_id"):
            user = holder.user(given.get("user_id") or None)
            listing = engine.session_ids if name == "session_id" else engine.agent_ids
            values = await listing(user, prefix, limit=MAX_VALUES)
        elif name in ("category", "categories"):
            values = [c.value for c in MemoryCategory if c.value.startswith(prefix)]
        else:
            values = []
    except ToolError as exc:  # another user's id under a token
        raise MCPError(INVALID_PARAMS, str(exc)) from None
    except MemoryMCPError as exc:  # a prefix that is no id
        raise MCPError(INVALID_PARAMS, f"cannot complete {name}: {exc}") from None
    return Completion(values=values, has_more=len(values) == MAX_VALUES)
