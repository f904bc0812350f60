"""The memory browser: see what an assistant remembers, when it was true and what replaced it
(``memory-mcp ui``; ``docs/browser.md``)."""

from .app import create_app, mount

__all__ = ["create_app", "mount"]
