"""memory_mcp: hierarchical, temporal long-term memory for LLM assistants, in one SQLite file or a shared PostgreSQL."""

from .errors import (
    AlreadySupersededError,
    ContentTooLongError,
    EmbedderError,
    EmbedderMismatchError,
    EmptyContentError,
    InvalidArgumentError,
    InvalidImportanceError,
    InvalidMemoryError,
    InvalidTimeError,
    MemoryMCPError,
    MemoryNotFoundError,
    MissingUserError,
    UnknownCategoryError,
)
from .memory import (
    Embedder,
    EmbedderBackend,
    HierarchicalMemory,
    Memory,
    MemoryCache,
    MemoryCategory,
    MemoryChange,
    MemoryConfig,
    MemoryFilter,
    MemoryStats,
    MemoryStore,
    ScopeLevel,
    SearchResult,
    SyncHierarchicalMemory,
    TextIndex,
    VectorFilter,
    VectorIndex,
)
from .wrapper import MemoryClient, with_memory

__version__ = "0.1.0"

__all__ = [
    "AlreadySupersededError", "ContentTooLongError", "Embedder", "EmbedderBackend", "EmbedderError",
    "EmbedderMismatchError", "EmptyContentError", "HierarchicalMemory", "InvalidArgumentError",
    "InvalidImportanceError", "InvalidMemoryError", "InvalidTimeError", "Memory", "MemoryCache",
    "MemoryCategory", "MemoryChange", "MemoryConfig", "MemoryFilter", "MemoryMCPError", "MemoryNotFoundError", "MemoryStats",
    "MemoryStore", "MissingUserError", "ScopeLevel", "SearchResult", "SyncHierarchicalMemory", "TextIndex", "UnknownCategoryError",
    "VectorFilter", "VectorIndex", "MemoryClient", "with_memory",
]
