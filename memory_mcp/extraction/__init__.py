"""Inline memory extraction: the prompt template shared by the MCP server and the client wrapper."""

from .template import EXTRACTION_INSTRUCTION, render_memory_context

__all__ = ["EXTRACTION_INSTRUCTION", "render_memory_context"]
