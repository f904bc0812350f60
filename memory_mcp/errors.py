"""The exceptions memory_mcp raises.

Everything derives from :class:`MemoryMCPError`, so callers can catch the package's errors in one
place. Errors about bad input also derive from :class:`ValueError` (and the not-found error from
:class:`LookupError`) so code written against the builtins keeps working. Messages name the problem
and, where there is one, the fix: they are shown to people and to models.
"""

from __future__ import annotations


class MemoryMCPError(Exception):
    """Base class of every error raised by memory_mcp."""


class InvalidMemoryError(MemoryMCPError, ValueError):
    """An argument was rejected before anything was stored or changed."""


class EmptyContentError(InvalidMemoryError):
    """Memory content was empty or only whitespace."""


class ContentTooLongError(InvalidMemoryError):
    """Memory content is longer than ``MemoryConfig.max_content_chars``."""


class UnknownCategoryError(InvalidMemoryError):
    """The category is not one of the :class:`~memory_mcp.MemoryCategory` values."""


class InvalidImportanceError(InvalidMemoryError):
    """Importance is not a number between 0 and 1."""


class MissingUserError(InvalidMemoryError):
    """No ``user_id`` was given; every memory belongs to a user."""


class InvalidTimeError(InvalidMemoryError):
    """A point in time (``as_of``) could not be understood."""


class InvalidArgumentError(InvalidMemoryError):
    """Any other argument out of its allowed range or of the wrong type."""


class MemoryNotFoundError(MemoryMCPError, LookupError):
    """No memory with this id exists for this user."""


class AlreadySupersededError(MemoryMCPError):
    """The memory was already superseded; supersede the current version instead."""


class EmbedderMismatchError(MemoryMCPError):
    """The embedder's model or dimension differs from the one the database was built with."""


class EmbedderError(MemoryMCPError):
    """The embedder could not load its model or produce embeddings."""


class StorageError(MemoryMCPError):
    """The database could not be reached, opened or set up (the message says why and what to do)."""


class ImportSourceError(MemoryMCPError):
    """A file to import could not be opened, or its format could not be told (the message says how to fix it)."""


class ExtractionError(MemoryMCPError):
    """The model that distills imported conversations into facts could not be reached or answered badly."""
