"""The embedder's part in the rules: checked against the database before use, loaded in the
background when asked (writes meanwhile are stored without a vector and embedded once it is ready),
and never mixed with another model's vectors."""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from ..errors import EmbedderMismatchError, StorageError
from .parts import Parts
from .ports import Vector

log = logging.getLogger("memory_mcp.memory")


async def wait_until_ready(parts: Parts) -> None:
    """Wait until semantic search is available; raises why if the embedder failed to load."""
    if parts.semantic_ready.is_set():
        return
    if parts.background is None:  # the library's default: prepare here, now
        await prepare_vectors(parts)
        return
    ready = asyncio.ensure_future(parts.semantic_ready.wait())
    try:
        await asyncio.wait({ready, parts.background}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
    if not parts.semantic_ready.is_set():
        parts.background.result()  # re-raises why loading failed


async def wait_briefly(parts: Parts, seconds: float) -> None:
    """Give a model loading in the background up to ``seconds`` to be ready; never raises (a model
    that failed or is slow leaves the caller to answer without it)."""
    if parts.semantic_ready.is_set() or parts.background is None or parts.background.done():
        return
    ready = asyncio.ensure_future(parts.semantic_ready.wait())
    try:
        await asyncio.wait({ready, parts.background}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()


def status(parts: Parts) -> str:
    """'ready', 'loading', 'waiting: <why>' (for the database to be writable) or 'failed: <why>'."""
    if parts.semantic_ready.is_set():
        return "ready"
    task = parts.background
    if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
        return f"failed: {task.exception()}"
    if parts.waiting_for is not None:
        return f"waiting: {parts.waiting_for}"
    return "loading"


# How often preparing is tried again while the database cannot be written (a full disk).
RETRY_STORAGE_S = 2.0


async def prepare_in_background(parts: Parts) -> None:
    try:
        await parts.embedder.warm_up()
        while True:
            try:
                await prepare_vectors(parts)
                break
            except StorageError as exc:  # a full disk, say: semantic recall comes once there is room
                if parts.waiting_for is None:
                    log.warning("semantic recall waits until the database can be written: %s", exc)
                parts.waiting_for = str(exc)
                await asyncio.sleep(RETRY_STORAGE_S)
        parts.waiting_for = None
    except Exception:
        log.exception("the embedder could not be prepared; recall stays full-text only")
        raise


async def prepare_vectors(parts: Parts) -> None:
    """Check the embedder against the database, open the vector index, embed pending writes."""
    config, store = parts.config, parts.store
    dim = await parts.embedder.dimension()
    model = parts.embedder.model_name
    if config.vector_dimension is not None and config.vector_dimension != dim:
        raise EmbedderMismatchError(
            f"vector_dimension={config.vector_dimension} is configured but the embedder "
            f"{model!r} produces {dim}-dimensional vectors; set vector_dimension={dim} or leave it unset"
        )
    async with store.transaction() as db:
        stored_model = await db.get_meta("embedder_model")
        stored_dim = await db.get_meta("embedding_dim")
        differs = stored_model is not None and (stored_model != model or int(stored_dim or 0) != dim)
        if differs and not parts.reembed:
            raise EmbedderMismatchError(
                f"{store.location} was built with the embedding model {stored_model!r} "
                f"({stored_dim} dimensions) but this embedder is {model!r} ({dim} dimensions); "
                f"open it with embedder_model={stored_model!r}, or re-embed every memory with "
                f"the new model (`memory-mcp reindex --embedder-model {model}`, or "
                "HierarchicalMemory.create(config, reembed=True)) before using it"
            )
        if differs:
            log.warning("re-embedding every memory with %s (was %s)", model, stored_model)
            await db.drop_embeddings()
        if stored_model is None or differs:
            await db.set_meta("embedder_model", model)
            await db.set_meta("embedding_dim", str(dim))
    if parts.vectors is None:
        parts.vectors = parts.make_vector_index(dim, model)
    await embed_pending(parts)
    parts.semantic_ready.set()
    await embed_pending(parts)  # writes that raced with the line above


async def embed_pending(parts: Parts, batch: int = 256) -> int:
    """Embed the memories stored without a vector; how many."""
    done = 0
    while True:
        async with parts.store.reading() as db:
            pending = await db.pending_embeddings(batch)
        if not pending:
            return done
        vectors = await parts.embedder.embed([content for _, content in pending])
        async with parts.store.transaction() as db:
            await db.set_embeddings([(key, vector) for (key, _), vector in zip(pending, vectors, strict=True)])
        done += len(pending)
        log.info("embedded %d memories stored before the embedder was ready", len(pending))


async def embed_now(parts: Parts, content: str) -> Vector | None:
    """The content's vector, or None when the embedder is still loading in the background."""
    if parts.config.background_embedding and not parts.semantic_ready.is_set():
        return None
    if not parts.semantic_ready.is_set():
        await wait_until_ready(parts)
    return np.ascontiguousarray((await parts.embedder.embed([content]))[0], dtype=np.float32)


async def after_write(parts: Parts, vector: Vector | None) -> None:
    if vector is None and parts.semantic_ready.is_set():  # stored while loading; embed it now
        try:
            await embed_pending(parts)
        except StorageError as exc:  # the write itself stands; the next write or start embeds it
            log.warning("stored without its vector for now: %s", exc)
