"""The MCP server over the memory engine."""

from .app import build_server
from .settings import ServerSettings

__all__ = ["ServerSettings", "build_server"]
