"""What every handler of the browser shares: the engine (through the server's ``EngineHolder``),
the settings, the templates, the live-refresh broadcast, the imports under way, and how a page
or an error is rendered."""

from __future__ import annotations

import logging
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from ..errors import MemoryMCPError, MemoryNotFoundError
from ..memory import HierarchicalMemory
from ..server.app import EngineHolder
from ..server.auth import TokenFile
from ..server.settings import ServerSettings
from . import views
from .live import ChangeBroadcast

HERE = Path(__file__).parent
log = logging.getLogger("memory_mcp")


class Browser:
    """What every handler needs: the engine (through the holder), the settings, the templates,
    the live-refresh broadcast and the imports under way."""

    def __init__(self, settings: ServerSettings, holder: EngineHolder) -> None:
        self.settings = settings
        self.holder = holder
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters["q"] = lambda value: quote(str(value), safe="")
        self.templates.env.globals.update(when=views.when, position=views.position, origin=views.origin,
                                          categories=views.CATEGORIES, levels=views.LEVELS)
        self.live = ChangeBroadcast(lambda: self.engine, settings.watch_interval_s)
        self.imports: dict[str, Any] = {}  # import id -> ImportJob (actions.py)
        self.tokens = TokenFile(settings.auth_tokens_file) if settings.auth_tokens_file else None

    @property
    def engine(self) -> HierarchicalMemory:
        if self.holder.engine is None:
            raise HTTPException(503, "the memory database is not open")
        return self.holder.engine

    async def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        viewer = request.state.viewer
        context.update(request=request, viewer=viewer, base=root(request),
                       feed_seq=await self.engine.last_change() if viewer is not None else 0)
        return self.templates.TemplateResponse(request, name, context, status_code=status)


def root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


def browser_of(request: Request) -> Browser:
    browser: Browser = request.app.state.browser
    return browser


async def problem(request: Request, exc: Exception) -> Response:
    """An error as one line on the page: the engine's message names the problem and the fix."""
    if isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
    elif isinstance(exc, MemoryMCPError):
        status, message = (404 if isinstance(exc, MemoryNotFoundError) else 400), str(exc)
    else:  # a defect: the log has the traceback, the page one line
        log.error("browser: %s %s failed", request.method, request.url.path, exc_info=exc)
        status, message = 500, f"internal error ({type(exc).__name__}): the server's log says more"
    if request.headers.get("hx-request"):  # into the page's message area, whatever part asked
        return HTMLResponse(f'<p class="problem" id="problem">{escape(message)}</p>', status, headers={
            "HX-Retarget": "#flash", "HX-Reswap": "innerHTML", "HX-Reselect": "#problem"})
    browser = browser_of(request)
    if getattr(request.state, "viewer", None) is None or browser.holder.engine is None:
        return Response(message, status, media_type="text/plain")
    return await browser.render(request, "problem.html", status, message=message)
