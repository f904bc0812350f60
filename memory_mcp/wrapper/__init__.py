"""Memory as a layer on an OpenAI, Anthropic or compatible client: ``with_memory(OpenAI(), user_id="alice")``."""

from .client import MemoryClient, with_memory
from .memory_api import MemoryAPI

__all__ = ["MemoryAPI", "MemoryClient", "with_memory"]
