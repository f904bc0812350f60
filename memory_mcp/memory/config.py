"""Configuration of the memory engine, from arguments or ``MEMORY_MCP_*`` environment variables."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class EmbedderBackend(StrEnum):
    LOCAL = "local"  # the packaged all-MiniLM-L6-v2 on ONNX Runtime (no torch)
    SENTENCE_TRANSFORMERS = "sentence-transformers"  # any local sentence-transformers model (optional extra)
    OPENAI = "openai"  # any server speaking OpenAI's /v1/embeddings
    OLLAMA = "ollama"  # an Ollama server's /api/embed


def default_db_path() -> Path:
    return Path(user_data_dir("memory_mcp", appauthor=False)) / "memory.db"


_DEFAULT_MODELS = {
    EmbedderBackend.LOCAL: "all-MiniLM-L6-v2",
    EmbedderBackend.SENTENCE_TRANSFORMERS: "all-MiniLM-L6-v2",
    EmbedderBackend.OPENAI: "text-embedding-3-small",
    EmbedderBackend.OLLAMA: "nomic-embed-text",
}


class MemoryConfig(BaseSettings):
    """Every setting of the engine. Each field can also be set as ``MEMORY_MCP_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="MEMORY_MCP_", extra="ignore")

    # Storage
    db_path: Path = Field(default_factory=default_db_path, description="SQLite database file.")
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        default="NORMAL",
        description=(
            "SQLite synchronous mode. NORMAL (default) in WAL mode never corrupts the database and "
            "loses nothing on an application crash; only a power loss or OS crash can drop the last "
            "commits. FULL also survives power loss at the cost of an fsync per write."
        ),
    )
    busy_timeout_ms: int = Field(default=10_000, ge=0, description="How long a writer waits for a lock.")
    database_url: str | None = Field(
        default=None,
        description="A postgresql:// URL: keep the memories in PostgreSQL (with pgvector), shared by any number of "
        "servers, instead of the SQLite file db_path. Needs the 'postgres' extra.",
    )
    database_pool_size: int = Field(default=10, ge=1, description="PostgreSQL: connections per process, at most.")
    connect_timeout_s: float = Field(default=10.0, gt=0, description="PostgreSQL: how long to wait for the server.")

    # Embeddings
    embedder_backend: EmbedderBackend = EmbedderBackend.LOCAL
    embedder_model: str | None = Field(default=None, description="Model name; a backend default if unset.")
    vector_dimension: int | None = Field(
        default=None, ge=1, description="Expected embedding size; checked against the model if set."
    )
    openai_api_key: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    ollama_base_url: str = "http://localhost:11434"
    embed_timeout_s: float = Field(default=30.0, gt=0)
    embed_threads: int | None = Field(
        default=None, ge=1, description="Threads the local (ONNX) embedder uses; by default the CPUs, at most 4."
    )
    semantic_wait_s: float = Field(
        default=2.0, ge=0,
        description="How long a hybrid recall made while the embedding model loads in the background waits for "
        "it before answering from full text alone (and saying so).",
    )
    background_embedding: bool = Field(
        default=False,
        description=(
            "Load the embedder in the background and store writes made before it is ready without "
            "a vector (embedded as soon as it is); searches meanwhile use full text only. The server "
            "turns this on so that it answers at once; the library waits for the model instead."
        ),
    )

    # HNSW (usearch with SQLite, pgvector with PostgreSQL)
    hnsw_m: int = Field(default=16, ge=2, description="HNSW connectivity (links per node).")
    hnsw_ef_construction: int | None = Field(
        default=None, ge=1,
        description="HNSW expansion when adding; by default 128 on usearch (SQLite) and 64 on pgvector (PostgreSQL), "
        "where a larger value makes every insert slower.",
    )
    hnsw_ef_search: int = Field(default=50, ge=1, description="HNSW expansion when searching.")
    index_save_every: int = Field(
        default=1000, ge=1,
        description="Save a user's vector index after this many unsaved changes (or an eighth of its size, "
        "if more).",
    )

    # Cache
    cache_enabled: bool = True
    cache_max_size: int = Field(default=1000, ge=1)

    # Rules
    max_content_chars: int = Field(default=8000, ge=1, description="Longest content accepted.")
    turn_ttl_s: float = Field(default=3600.0, gt=0, description="Lifetime of a TURN memory.")
    duplicate_similarity: float = Field(
        default=0.92, gt=0, le=1, description="Cosine similarity above which a new memory is a duplicate."
    )
    promote_turn_to_agent: float = Field(default=0.6, ge=0, le=1)
    promote_agent_to_session: float = Field(default=0.7, ge=0, le=1)
    promote_session_to_user: float = Field(default=0.85, ge=0, le=1)
    promotion_recall_count: int = Field(
        default=3, ge=1, description="Recalls from this many distinct positions promote a memory one level."
    )

    # Ranking
    fusion: Literal["score", "rrf"] = Field(
        default="score",
        description=(
            "How hybrid recall fuses semantic and full-text search: 'score' adds cosine similarity and "
            "text_weight times BM25 relative to the query's best BM25; 'rrf' is reciprocal rank fusion."
        ),
    )
    text_weight: float = Field(
        default=1.0, ge=0,
        description="Weight of the query's words against its meaning (cosine, weight 1) in score fusion.",
    )
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal rank fusion constant (fusion='rrf').")
    context_weight: float = Field(
        default=0.5, ge=0, le=1,
        description="How much a query word found only in a memory's context counts, against 1 for a word of the "
        "memory itself.",
    )
    min_relevance: float = Field(
        default=0.0, ge=0, le=1,
        description="Semantic and hybrid recall leave out memories whose meaning and words both match the query "
        "less than this (0..1, see memory_mcp.memory.scoring). 0 (the library's default) keeps the nearest "
        "memories however weak; the MCP server uses 0.2, so that a question about nothing stored finds nothing. "
        "Full text alone has no default floor; a call's min_relevance applies in every mode.",
    )
    rerank: bool = Field(
        default=False,
        description="Hybrid recall reorders its best rerank_depth candidates by matching the query's tokens one by "
        "one against each memory's and its context's (late interaction; see memory_mcp.memory.rerank): better at "
        "putting the right memory first, and slower (the candidates' tokens go through the embedding model at query "
        "time, cached afterwards). Needs the local or sentence-transformers embedder.",
    )
    rerank_depth: int = Field(
        default=20, ge=1, le=200, description="How many of hybrid recall's best candidates rerank reorders (at least "
        "top_k).",
    )
    rerank_cache_mb: float = Field(
        default=64.0, ge=0, description="Memory kept for the token vectors of recently reranked texts, in MB.",
    )
    importance_weight: float = Field(default=0.3, ge=0)
    recency_weight: float = Field(default=0.1, ge=0)
    recency_half_life_days: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _fill_model(self) -> MemoryConfig:
        if self.embedder_model is None:
            self.embedder_model = _DEFAULT_MODELS[self.embedder_backend]
        return self

    @field_validator("db_path", mode="after")
    @classmethod
    def _expand_home(cls, path: Path) -> Path:
        # "~/memories.db" from an environment variable or a JSON "args" array reaches us unexpanded
        # (no shell saw it): it means the home directory, never a directory named "~".
        return path.expanduser()

    @model_validator(mode="after")
    def _check_database_url(self) -> MemoryConfig:
        if self.database_url is not None and not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"database_url must be a postgresql:// URL (e.g. postgresql://user:password@host:5432/memories), "
                f"not {self.database_url.split(':', 1)[0]!r}; leave it unset to use the SQLite file db_path"
            )
        return self

    @property
    def model_name(self) -> str:
        assert self.embedder_model is not None
        return self.embedder_model
