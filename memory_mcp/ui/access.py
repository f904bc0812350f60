"""Who is looking, and the checks every request of the browser passes.

Without a tokens file the browser acts for any user of the database, as the CLI does (it listens
on loopback). With one, a person signs in with their bearer token once: the server keeps the
token under a random session id and gives the browser that id in an HTTP-only, SameSite=Strict
cookie, and checks the token again at every request, so a revoked or rotated token signs its
browsers out at once. Every session (signed in or not) has a CSRF token.

Every request passes the ``Host`` and ``Origin`` checks of ``/mcp`` (DNS rebinding). A request
that changes anything must also come from this very origin (its ``Origin``, or ``Sec-Fetch-Site``
when a browser sends no ``Origin``) and carry the session's CSRF token in ``X-CSRF-Token``, which a
page of another site (another port on loopback included: cookies do not tell ports apart) can
neither read nor send.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from mcp.server.transport_security import TransportSecurityMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..server.auth import TokenFile

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
OPEN_PATHS = ("/sign-in", "/static/")  # reachable before signing in
# Every answer: nothing loads from another site, no page of another site frames this one.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
IDLE_S = 12 * 3600  # a session unused this long ends
MAX_SESSIONS = 10_000  # the oldest is dropped beyond this: a flood of cookie-less requests is bounded


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token: str | None = None  # the bearer token it signed in with, checked again at every request
    seen: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: ``user`` is the signed-in user, or None without tokens (any
    user of the database may be looked at)."""

    user: str | None
    csrf: str
    signed_in: bool = False

    def may_see(self, user_id: str) -> bool:
        return self.user is None or self.user == user_id


class Sessions:
    """The browser sessions of this process (kept in memory: a restart signs everyone out)."""

    def __init__(self) -> None:
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def get(self, session_id: str | None) -> Session | None:
        session = self._by_id.get(session_id) if session_id else None
        if session is None:
            return None
        now = time.monotonic()
        if now - session.seen > IDLE_S:
            self._by_id.pop(session_id, None)  # type: ignore[arg-type]
            return None
        session.seen = now
        self._by_id.move_to_end(session_id)  # type: ignore[arg-type]
        return session

    def new(self, token: str | None = None) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        self._by_id[session_id] = session = Session(token=token)
        while len(self._by_id) > MAX_SESSIONS:
            self._by_id.popitem(last=False)
        return session_id, session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)


def cookie_name(request: Request | Scope) -> str:
    """One cookie per port: two browsers' apps on one host must not sign each other out."""
    scope = request.scope if isinstance(request, Request) else request
    server = scope.get("server") or ("", 0)
    return f"memory_mcp_ui_{server[1]}"


def set_cookie(response: Response, request: Request, session_id: str) -> None:
    response.set_cookie(
        cookie_name(request), session_id, httponly=True, samesite="strict", path=request.scope.get("root_path") or "/",
        secure=request.url.scheme == "https",
    )


def same_origin(request: Request) -> bool:
    """Whether a request that changes something comes from a page of this app."""
    origin = request.headers.get("origin")
    if origin is not None:
        return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"
    # Browsers send Origin on every POST; a client that is not a browser has no cookie to abuse.
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


class Guard:
    """Middleware: the header checks, the session and its viewer (``request.state.viewer``), the
    CSRF check of changes, the way to sign-in, and a ``Server-Timing`` header (time to the answer)."""

    def __init__(self, app: ASGIApp, security: TransportSecurityMiddleware, sessions: Sessions,
                 tokens: TokenFile | None) -> None:
        self.app, self.security, self.sessions, self.tokens = app, security, sessions, tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request = Request(scope)
        refused = await self.security.validate_request(request)
        if refused is not None:
            await refused(scope, receive, send)
            return
        session_id = request.cookies.get(cookie_name(scope))
        session = self.sessions.get(session_id)
        fresh = session is None
        if session is None:
            session_id, session = self.sessions.new()
        viewer = await self.viewer(session)
        scope.setdefault("state", {})
        scope["state"].update(viewer=viewer, session_id=session_id, sessions=self.sessions)
        path = scope["path"][len(scope.get("root_path", "")):] or "/"
        answer: Response | None = None
        if request.method not in SAFE_METHODS and not same_origin(request):
            answer = PlainTextResponse("refused: this request came from another site", 403)
        elif request.method not in SAFE_METHODS and not hmac.compare_digest(
                request.headers.get("x-csrf-token", ""), session.csrf):
            answer = PlainTextResponse("refused: the page is out of date (no valid CSRF token); reload it", 403)
        elif viewer is None and not path.startswith(OPEN_PATHS):
            answer = _to_sign_in(request)
        if answer is not None:
            if fresh:
                set_cookie(answer, request, session_id)  # type: ignore[arg-type]
            await answer(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers.append((b"server-timing", f"app;dur={(time.perf_counter() - started) * 1000:.1f}".encode()))
                headers.extend(SECURITY_HEADERS)
                if fresh and not any(k == b"set-cookie" for k, _ in headers):
                    cookie = Response()
                    set_cookie(cookie, request, session_id)  # type: ignore[arg-type]
                    headers.extend((k, v) for k, v in cookie.raw_headers if k == b"set-cookie")
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def viewer(self, session: Session) -> Viewer | None:
        """Who the session acts for, or None when it must sign in first."""
        if self.tokens is None:
            return Viewer(user=None, csrf=session.csrf)
        if session.token is None:
            return None
        access = await self.tokens.verify_token(session.token)
        if access is None:
            session.token = None  # revoked or rotated: signed out
            return None
        return Viewer(user=access.subject or access.client_id, csrf=session.csrf, signed_in=True)


def _to_sign_in(request: Request) -> Response:
    where = f"{request.scope.get('root_path', '')}/sign-in"
    if request.headers.get("hx-request"):
        return Response("sign in first", 401, headers={"HX-Redirect": where})
    if request.method in SAFE_METHODS and "text/html" in request.headers.get("accept", "text/html"):
        return RedirectResponse(where, 303)
    return PlainTextResponse("sign in first", 401)


def viewer_of(request: Request) -> Viewer:
    viewer: Viewer | None = request.state.viewer
    assert viewer is not None  # the Guard let only open paths through without one
    return viewer


def sign_in(request: Request, token: str) -> tuple[str, Any]:
    """A new session for a verified token (a new id: one seen before signing in is not reused)."""
    sessions: Sessions = request.state.sessions
    sessions.end(request.state.session_id)
    return sessions.new(token=token)
