"""The memory browser: a small Starlette app over one ``HierarchicalMemory``.

Pages are Jinja2 templates; htmx (served from ``static/``, like every script and style: nothing
comes from another site) swaps the parts of a page that a form or a live refresh changes. The
rules stay in the engine: each handler is a few lines over one or two of its calls
(``pages.py`` reads, ``actions.py`` changes, ``live.py`` follows the change feed).

``memory-mcp ui`` runs it on its own (``create_app``); ``memory-mcp serve --transport http --ui``
serves it at ``/ui`` beside ``/mcp``, sharing the server's engine (``mount``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.transport_security import TransportSecurityMiddleware
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import MemoryMCPError
from ..server.app import EngineHolder
from ..server.origins import transport_security
from ..server.settings import ServerSettings
from . import access, actions, pages
from .browser import HERE, Browser, problem


def routes() -> list[Any]:
    return [
        Route("/", pages.home),
        Route("/sign-in", pages.sign_in_page, methods=["GET"]),
        Route("/sign-in", actions.sign_in, methods=["POST"]),
        Route("/sign-out", actions.sign_out, methods=["POST"]),
        Route("/users", pages.users),
        Route("/user", pages.user),
        Route("/memories", pages.memories),
        Route("/search", pages.search),
        Route("/memory", pages.memory),
        Route("/events", pages.events),
        Route("/export", actions.export),
        Route("/add", actions.add, methods=["POST"]),
        Route("/supersede", actions.supersede, methods=["POST"]),
        Route("/forget", actions.forget, methods=["POST"]),
        Route("/import", actions.start_import, methods=["POST"]),
        Route("/import", actions.import_progress, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def _app(browser: Browser, lifespan: Any = None) -> Starlette:
    async def failed(request: Request, exc: Exception) -> Response:
        return await problem(request, exc)

    app = Starlette(
        routes=routes(),
        middleware=[Middleware(access.Guard, security=TransportSecurityMiddleware(transport_security(browser.settings)),
                               sessions=access.Sessions(), tokens=browser.tokens)],
        exception_handlers={MemoryMCPError: failed, HTTPException: failed, Exception: failed},
        lifespan=lifespan,
    )
    app.state.browser = browser
    return app


def create_app(settings: ServerSettings) -> Starlette:
    """The browser on its own, with an engine of its own (``memory-mcp ui``)."""
    holder = EngineHolder(settings)
    browser = Browser(settings, holder)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        async with holder.use():
            try:
                yield
            finally:
                await browser.live.stop()

    return _app(browser, lifespan)


def mount(app: Starlette, settings: ServerSettings, holder: EngineHolder, path: str = "/ui") -> None:
    """Serve the browser at ``path`` of the MCP server's HTTP app, over the server's engine, which
    then stays open for as long as the server runs."""
    browser = Browser(settings, holder)
    app.router.routes.append(Mount(path, app=_app(browser)))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(owner: Any) -> AsyncIterator[Any]:
        async with holder.use(), inner(owner) as state:
            try:
                yield state
            finally:
                await browser.live.stop()

    app.router.lifespan_context = lifespan
