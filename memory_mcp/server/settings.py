"""Server settings: the engine's ``MemoryConfig`` plus identity and transport, all from
``MEMORY_MCP_*`` environment variables or command-line flags."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..memory.config import MemoryConfig


def _default_user() -> str:
    try:
        return getpass.getuser() or "default"
    except Exception:  # no user name in this environment (some containers)
        return "default"


class ServerSettings(MemoryConfig):
    user_id: str = Field(
        default_factory=_default_user,
        description="The user memories belong to when a call names none (stdio: the desktop's user).",
    )
    transport: Literal["stdio", "sse", "http"] = "stdio"
    host: str = Field(default="127.0.0.1", description="HTTP bind address; loopback unless told otherwise.")
    port: int = Field(default=8765, ge=0, le=65535)
    allowed_origins: list[str] = Field(
        default_factory=list, description="Extra Origin values accepted on HTTP (loopback ones always are)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    auth_tokens_file: Path | None = Field(
        default=None,
        description="HTTP only: file of 'user_id token' lines; every request then needs "
        "'Authorization: Bearer <token>' and acts for that token's user alone.",
    )
    # Fair shares on HTTP (see limits.py): a client is a bearer token, or an address without tokens.
    max_sessions_per_client: int = Field(
        default=32, ge=0, description="HTTP: open MCP sessions (or SSE connections) one client may hold; 0: no limit.",
    )
    requests_per_minute: int = Field(
        default=1200, ge=0, description="HTTP: requests a minute one client may send (bursts of a quarter of it); "
        "0: no limit.",
    )
    # The engine's setting, with the server's default: a client's question about nothing stored is
    # told that nothing matches (the library keeps 0, see MemoryConfig.min_relevance).
    min_relevance: float = Field(default=0.2, ge=0, le=1, description="The relevance floor of recall (0..1).")
    ui: bool = Field(default=False, description="HTTP: also serve the memory browser at /ui.")
    watch_interval_s: float = Field(
        default=0.1, gt=0, le=60,
        description="How often the server looks for changes made by any process, to notify subscribed clients.",
    )
