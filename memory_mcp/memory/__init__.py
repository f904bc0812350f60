"""The memory engine: hierarchical, temporal memory with hybrid search (the reference's imports)."""

from .config import EmbedderBackend, MemoryConfig
from .core import HierarchicalMemory, Position
from .models import Memory, MemoryCategory, MemoryStats, ScopeLevel, SearchResult
from .ports import Embedder, MemoryCache, MemoryFilter, MemoryStore, TextIndex, VectorFilter, VectorIndex
from .sync import SyncHierarchicalMemory

__all__ = [
    "EmbedderBackend", "Embedder", "HierarchicalMemory", "Memory", "MemoryCache", "MemoryCategory",
    "MemoryConfig", "MemoryFilter", "MemoryStats", "MemoryStore", "Position", "ScopeLevel", "SearchResult", "SyncHierarchicalMemory",
    "TextIndex", "VectorFilter", "VectorIndex",
]
