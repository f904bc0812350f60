"""The pages that read: users, a user's tree of positions, the memory list, search, one memory's
timeline, and the stream of change events that refreshes them."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..errors import MemoryNotFoundError
from ..memory.timeframe import named_span
from . import views
from .access import viewer_of
from .browser import browser_of, root
from .live import event

SEARCH_MODES = ("hybrid", "semantic", "text")
TOP_K = 20


def user_param(request: Request) -> str:
    """The user a page is about: one the viewer may see, or a plain not-found (as on /mcp, another
    user's memories are not there at all for a token of someone else)."""
    viewer = viewer_of(request)
    user_id = request.query_params.get("u") or viewer.user
    if not user_id:
        raise HTTPException(400, "name a user: ?u=<user id>")
    if not viewer.may_see(user_id):
        raise HTTPException(404, f"no user {user_id!r} here")
    return user_id


async def home(request: Request) -> Response:
    viewer = viewer_of(request)
    where = f"/user?u={quote(viewer.user, safe='')}" if viewer.user else "/users"
    return RedirectResponse(root(request) + where, 303)


async def sign_in_page(request: Request) -> Response:
    browser = browser_of(request)
    if browser.tokens is None or request.state.viewer is not None:
        return RedirectResponse(root(request) + "/", 303)
    return browser.templates.TemplateResponse(
        request, "sign_in.html", {"base": root(request), "csrf": _csrf(request), "viewer": None, "feed_seq": 0})


def _csrf(request: Request) -> str:
    sessions = request.state.sessions
    session = sessions.get(request.state.session_id)
    return "" if session is None else str(session.csrf)


async def users(request: Request) -> Response:
    browser, viewer = browser_of(request), viewer_of(request)
    engine = browser.engine
    prefix = request.query_params.get("prefix", "")
    ids = [viewer.user] if viewer.user else await engine.user_ids(prefix, limit=100)
    rows = [(user_id, await engine.stats(user_id)) for user_id in ids]
    return await browser.render(request, "users.html", users=rows, prefix=prefix)


async def user(request: Request) -> Response:
    browser, user_id = browser_of(request), user_param(request)
    engine = browser.engine
    counts = await engine.scope_counts(user_id, limit=views.TREE_POSITIONS + 1)
    cut = len(counts) > views.TREE_POSITIONS
    root, rows = views.tree(counts[:views.TREE_POSITIONS])
    # Every position counted: the overview's sums are the user's (one pass over the index, not two).
    stats = await engine.stats(user_id) if cut else views.summary(counts)
    return await browser.render(request, "user.html", user_id=user_id, stats=stats, root=root, rows=rows, cut=cut)


async def memories(request: Request) -> Response:
    browser, user_id = browser_of(request), user_param(request)
    engine = browser.engine
    listing = views.Listing.of(request.query_params)
    if listing.q:  # the best full-text matches among what the filters select, best first
        # The best n are the first n of the best 500: ask for no more than this page needs
        # (past versions alone are picked from all of them).
        wanted = views.TEXT_MATCHES if listing.state == "superseded" else listing.page * views.PAGE_SIZE + 1
        found = await engine.search(
            listing.q, user_id, listing.session or None, listing.agent or None, listing.turn or None,
            top_k=min(wanted, views.TEXT_MATCHES), mode="text", all_levels=True,
            categories=[listing.category] if listing.category else None,
            scope_levels=[listing.level] if listing.level else None, include_superseded=listing.state != "current",
            as_of=listing.as_of or None,
        )
        matches = [r.memory for r in found if listing.state != "superseded" or not r.memory.is_current]
        start = (listing.page - 1) * views.PAGE_SIZE
        page = matches[start:start + views.PAGE_SIZE + 1]
    else:
        page = await engine.query(listing.memory_filter(user_id))
    return await browser.render(request, "memories.html", user_id=user_id, listing=listing,
                                memories=page[:views.PAGE_SIZE], more=len(page) > views.PAGE_SIZE)


async def search(request: Request) -> Response:
    browser, user_id = browser_of(request), user_param(request)
    engine = browser.engine
    params = request.query_params
    q = params.get("q", "").strip()
    mode = params.get("mode", "hybrid") if params.get("mode") in SEARCH_MODES else "hybrid"
    where = {name: params.get(name, "") for name in ("session", "agent", "turn")}
    everywhere = params.get("everywhere", "1") == "1"
    results, named = [], None
    if q:
        now = datetime.now(UTC)
        found = await engine.search(
            q, user_id, where["session"] or None, where["agent"] or None, where["turn"] or None, top_k=TOP_K,
            mode=mode, all_levels=everywhere,
        )
        named = named_span(q, now.timestamp()) if mode == "hybrid" else None
        results = [(r, views.score_parts(r, engine.config, now, named, hybrid=mode == "hybrid")) for r in found]
    return await browser.render(
        request, "search.html", user_id=user_id, q=q, mode=mode, where=where, everywhere=everywhere, results=results,
        model_status=engine.semantic_status, moved=any(parts.moved is not None for _, parts in results),
        named=named and (datetime.fromtimestamp(named[0], UTC), datetime.fromtimestamp(named[1] - 1, UTC)),
    )


async def memory(request: Request) -> Response:
    browser, viewer = browser_of(request), viewer_of(request)
    engine = browser.engine
    memory_id = request.query_params.get("id", "")
    try:
        shown = await engine.get(memory_id, user_id=viewer.user)
    except MemoryNotFoundError:
        raise HTTPException(404, f"no memory {memory_id!r} here: it was forgotten, or never was") from None
    history = await engine.get_history(memory_id, user_id=shown.user_id)
    current = next((m for m in history if m.is_current), None)
    return await browser.render(request, "memory.html", user_id=shown.user_id, memory=shown, history=history,
                                current=current)


async def events(request: Request) -> Response:
    """Server-Sent Events: one per batch of changes to a user the viewer may see (to the user the
    page is about, when it names one). ``after`` is the change the page was rendered at: a change
    made between the page and this stream is told at once."""
    browser, viewer = browser_of(request), viewer_of(request)
    engine = browser.engine
    only = request.query_params.get("u") or viewer.user
    if only is not None and not viewer.may_see(only):
        raise HTTPException(404, f"no user {only!r} here")
    try:
        after = int(request.query_params.get("after", "0"))
    except ValueError:
        after = 0
    # Read here, not in the stream: a stream is cancelled when its browser goes, and no database
    # work should be under way then.
    missed = [c for c in await engine.changes_since(after, limit=1000) if only in (None, c.user_id)] if after else []

    async def stream():  # type: ignore[no-untyped-def]
        async with browser.live.listen() as changes:
            if missed:
                yield {"data": event(missed)}
            while True:
                batch = [c for c in await changes.get() if only in (None, c.user_id)]
                if batch:
                    yield {"data": event(batch)}

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})
