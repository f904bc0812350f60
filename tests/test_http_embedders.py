"""OpenAIEmbedder and OllamaEmbedder against a real HTTP server on 127.0.0.1.

The server speaks both APIs, derives each vector from a hash of (model, text) -- deliberately not of
unit length -- and records every request, so the tests check the embedders' output against values
computed independently of the code under test.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import numpy as np
import pytest

from memory_mcp.adapters.http_embedders import OllamaEmbedder, OpenAIEmbedder
from memory_mcp.errors import EmbedderError

SERVER_DIMS = {"text-embedding-3-small": 1536}
DEFAULT_DIM = 12  # for any other model name
ZERO_TEXT = "__zero__"  # the server answers an all-zero vector for this text
KEY = "sk-test-SECRET-123"


def server_vector(model: str, text: str, dim: int) -> list[float]:
    """The fake server's embedding: deterministic in (model, text), never unit length."""
    if text == ZERO_TEXT:
        return [0.0] * dim
    seed = int.from_bytes(hashlib.sha256(f"{model}\0{text}".encode()).digest()[:8], "little")
    return (np.random.default_rng(seed).normal(size=dim) * 5 + 1).tolist()


def expected(model: str, texts: list[str], dim: int = DEFAULT_DIM) -> np.ndarray:
    rows = np.array([server_vector(model, t, dim) for t in texts], dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class FakeServer(ThreadingHTTPServer):
    """Holds the recorded requests and the behaviour the current test asked for."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.status: int | None = None  # answer this status with error_body instead of embeddings
        self.error_body: bytes = b""
        self.raw_body: bytes | None = None  # answer 200 with this body
        self.reverse: bool = False  # OpenAI: list data in reverse order (index still correct)
        self.truncate_last: bool = False  # make the last row one element short
        self.dim_override: int | None = None
        self.delay_s: float = 0.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is expected, not worth a traceback

    def batch_sizes(self) -> list[int]:
        return [len(r["json"]["input"]) for r in self.requests]


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv = self.server
        srv.requests.append(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "json": body}
        )
        if srv.delay_s:
            time.sleep(srv.delay_s)
        if srv.status is not None:
            return self._send(srv.status, srv.error_body)
        if srv.raw_body is not None:
            return self._send(200, srv.raw_body)
        model, texts = body["model"], body["input"]
        dim = srv.dim_override or SERVER_DIMS.get(model, DEFAULT_DIM)
        vectors = [server_vector(model, t, dim) for t in texts]
        if srv.truncate_last:
            vectors[-1] = vectors[-1][:-1]
        if self.path == "/v1/embeddings":
            data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
            if srv.reverse:
                data.reverse()
            out = {"object": "list", "model": model, "data": data}
        elif self.path == "/api/embed":
            out = {"model": model, "embeddings": vectors}
        else:
            return self._send(404, b'{"error": "no such path"}')
        self._send(200, json.dumps(out).encode())


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A key or proxy in the developer's environment must not change what the tests see.
    for name in ("OPENAI_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Any]]:
    """Builds embedders (``make("openai"|"ollama", base, model, **kw)``) and closes them afterwards."""
    made: list[Any] = []

    def build(kind: str, base: str, model: str, **kw: Any) -> Any:
        if kind == "openai":
            emb: Any = OpenAIEmbedder(model, kw.pop("api_key", None), f"{base}/v1", **kw)
        else:
            emb = OllamaEmbedder(model, base, **kw)
        made.append(emb)
        return emb

    yield build
    for emb in made:
        await emb.aclose()


TEXTS = ["the cat sat", "on the mat", "vectors are fun", "über naïve 東京"]


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_vectors_match_server_normalised(server: FakeServer, make: Any, kind: str) -> None:
    emb = make(kind, server.base, "tiny-model")
    assert not emb.is_ready
    out = await emb.embed(TEXTS)
    assert out.dtype == np.float32
    assert out.shape == (4, DEFAULT_DIM)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out, expected("tiny-model", TEXTS), rtol=1e-5, atol=1e-6)
    assert emb.is_ready
    assert server.requests[0]["json"] == {"model": "tiny-model", "input": TEXTS}
    assert server.requests[0]["path"] == ("/v1/embeddings" if kind == "openai" else "/api/embed")


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_same_text_same_vector(server: FakeServer, make: Any, kind: str) -> None:
    emb = make(kind, server.base, "tiny-model")
    a = await emb.embed(["alpha", "beta", "alpha"])
    b = await emb.embed(["alpha"])
    np.testing.assert_array_equal(a[0], a[2])
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[0], a[1])


async def test_openai_order_follows_index_not_position(server: FakeServer, make: Any) -> None:
    server.reverse = True
    emb = make("openai", server.base, "tiny-model")
    out = await emb.embed(TEXTS)
    np.testing.assert_allclose(out, expected("tiny-model", TEXTS), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_batching_splits_large_inputs(server: FakeServer, make: Any, kind: str) -> None:
    texts = [f"text number {i}" for i in range(7)]
    emb = make(kind, server.base, "tiny-model", batch_size=3)
    out = await emb.embed(texts)
    assert server.batch_sizes() == [3, 3, 1]
    assert [t for r in server.requests for t in r["json"]["input"]] == texts
    np.testing.assert_allclose(out, expected("tiny-model", texts), rtol=1e-5, atol=1e-6)


async def test_default_batch_sizes(server: FakeServer, make: Any) -> None:
    texts = [f"t{i}" for i in range(300)]
    await make("openai", server.base, "tiny-model").embed(texts)
    await make("ollama", server.base, "tiny-model").embed(texts[:130])
    assert server.batch_sizes() == [256, 44, 64, 64, 2]


async def test_bearer_header_sent_with_key(server: FakeServer, make: Any) -> None:
    await make("openai", server.base, "tiny-model", api_key=KEY).embed(["x"])
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"


async def test_no_auth_header_without_key(server: FakeServer, make: Any) -> None:
    await make("openai", server.base, "tiny-model").embed(["x"])
    await make("ollama", server.base, "tiny-model").embed(["x"])
    assert all("authorization" not in r["headers"] for r in server.requests)


async def test_key_read_from_environment(server: FakeServer, make: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    await make("openai", server.base, "tiny-model").embed(["x"])
    assert server.requests[0]["headers"]["authorization"] == "Bearer sk-from-env"


async def test_known_openai_model_dimension_needs_no_request(server: FakeServer, make: Any) -> None:
    emb = make("openai", server.base, "text-embedding-3-small")
    assert await emb.dimension() == 1536
    assert server.requests == []
    assert not emb.is_ready
    assert (await emb.embed([])).shape == (0, 1536)
    assert server.requests == []
    # warm_up reaches the server (checks key and size) even though the size was already known.
    await emb.warm_up()
    assert len(server.requests) == 1 and emb.is_ready


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_dimension_probed_once(server: FakeServer, make: Any, kind: str) -> None:
    server.dim_override = 7
    emb = make(kind, server.base, "nomic-embed-text")
    assert (await emb.embed([])).shape == (0, 0)
    assert server.requests == []
    # Concurrent first callers share one probe.
    dims = await asyncio.gather(*(emb.dimension() for _ in range(5)))
    assert dims == [7] * 5
    assert await emb.dimension() == 7
    assert len(server.requests) == 1
    assert server.requests[0]["json"]["model"] == "nomic-embed-text"
    assert emb.is_ready
    await emb.warm_up()
    assert len(server.requests) == 1
    assert (await emb.embed([])).shape == (0, 7)


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_zero_vector_stays_zero(server: FakeServer, make: Any, kind: str) -> None:
    out = await make(kind, server.base, "tiny-model").embed(["a", ZERO_TEXT])
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_allclose(np.linalg.norm(out[0]), 1.0, rtol=1e-6)


async def test_server_500_names_status_and_text(server: FakeServer, make: Any) -> None:
    server.status = 500
    server.error_body = json.dumps({"error": {"message": "boom: upstream exploded"}}).encode()
    emb = make("openai", server.base, "tiny-model", api_key=KEY)
    with pytest.raises(EmbedderError) as info:
        await emb.embed(["x"])
    msg = str(info.value)
    assert "500" in msg and "boom: upstream exploded" in msg and f"{server.base}/v1/embeddings" in msg
    assert KEY not in msg
    assert not emb.is_ready


async def test_401_message_hides_key(server: FakeServer, make: Any) -> None:
    server.status = 401
    # Servers may quote the key back; the message must still not carry it.
    server.error_body = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}}).encode()
    emb = make("openai", server.base, "tiny-model", api_key=KEY)
    with pytest.raises(EmbedderError) as info:
        await emb.embed(["x"])
    msg = str(info.value)
    assert "401" in msg and "Incorrect API key provided" in msg and "API key" in msg
    assert KEY not in msg and KEY not in repr(info.value) and KEY not in repr(emb)


async def test_ollama_missing_model_suggests_pull(server: FakeServer, make: Any) -> None:
    server.status = 404
    server.error_body = b'{"error": "model \\"nomic-embed-text\\" not found, try pulling it first"}'
    with pytest.raises(EmbedderError) as info:
        await make("ollama", server.base, "nomic-embed-text").dimension()
    msg = str(info.value)
    assert "404" in msg and "not found, try pulling it first" in msg and "ollama pull nomic-embed-text" in msg


async def test_non_json_error_body_is_quoted(server: FakeServer, make: Any) -> None:
    server.status = 502
    server.error_body = b"Bad Gateway from the proxy"
    with pytest.raises(EmbedderError, match="502.*Bad Gateway from the proxy"):
        await make("ollama", server.base, "tiny-model").embed(["x"])


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_connection_refused(make: Any, kind: str) -> None:
    with socket.socket() as s:  # a port that was free a moment ago and now has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    emb = make(kind, base, "tiny-model", api_key=KEY) if kind == "openai" else make(kind, base, "tiny-model")
    with pytest.raises(EmbedderError) as info:
        await emb.embed(["x"])
    msg = str(info.value)
    assert f"127.0.0.1:{port}" in msg and "Could not reach" in msg and KEY not in msg
    assert not emb.is_ready


async def test_timeout(server: FakeServer, make: Any) -> None:
    server.delay_s = 1.0
    emb = make("ollama", server.base, "tiny-model", timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(EmbedderError, match="did not answer within 0.2s"):
        await emb.embed(["x"])
    assert time.monotonic() - started < 0.9


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_malformed_json(server: FakeServer, make: Any, kind: str) -> None:
    server.raw_body = b"<html>this is not json"
    with pytest.raises(EmbedderError, match="not JSON"):
        await make(kind, server.base, "tiny-model").embed(["x"])


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_json_of_wrong_shape(server: FakeServer, make: Any, kind: str) -> None:
    server.raw_body = b'{"something": "else"}'
    with pytest.raises(EmbedderError):
        await make(kind, server.base, "tiny-model").embed(["x"])


async def test_openai_duplicate_index_rejected(server: FakeServer, make: Any) -> None:
    server.raw_body = json.dumps(
        {"data": [{"index": 0, "embedding": [1.0, 0.0]}, {"index": 0, "embedding": [0.0, 1.0]}]}
    ).encode()
    with pytest.raises(EmbedderError, match="index"):
        await make("openai", server.base, "tiny-model").embed(["a", "b"])


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_wrong_length_row_in_batch(server: FakeServer, make: Any, kind: str) -> None:
    server.truncate_last = True
    emb = make(kind, server.base, "tiny-model")
    with pytest.raises(EmbedderError, match=f"{DEFAULT_DIM - 1}-dimensional"):
        await emb.embed(["a", "b", "c"])
    # A rejected answer must not fix the dimension.
    server.truncate_last = False
    assert await emb.dimension() == DEFAULT_DIM


async def test_row_length_disagrees_with_table(server: FakeServer, make: Any) -> None:
    server.dim_override = 8
    emb = make("openai", server.base, "text-embedding-3-small")
    with pytest.raises(EmbedderError, match="8-dimensional.*1536"):
        await emb.embed(["x"])


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_row_length_disagrees_with_earlier_answer(server: FakeServer, make: Any, kind: str) -> None:
    emb = make(kind, server.base, "tiny-model")
    assert await emb.dimension() == DEFAULT_DIM
    server.dim_override = DEFAULT_DIM + 4
    with pytest.raises(EmbedderError, match=f"{DEFAULT_DIM + 4}-dimensional"):
        await emb.embed(["x"])


async def test_wrong_number_of_rows(server: FakeServer, make: Any) -> None:
    server.raw_body = b'{"embeddings": [[1.0, 2.0]]}'
    with pytest.raises(EmbedderError, match="1 embeddings for 2 texts"):
        await make("ollama", server.base, "tiny-model").embed(["a", "b"])


async def test_single_string_rejected(server: FakeServer, make: Any) -> None:
    with pytest.raises(ValueError, match="single string"):
        await make("ollama", server.base, "tiny-model").embed("oops")
    assert server.requests == []


async def test_injected_client_left_open_owned_client_closed(server: FakeServer) -> None:
    async with httpx.AsyncClient() as client:
        emb = OllamaEmbedder("tiny-model", server.base, client=client)
        await emb.embed(["x"])
        await emb.aclose()
        assert not client.is_closed
    owned = OllamaEmbedder("tiny-model", server.base + "/")  # trailing slash tolerated
    await owned.embed(["x"])
    inner = owned._client
    assert inner is not None
    await owned.aclose()
    assert inner.is_closed
    assert server.requests[-1]["path"] == "/api/embed"
