"""Fair shares of an HTTP server: each client (a bearer token; without tokens, an address other
than this machine's own) may hold a bounded number of open MCP sessions and send a bounded rate of
requests. Without this one client, with one valid token, can open the SDK's 10,000 sessions and
lock every other user out. What is over
its share gets ``429 Too Many Requests`` with a JSON-RPC error saying which limit and what to do,
and a ``Retry-After`` when waiting helps.

It is plain ASGI around the app the SDK builds, so it sees each request before anything else does.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_MAX_CLIENTS = 10_000  # clients remembered at once; the least recently seen are forgotten first


@dataclass
class _Client:
    tokens: float  # requests it may send now (a token bucket refilled at the per-minute rate)
    stamp: float
    sessions: set[str] = field(default_factory=set)  # ids of the MCP sessions it opened
    streams: int = 0  # SSE connections open now


class ClientLimits:
    """ASGI middleware: at most ``max_sessions`` open sessions and ``per_minute`` requests a minute
    (with a burst of a quarter minute's worth) per client; 0 turns a limit off.

    ``open_sessions`` tells which session ids the app still holds (sessions also end by idling
    out, which only the app sees)."""

    def __init__(self, app: Any, *, max_sessions: int, per_minute: int,
                 open_sessions: Callable[[], Any] | None = None, sse_path: str = "/sse") -> None:
        self.app = app
        self.max_sessions = max_sessions
        self.per_minute = per_minute
        self.burst = max(10.0, per_minute / 4)
        self._open_sessions = open_sessions
        self._sse_path = sse_path
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = _client_key(scope)
        if key is None:  # this machine's own user, without tokens: as on stdio, not a stranger to bound
            await self.app(scope, receive, send)
            return
        client = self._client(key)
        if self.per_minute and not self._take(client):
            wait = math.ceil((1 - client.tokens) * 60 / self.per_minute)
            await _refuse(send, f"too many requests from this client: at most {self.per_minute} a minute; "
                          f"retry in {wait} s", retry_after=wait)
            return
        headers = dict(scope.get("headers") or [])
        opening_sse = scope["method"] == "GET" and scope["path"].rstrip("/") == self._sse_path
        opening_session = (scope["method"] == "POST" and b"mcp-session-id" not in headers
                           and not scope["path"].startswith("/messages"))
        if self.max_sessions and (opening_sse or opening_session) and self._held(client) >= self.max_sessions:
            await _refuse(send, f"this client already holds {self.max_sessions} open sessions, its limit: close "
                          "one it no longer uses (an HTTP DELETE with its mcp-session-id header) or let it idle out")
            return
        if opening_sse:
            client.streams += 1
            try:
                await self.app(scope, receive, send)
            finally:
                client.streams -= 1
            return
        if not opening_session:
            await self.app(scope, receive, send)
            return

        async def noting_the_session(message: Any) -> None:
            if message["type"] == "http.response.start":
                for name, value in message.get("headers") or []:
                    if name.lower() == b"mcp-session-id":
                        client.sessions.add(value.decode("latin-1"))
            await send(message)

        await self.app(scope, receive, noting_the_session)

    def _client(self, key: str) -> _Client:
        client = self._clients.pop(key, None) or _Client(tokens=self.burst, stamp=time.monotonic())
        self._clients[key] = client  # most recently seen last
        while len(self._clients) > _MAX_CLIENTS:
            oldest, gone = next(iter(self._clients.items()))
            if self._held(gone):  # never forget a client that holds sessions: it could exceed its share
                break
            del self._clients[oldest]
        return client

    def _take(self, client: _Client) -> bool:
        now = time.monotonic()
        client.tokens = min(self.burst, client.tokens + (now - client.stamp) * self.per_minute / 60)
        client.stamp = now
        if client.tokens < 1:
            return False
        client.tokens -= 1
        return True

    def _held(self, client: _Client) -> int:
        if self._open_sessions is not None and client.sessions:
            client.sessions &= set(self._open_sessions())  # ended by a DELETE or by idling out
        return len(client.sessions) + client.streams


def _client_key(scope: Any) -> str | None:
    """Who is asking: the bearer token (as its digest) when there is one, else the address; None
    for a loopback address without a token. Without tokens every local caller may read and change
    every memory anyway; they are one person's programs, which a share per address would only
    make wait on one another."""
    for name, value in scope.get("headers") or []:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return "token:" + hashlib.sha256(value[7:].strip()).hexdigest()
    client = scope.get("client")
    address = client[0] if client else "unknown"
    return None if address in _LOOPBACK else f"address:{address}"


async def _refuse(send: Any, message: str, retry_after: int | None = None) -> None:
    body = types.JSONRPCError(jsonrpc="2.0", id=None, error=types.ErrorData(code=types.INVALID_REQUEST, message=message))
    payload = body.model_dump_json(by_alias=True, exclude_unset=True).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
