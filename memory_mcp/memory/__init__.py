"""The memory engine: the rules of hierarchical, temporal memory with hybrid search, and its ports."""

from .changes import MemoryChange
from .config import EmbedderBackend, MemoryConfig
from .engine import HierarchicalMemory
from .models import Memory, MemoryCategory, MemoryStats, ScopeLevel, SearchResult
from .ports import Embedder, MemoryCache, MemoryFilter, MemoryStore, TextIndex, VectorFilter, VectorIndex
from .scope import Position
from .sync import SyncHierarchicalMemory

__all__ = [
    "EmbedderBackend", "Embedder", "HierarchicalMemory", "Memory", "MemoryCache", "MemoryCategory",
    "MemoryChange", "MemoryConfig", "MemoryFilter", "MemoryStats", "MemoryStore", "Position", "ScopeLevel", "SearchResult", "SyncHierarchicalMemory",
    "TextIndex", "VectorFilter", "VectorIndex",
]
