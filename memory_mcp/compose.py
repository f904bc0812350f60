"""The composition root: the one place that turns a :class:`MemoryConfig` into adapters.

``HierarchicalMemory.create`` asks :func:`assemble` for its parts; anything passed in (a store, a
vector or text index, an embedder, a cache) is used instead of what the configuration names. To
add a storage engine, an embedder or a cache, implement its port (``memory/ports.py``) and build it
here from the configuration.
"""

from __future__ import annotations

from pathlib import Path

from .adapters.lru_cache import LRUMemoryCache
from .adapters.onnx_embedder import MODEL_NAME as ONNX_MODEL
from .adapters.onnx_embedder import OnnxEmbedder
from .adapters.sqlite.fts5 import Fts5TextIndex
from .adapters.sqlite.store import SQLiteMemoryStore
from .adapters.usearch_index import UsearchVectorIndex
from .errors import EmbedderError
from .memory.config import EmbedderBackend, MemoryConfig
from .memory.parts import Parts, VectorIndexFactory
from .memory.ports import Embedder, MemoryCache, MemoryStore, TextIndex, TokenEmbedder, VectorIndex
from .memory.rerank import TokenCache


def assemble(
    config: MemoryConfig,
    *,
    store: MemoryStore | None = None,
    vector_index: VectorIndex | None = None,
    text_index: TextIndex | None = None,
    embedder: Embedder | None = None,
    cache: MemoryCache | None = None,
) -> Parts:
    """The engine's parts for ``config``; the store is not opened yet."""
    if store is None:
        store = make_store(config)
    if text_index is None:
        text_index = _text_index(config, store)
    if cache is None and config.cache_enabled:
        cache = LRUMemoryCache(config.cache_max_size)
    embedder = checked_embedder(config, embedder)
    if vector_index is not None:
        make_vector_index = _injected(vector_index)
    elif isinstance(store, SQLiteMemoryStore):
        make_vector_index = _usearch(config, store)
    else:
        make_vector_index = _pgvector(config, store)
    return Parts(
        config=config, store=store, text_index=text_index, embedder=embedder, cache=cache,
        make_vector_index=make_vector_index,
        token_cache=TokenCache(int(config.rerank_cache_mb * 2**20)) if config.rerank else None,
    )


def checked_embedder(config: MemoryConfig, embedder: Embedder | None = None) -> Embedder:
    """The embedder given, or else the one ``config`` names (not loaded yet), once it is known to
    do what the configuration asks of it."""
    embedder = embedder or make_embedder(config)
    if config.rerank and not isinstance(embedder, TokenEmbedder):
        raise EmbedderError(
            f"rerank compares the query's tokens with the memories', and this embedder ({type(embedder).__name__}) "
            "gives one vector per text only: use the local or sentence-transformers embedder "
            "(MEMORY_MCP_EMBEDDER_BACKEND), or turn rerank off (MEMORY_MCP_RERANK=false)"
        )
    return embedder


def make_store(config: MemoryConfig) -> MemoryStore:
    """The store ``config`` names: PostgreSQL for a ``database_url``, else the SQLite file."""
    if config.database_url is not None:
        from .adapters.postgres.store import PostgresMemoryStore

        return PostgresMemoryStore(
            config.database_url, pool_size=config.database_pool_size, connect_timeout_s=config.connect_timeout_s
        )
    return SQLiteMemoryStore(config.db_path, synchronous=config.synchronous, busy_timeout_ms=config.busy_timeout_ms)


def _text_index(config: MemoryConfig, store: MemoryStore) -> TextIndex:
    if isinstance(store, SQLiteMemoryStore):
        return Fts5TextIndex(store, context_weight=config.context_weight)
    from .adapters.postgres.store import PostgresMemoryStore
    from .adapters.postgres.text import PostgresTextIndex

    if isinstance(store, PostgresMemoryStore):
        return PostgresTextIndex(store, context_weight=config.context_weight)
    raise TypeError(f"no default text index for a {type(store).__name__}: pass text_index= along with the store")


def make_embedder(config: MemoryConfig) -> Embedder:
    """The embedder ``config`` names."""
    if config.embedder_backend == EmbedderBackend.LOCAL:
        if config.model_name not in (ONNX_MODEL, f"sentence-transformers/{ONNX_MODEL}"):
            raise EmbedderError(
                f"the local embedder runs the packaged {ONNX_MODEL} only, not {config.model_name!r}: for another "
                "local model set embedder_backend='sentence-transformers' (an optional extra)"
            )
        return OnnxEmbedder(threads=config.embed_threads)
    if config.embedder_backend == EmbedderBackend.SENTENCE_TRANSFORMERS:
        from .adapters.sentence_transformers_embedder import SentenceTransformersEmbedder

        return SentenceTransformersEmbedder(config.model_name)
    from .adapters import http_embedders

    if config.embedder_backend == EmbedderBackend.OPENAI:
        return http_embedders.OpenAIEmbedder(
            config.model_name, api_key=config.openai_api_key, base_url=config.openai_base_url,
            timeout_s=config.embed_timeout_s,
        )
    return http_embedders.OllamaEmbedder(
        config.model_name, base_url=config.ollama_base_url, timeout_s=config.embed_timeout_s
    )


def _usearch(config: MemoryConfig, store: MemoryStore) -> VectorIndexFactory:
    """usearch files beside the database (``<db>.vectors/``), built once the dimension is known."""

    def build(dim: int, model: str) -> VectorIndex:
        return UsearchVectorIndex(
            store,
            Path(store.location + ".vectors"),
            ndim=dim,
            model_name=model,
            connectivity=config.hnsw_m,
            expansion_add=config.hnsw_ef_construction or 128,
            expansion_search=config.hnsw_ef_search,
            save_every=config.index_save_every,
        )

    return build


def _pgvector(config: MemoryConfig, store: MemoryStore) -> VectorIndexFactory:
    """pgvector in the store's own database."""
    from .adapters.postgres.store import PostgresMemoryStore
    from .adapters.postgres.vectors import PgvectorIndex

    if not isinstance(store, PostgresMemoryStore):
        raise TypeError(f"no default vector index for a {type(store).__name__}: pass vector_index= with the store")

    def build(dim: int, model: str) -> VectorIndex:
        return PgvectorIndex(
            store, ndim=dim, connectivity=config.hnsw_m, expansion_add=config.hnsw_ef_construction or 64,
            expansion_search=config.hnsw_ef_search,
        )

    return build


def _injected(index: VectorIndex) -> VectorIndexFactory:
    return lambda dim, model: index
