"""Embedders that call a server over HTTP: OpenAI's ``/embeddings`` API (and the many servers that
copy it) and Ollama's ``/api/embed``.

Both share one POST-and-check helper and one base class, so batching, normalisation, the dimension
check and the error messages behave the same whichever server is behind them. Every failure, from a
refused connection to a malformed answer, becomes an :class:`~memory_mcp.errors.EmbedderError` whose
message names the URL, the HTTP status and the server's own words, with the API key blanked out.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import numpy as np

from ..errors import EmbedderError, InvalidArgumentError
from ..memory.ports import Vector
from .unit_rows import unit_rows

# Sizes of OpenAI's own models, so that ``dimension()`` needs no request for them.
OPENAI_MODEL_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}

_PROBE_TEXT = "dimension probe"
_MAX_ERROR_TEXT = 300  # characters of a server's error body quoted in a message


def redact(text: str, secret: str | None) -> str:
    """``text`` with the secret replaced, so no message or log line ever carries the API key."""
    return text.replace(secret, "***") if secret else text


def server_error_text(response: httpx.Response) -> str:
    """The server's explanation from an error response: OpenAI's ``{"error": {"message": ...}}``,
    Ollama's ``{"error": "..."}``, or else the start of the raw body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error", body.get("detail"))
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"][:_MAX_ERROR_TEXT]
        if isinstance(error, str):
            return error[:_MAX_ERROR_TEXT]
    text = response.text.strip()
    return text[:_MAX_ERROR_TEXT] if text else "(empty body)"


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    *,
    service: str,
    timeout_s: float,
    headers: dict[str, str] | None = None,
    secret: str | None = None,
    status_hint: Callable[[int], str] | None = None,
) -> Any:
    """POST ``payload`` as JSON and return the decoded JSON answer.

    Raises :class:`EmbedderError` for a connection failure, a timeout, a non-2xx status or a body
    that is not JSON; ``status_hint(status)`` adds the advice specific to the service. ``secret`` is
    blanked out of every message.
    """
    try:
        # The per-request timeout also applies to a client passed in by the caller.
        response = await client.post(url, json=payload, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException as exc:
        raise EmbedderError(
            f"{service} at {url} did not answer within {timeout_s:g}s ({type(exc).__name__}). The server "
            "may be overloaded or still loading the model; try again or raise MEMORY_MCP_EMBED_TIMEOUT_S."
        ) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        reason = redact(str(exc) or type(exc).__name__, secret)
        raise EmbedderError(
            f"Could not reach {service} at {url}: {reason}. Check that the server is running and that "
            "its base URL is right."
        ) from None
    if not response.is_success:
        detail = redact(server_error_text(response), secret)
        hint = status_hint(response.status_code) if status_hint else ""
        raise EmbedderError(
            f"{service} at {url} answered HTTP {response.status_code}: {detail}"
            + (f". {hint}" if hint else "")
        )
    try:
        return response.json()
    except ValueError:
        start = redact(response.text[:100], secret)
        raise EmbedderError(
            f"{service} at {url} answered HTTP {response.status_code} with a body that is not JSON "
            f"(starts {start!r}). Check that the base URL points at the embeddings API."
        ) from None


class _HTTPEmbedder:
    """What both HTTP embedders share: the lazy client, batching, validation and normalisation.

    Subclasses implement :meth:`_request` (one batch, one POST) and may know their dimension up
    front (``self._dim``); otherwise it is learnt from the first answer and every later row must match.
    """

    _service = "embedding server"

    def __init__(
        self,
        model: str,
        base_url: str,
        timeout_s: float,
        batch_size: int,
        client: httpx.AsyncClient | None,
    ) -> None:
        if batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be at least 1, got {batch_size}")
        self._model = model
        self._base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._batch_size = batch_size
        self._client = client
        self._owns_client = client is None
        self._dim: int | None = None
        self._ready = False
        # Concurrent first calls would otherwise each send their own probe.
        self._probe_lock = asyncio.Lock()

    @property
    def model_name(self) -> str:
        return self._model

    @property
    def is_ready(self) -> bool:
        """True once the server has answered successfully at least once."""
        return self._ready

    def _http(self) -> httpx.AsyncClient:
        # Created on first use, inside the running event loop the client will belong to.
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout_s)
        return self._client

    async def _request(self, texts: list[str]) -> list[Any]:
        """One POST for one batch: the raw rows, in the order of ``texts``."""
        raise NotImplementedError

    async def dimension(self) -> int:
        """The vector length: known in advance, or asked of the server once by embedding a probe."""
        if self._dim is None:
            async with self._probe_lock:
                if self._dim is None:
                    await self.embed([_PROBE_TEXT])
        assert self._dim is not None
        return self._dim

    async def warm_up(self) -> None:
        """Reach the server now: learn the dimension and, if it came from a table, confirm it
        (and the API key) with one probe, so that failures show at start-up and ``is_ready`` is set."""
        await self.dimension()
        if not self._ready:
            await self.embed([_PROBE_TEXT])

    async def embed(self, texts: Sequence[str]) -> Vector:
        """An (n, dimension) float32 array of unit rows, one per text, in batches of ``batch_size``."""
        if isinstance(texts, str):
            # A bare string is a Sequence[str] too and would be embedded character by character.
            raise InvalidArgumentError(
                "embed() takes a list of texts, not a single string; wrap it in a list"
            )
        items = list(texts)
        if not items:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        parts: list[Vector] = []
        for start in range(0, len(items), self._batch_size):
            batch = items[start : start + self._batch_size]
            parts.append(self._to_matrix(await self._request(batch), len(batch)))
        self._ready = True
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _to_matrix(self, rows: list[Any], expected: int) -> Vector:
        """Check the rows (count, numbers, length) and return them L2-normalised as float32."""
        if len(rows) != expected:
            raise EmbedderError(
                f"{self._service} returned {len(rows)} embeddings for {expected} texts "
                f"(model {self._model!r}); the server is not following the embeddings API."
            )
        # Without a known dimension the first row sets it; it is kept only if the whole batch passes.
        dim = self._dim
        for row in rows:
            if not isinstance(row, list) or not row:
                raise EmbedderError(
                    f"{self._service} returned an embedding that is not a non-empty list of numbers "
                    f"(model {self._model!r})."
                )
            if dim is None:
                dim = len(row)
            elif len(row) != dim:
                raise EmbedderError(
                    f"{self._service} returned a {len(row)}-dimensional embedding but model "
                    f"{self._model!r} is expected to give {dim} dimensions. Check the model name; "
                    "vectors of different sizes cannot be mixed in one database."
                )
        try:
            matrix = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            raise EmbedderError(
                f"{self._service} returned embeddings containing non-numbers (model {self._model!r})."
            ) from None
        if not np.isfinite(matrix).all():
            raise EmbedderError(f"{self._service} returned NaN or infinite values (model {self._model!r}).")
        self._dim = dim
        return unit_rows(matrix)

    async def aclose(self) -> None:
        """Close the HTTP client if this embedder created it; a client passed in is the caller's."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


class OpenAIEmbedder(_HTTPEmbedder):
    """Embeddings from OpenAI's API or any server speaking it (``POST {base_url}/embeddings``).

    The key is ``api_key`` or else the ``OPENAI_API_KEY`` environment variable; without one no
    ``Authorization`` header is sent, as local OpenAI-compatible servers expect.
    """

    _service = "OpenAI-compatible embedding server"

    def __init__(
        self,
        model: str,
        api_key: str | None,
        base_url: str,
        timeout_s: float = 30.0,
        batch_size: int = 256,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(model, base_url, timeout_s, batch_size, client)
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._dim = OPENAI_MODEL_DIMENSIONS.get(model)
        self._url = f"{self._base_url}/embeddings"

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIEmbedder(model={self._model!r}, base_url={self._base_url!r})"

    def _status_hint(self, status: int) -> str:
        if status in (401, 403):
            return "Check the API key (MEMORY_MCP_OPENAI_API_KEY or OPENAI_API_KEY)"
        if status == 404:
            return (
                "Check MEMORY_MCP_OPENAI_BASE_URL (it should end in /v1) and that model "
                f"{self._model!r} exists"
            )
        if status == 429:
            return "Rate limit or quota exceeded; wait and try again, or check the account's quota"
        if status >= 500:
            return "The server failed; try again later"
        return f"Check the model name {self._model!r} and the input texts"

    async def _request(self, texts: list[str]) -> list[Any]:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else None
        body = await post_json(
            self._http(), self._url, {"model": self._model, "input": texts},
            service=self._service, timeout_s=self._timeout_s, headers=headers,
            secret=self._api_key, status_hint=self._status_hint,
        )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise EmbedderError(
                f"{self._service} at {self._url} answered without a 'data' list: "
                f"{redact(json.dumps(body)[:200], self._api_key)}"
            )
        # The API does not promise that data comes back in input order; ``index`` says where each goes.
        rows: list[Any] = [None] * len(data)
        for position, item in enumerate(data):
            if not isinstance(item, dict) or "embedding" not in item:
                raise EmbedderError(
                    f"{self._service} at {self._url} answered a 'data' item without 'embedding'."
                )
            index = item.get("index", position)
            if not isinstance(index, int) or not 0 <= index < len(data) or rows[index] is not None:
                raise EmbedderError(
                    f"{self._service} at {self._url} answered with a bad or repeated 'index' {index!r}."
                )
            rows[index] = item["embedding"]
        return rows


class OllamaEmbedder(_HTTPEmbedder):
    """Embeddings from an Ollama server (``POST {base_url}/api/embed``); the dimension is always
    asked of the server, since any pulled model may be used."""

    _service = "Ollama"

    def __init__(
        self,
        model: str,
        base_url: str,
        timeout_s: float = 30.0,
        batch_size: int = 64,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(model, base_url, timeout_s, batch_size, client)
        self._url = f"{self._base_url}/api/embed"

    def __repr__(self) -> str:
        return f"OllamaEmbedder(model={self._model!r}, base_url={self._base_url!r})"

    def _status_hint(self, status: int) -> str:
        if status == 404:
            return f"Pull the model with `ollama pull {self._model}`, or check MEMORY_MCP_OLLAMA_BASE_URL"
        if status >= 500:
            return "Ollama failed; check its log, and that the model is an embedding model"
        return f"Check the model name {self._model!r}"

    async def _request(self, texts: list[str]) -> list[Any]:
        body = await post_json(
            self._http(), self._url, {"model": self._model, "input": texts},
            service=self._service, timeout_s=self._timeout_s, status_hint=self._status_hint,
        )
        rows = body.get("embeddings") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise EmbedderError(
                f"Ollama at {self._url} answered without an 'embeddings' list: {json.dumps(body)[:200]}. "
                "Ollama 0.3.4 or later is needed for /api/embed."
            )
        return rows
