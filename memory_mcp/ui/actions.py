"""The requests that change something: sign in and out, add, edit (a supersession: the old version
stays in the timeline), forget (one version or the whole history, confirmed), export and import
(in the background, its progress polled by the page)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..errors import MemoryMCPError
from ..memory.transfer import ImportReport
from .access import set_cookie, viewer_of
from .access import sign_in as new_session
from .browser import browser_of, root

MAX_IMPORT_BYTES = 256 * 1024 * 1024
KEPT_IMPORTS = 20  # finished imports whose reports can still be read


def go(request: Request, where: str) -> Response:
    """Send the page elsewhere (htmx follows ``HX-Redirect``)."""
    return Response("", 200, headers={"HX-Redirect": root(request) + where})


async def fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v.strip() if k != "content" else v for k, v in form.items() if isinstance(v, str)}


def owned_user(request: Request, user_id: str) -> str:
    if not user_id:
        raise HTTPException(400, "name a user")
    if not viewer_of(request).may_see(user_id):
        raise HTTPException(404, f"no user {user_id!r} here")
    return user_id


async def sign_in(request: Request) -> Response:
    browser = browser_of(request)
    if browser.tokens is None:
        return go(request, "/")
    token = (await fields(request)).get("token", "")
    if not token or await browser.tokens.verify_token(token) is None:
        raise HTTPException(401, "That token is not valid: give a token from `memory-mcp token add <user_id>` "
                                 "(or ask whoever runs this server for yours).")
    session_id, _ = new_session(request, token)
    response = go(request, "/")
    set_cookie(response, request, session_id)
    return response


async def sign_out(request: Request) -> Response:
    request.state.sessions.end(request.state.session_id)
    return go(request, "/sign-in" if browser_of(request).tokens else "/")


async def add(request: Request) -> Response:
    engine, form = browser_of(request).engine, await fields(request)
    user_id = owned_user(request, form.get("u", ""))
    try:
        importance = float(form.get("importance") or 0.5)
    except ValueError:
        raise HTTPException(400, "importance must be a number from 0 to 1") from None
    added = await engine.add(
        form.get("content", ""), user_id, form.get("session") or None, form.get("agent") or None,
        category=form.get("category") or "fact", importance=importance, provenance={"via": "ui:add"},
    )
    return go(request, f"/memory?id={quote(added.id, safe='')}")


async def supersede(request: Request) -> Response:
    engine, form = browser_of(request).engine, await fields(request)
    old = await engine.get(form.get("id", ""), user_id=viewer_of(request).user)
    new = await engine.supersede(old.id, form.get("content", ""), user_id=old.user_id,
                                 provenance={"via": "ui:edit"})
    return go(request, f"/memory?id={quote(new.id, safe='')}")


async def forget(request: Request) -> Response:
    engine, form = browser_of(request).engine, await fields(request)
    if form.get("confirm") != "yes":
        raise HTTPException(400, "forgetting needs a confirmation: tick the box first")
    whole = form.get("whole") == "1"
    old = await engine.get(form.get("id", ""), user_id=viewer_of(request).user)
    rest = [] if whole else [m for m in await engine.get_history(old.id, user_id=old.user_id) if m.id != old.id]
    gone = await engine.delete(old.id, user_id=old.user_id, whole_chain=whole)
    if rest:  # the fact's other versions remain: show them (the current one, if any)
        stay = next((m for m in rest if m.is_current), rest[-1])
        return go(request, f"/memory?id={quote(stay.id, safe='')}&forgot={gone}")
    return go(request, f"/memories?u={quote(old.user_id, safe='')}&forgot={gone}")


async def export(request: Request) -> Response:
    engine = browser_of(request).engine
    user_id = owned_user(request, request.query_params.get("u", ""))
    name = quote(f"memories-{user_id}.jsonl", safe="")
    return StreamingResponse(engine.export_lines(user_id), media_type="application/x-ndjson",
                             headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"})


@dataclass
class ImportJob:
    user_id: str
    lines: int
    done: int = 0
    report: ImportReport | None = None
    failed: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


async def start_import(request: Request) -> Response:
    browser = browser_of(request)
    user_id = owned_user(request, request.query_params.get("u", ""))
    upload = (await request.form()).get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise HTTPException(400, "choose a file of JSON lines (as `memory-mcp export` or Export here writes)")
    data = await upload.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise HTTPException(400, f"the file is larger than {MAX_IMPORT_BYTES // 2**20} MB: import it with "
                                 "`memory-mcp import` instead")
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise HTTPException(400, f"{upload.filename} is not UTF-8 text: expected JSON lines") from None
    job = ImportJob(user_id, sum(1 for line in lines if line.strip()))
    job_id = secrets.token_urlsafe(12)
    jobs = browser.imports

    def advance(n: int) -> None:
        job.done += n

    async def run() -> None:
        try:
            job.report = await browser.engine.import_jsonl(lines, advance, user_id=user_id)
        except (MemoryMCPError, HTTPException) as exc:  # say why on the page; nothing half-stored is lost
            job.failed = str(getattr(exc, "detail", exc))

    job.task = asyncio.create_task(run())
    jobs[job_id] = job
    while len(jobs) > KEPT_IMPORTS:
        jobs.pop(next(iter(jobs)))
    return await _progress(request, job_id, job)


async def import_progress(request: Request) -> Response:
    job_id = request.query_params.get("job", "")
    job = browser_of(request).imports.get(job_id)
    if job is None or not viewer_of(request).may_see(job.user_id):
        raise HTTPException(404, "no such import (a finished import's report is kept for the last 20 only)")
    return await _progress(request, job_id, job)


async def _progress(request: Request, job_id: str, job: ImportJob) -> Response:
    browser = browser_of(request)
    return browser.templates.TemplateResponse(request, "import_progress.html", {
        "base": root(request), "job_id": job_id, "job": job, "finished": job.report is not None or job.failed,
    })
