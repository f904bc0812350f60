"""The memory browser in a real browser: Debian's Chromium, driven by Playwright, against
``memory-mcp ui`` running as a subprocess on a temp database (one server without sign-in, one with
a tokens file). Writes by "another process" are made by a second engine on the same database, as
an MCP server or a script would.

Needs ``apt-get install chromium`` (the tests say so and skip where it is missing) and the
``playwright`` package; no browser is downloaded.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from test_server_transports import free_port, server_env

from memory_mcp import HierarchicalMemory, MemoryConfig
from memory_mcp.memory.dialogue import QUESTION_WEIGHT, asked
from memory_mcp.memory.timeframe import TIME_WEIGHT, factor, named_span
from memory_mcp.server.auth import add_token

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
from playwright.async_api import Browser, Page, expect  # noqa: E402


class UiServer:
    def __init__(self, db: Path, *extra: str) -> None:
        self.db, self.port = db, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = db.with_suffix(".log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "memory_mcp", "ui", "--db-path", str(db), "--port", str(self.port), *extra],
            env=server_env(), stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, db.with_suffix(".log").read_text()
            try:
                httpx.get(self.url + "/static/ui.css", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("the browser's server did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


async def seed(db: Path, embedder: Any) -> dict[str, str]:
    """Alice's memories at several positions (one fact in two versions) and one of Bob's."""
    from conftest import _SharedEmbedder

    memory = await HierarchicalMemory.create(MemoryConfig(db_path=db), embedder=_SharedEmbedder(embedder))
    try:
        ids = {}
        old = await memory.add("Alice works at Google", user_id="alice", category="fact",
                               valid_from=time.time() - 30 * 86400)
        ids["job"] = (await memory.supersede(old.id, "Alice works at Anthropic")).id
        ids["job_before"] = old.id
        ids["tea"] = (await memory.add("Alice drinks green tea every morning", user_id="alice",
                                       category="preference")).id
        ids["auth"] = (await memory.add("We are refactoring the auth module", user_id="alice", session_id="s1",
                                        category="context")).id
        ids["pytest"] = (await memory.add("The coder agent prefers pytest over unittest", user_id="alice",
                                          session_id="s1", agent_id="coder")).id
        ids["bob"] = (await memory.add("Bob plays the cello in an orchestra", user_id="bob")).id
        return ids
    finally:
        await memory.close()


@pytest.fixture(scope="module")
async def open_server(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> AsyncIterator[tuple[UiServer, dict]]:
    db = tmp_path_factory.mktemp("ui-open") / "memory.db"
    ids = await seed(db, embedder)
    server = UiServer(db)
    yield server, ids
    server.stop()


@pytest.fixture(scope="module")
async def signed_server(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> AsyncIterator[tuple[UiServer, dict]]:
    where = tmp_path_factory.mktemp("ui-signed")
    ids = await seed(where / "memory.db", embedder)
    tokens = where / "tokens"
    ids["alice_token"], ids["bob_token"] = add_token(tokens, "alice"), add_token(tokens, "bob")
    server = UiServer(where / "memory.db", "--auth-tokens-file", str(tokens))
    ids["tokens_file"] = str(tokens)
    yield server, ids
    server.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with playwright_api.async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(accept_downloads=True)
    tab = await context.new_page()
    refused: list[str] = []  # anything the page's security policy kept out (a script from elsewhere)
    tab.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    yield tab
    await context.close()
    assert refused == []


async def another_process(db: Path, script: str) -> None:
    """Run library code in a process of its own on the same database."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import asyncio\nfrom memory_mcp import HierarchicalMemory, MemoryConfig\n"
        f"async def main():\n    m = await HierarchicalMemory.create(MemoryConfig(db_path={str(db)!r}), prepare=False)\n"
        f"    try:\n        {script}\n    finally:\n        await m.close()\nasyncio.run(main())\n",
        env=server_env(),
    )
    assert await proc.wait() == 0


# -- browsing ---------------------------------------------------------------------------------


async def test_browse_from_the_users_to_a_users_tree_and_list(open_server: Any, page: Page) -> None:
    server, _ = open_server
    await page.goto(server.url + "/")
    await expect(page).to_have_url(re.compile(r"/users$"))
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_contain_text("alice")
    await page.get_by_role("link", name="alice", exact=True).first.click()
    await expect(page.locator("h1")).to_have_text("alice")
    current = page.locator(".stat").filter(has_text="current").locator("b")
    await expect(current).to_have_text("4")  # Google superseded by Anthropic, tea, auth, pytest
    tree = page.locator(".tree")
    await expect(tree).to_contain_text("session s1")
    await expect(tree).to_contain_text("agent coder")
    await tree.get_by_role("link", name="session s1").click()
    await expect(page.locator("tbody")).to_contain_text("We are refactoring the auth module")
    await expect(page.locator("tbody")).to_contain_text("The coder agent prefers pytest over unittest")
    await expect(page.locator("tbody")).not_to_contain_text("green tea")  # not in session s1


async def test_the_list_filters_by_category_state_and_words(open_server: Any, page: Page) -> None:
    server, _ = open_server
    await page.goto(server.url + "/memories?u=alice")
    await page.get_by_label("Category").select_option("preference")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("tbody")).to_contain_text("green tea")
    await page.goto(server.url + "/memories?u=alice&state=superseded")
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("tbody")).to_contain_text("Alice works at Google")
    await page.goto(server.url + "/memories?u=alice&state=all&q=works")
    await expect(page.locator("tbody tr")).to_have_count(2)
    await page.goto(server.url + "/memories?u=alice")
    five_days_ago = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 5 * 86400))
    await page.get_by_label("As of (UTC)").fill(five_days_ago)
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("tbody tr")).to_have_count(1)  # what was believed then
    await expect(page.locator("tbody")).to_contain_text("Alice works at Google")


async def test_search_shows_each_results_score_parts(open_server: Any, page: Page) -> None:
    server, _ = open_server
    await page.goto(server.url + "/search?u=alice")
    await page.get_by_label("Question or words").fill("which tea does she drink?")
    await page.get_by_role("button", name="Search").click()
    first = page.locator("tbody tr").first
    await expect(first).to_contain_text("Alice drinks green tea every morning")
    cells = [await c.inner_text() for c in await first.locator("td.num").all()]
    score, semantic, text, importance, recency = (float(c.split()[-1]) for c in cells)
    assert 0 < semantic <= 1 and 0 < text <= 1
    assert 0 < importance <= 1 and 0 < recency <= 1
    assert score == pytest.approx((semantic + text) / 2 * importance * recency, abs=0.002)


async def test_a_question_naming_a_time_shows_how_near_each_result_lies_to_it(open_server: Any, page: Page) -> None:
    server, _ = open_server
    question = "which tea did she drink in March 2024?"
    await page.goto(server.url + "/search?u=alice&q=" + quote(question))
    await expect(page.locator(".named-time")).to_contain_text("names 2024-03-01 to 2024-03-31 (UTC)")
    await expect(page.locator("thead")).to_contain_text("× time")
    first = page.locator("tbody tr").first
    await expect(first).to_contain_text("Alice drinks green tea every morning")
    cells = [await c.inner_text() for c in await first.locator("td.num").all()]
    score, semantic, text, importance, recency, by_time = (float(c.split()[-1]) for c in cells)
    valid_from = re.search(r"valid from (\S+ \S+) UTC", await first.inner_text())
    assert valid_from is not None
    at = datetime.fromisoformat(valid_from[1]).replace(tzinfo=UTC).timestamp()
    span = named_span(question, time.time())
    assert span is not None
    assert by_time == pytest.approx(factor(at, span), abs=0.001)
    assert 1 - TIME_WEIGHT <= by_time < 1  # stored now, long after March 2024
    assert score == pytest.approx((semantic + text) / 2 * importance * recency * by_time, abs=0.002)
    # Another mode, or a question naming no time: no such column.
    await page.goto(server.url + "/search?u=alice&mode=text&q=" + quote(question))
    await expect(page.locator("thead")).not_to_contain_text("× time")
    await expect(page.locator(".named-time")).to_have_count(0)


async def test_the_search_page_shows_how_far_the_conversation_stage_moved_a_question_and_its_answer(
    tmp_path: Path, embedder: Any, page: Page
) -> None:
    from conftest import _SharedEmbedder

    turns = ["Nate: I started a new job last month, so we had to move.",
             "Joanna: Congratulations! Which city did you move to for the new job?",
             "Nate: Lisbon. We found a flat near the river."]
    db = tmp_path / "memory.db"
    memory = await HierarchicalMemory.create(MemoryConfig(db_path=db), embedder=_SharedEmbedder(embedder))
    try:
        await memory.add_conversation([{"content": t} for t in turns], user_id="dana")
    finally:
        await memory.close()
    server = UiServer(db)
    try:
        await page.goto(server.url + "/search?u=dana&q=" + quote("Which city did Nate move to for his new job?"))
        await expect(page.locator("thead")).to_contain_text("± stage")
        cells = {}
        for row in await page.locator("tbody tr").all():
            text = await row.locator("a.content").inner_text()
            cells[text] = [await c.inner_text() for c in await row.locator("td.num").all()]
        assert set(cells) == set(turns)
        parts = {}
        for text, row in cells.items():
            score, semantic, text_match, importance, recency = (float(c.split()[-1]) for c in row[:5])
            product = (semantic + text_match) / 2 * importance * recency
            parts[text] = (score, product, None if row[5] == "—" else float(row[5]))
        score, product, moved = parts[turns[1]]  # the question: lowered by 0.2 of what it had, times the share that asks
        assert 0.5 < asked(turns[1]) < 1
        assert moved == pytest.approx(-QUESTION_WEIGHT * asked(turns[1]) * product, abs=0.002)
        score, product, moved = parts[turns[2]]  # its answer: raised towards the question's score
        assert moved is not None and moved > 0
        assert score <= parts[turns[1]][1] + 0.002  # never past what the question had
        # Text mode has no such stage: no column.
        await page.goto(server.url + "/search?u=dana&mode=text&q=" + quote("Which city did Nate move to?"))
        await expect(page.locator("tbody tr").first).to_be_visible()
        await expect(page.locator("thead")).not_to_contain_text("± stage")
    finally:
        server.stop()


async def test_a_memory_page_shows_the_timeline_of_its_fact(open_server: Any, page: Page) -> None:
    server, ids = open_server
    await page.goto(f"{server.url}/memory?id={ids['job_before']}")
    versions = page.locator(".timeline > li")
    await expect(versions).to_have_count(2)
    await expect(versions.nth(0)).to_contain_text("Alice works at Anthropic")
    await expect(versions.nth(0).locator(".badge").first).to_have_text("current")
    await expect(versions.nth(1)).to_contain_text("Alice works at Google")
    await expect(versions.nth(1)).to_contain_text("until")
    await expect(versions.nth(1)).to_have_class(re.compile("shown"))  # the version asked for
    await expect(versions.nth(1)).to_contain_text('"recorded_at"')  # its provenance


# -- changing ---------------------------------------------------------------------------------


async def test_an_edit_from_the_page_is_a_new_current_version_and_the_old_one_stays(
    open_server: Any, page: Page
) -> None:
    server, ids = open_server
    await page.goto(f"{server.url}/memory?id={ids['tea']}")
    await page.locator("textarea[name=content]").fill("Alice drinks jasmine tea every morning")
    await page.get_by_role("button", name="Save as the new version").click()
    await expect(page).not_to_have_url(re.compile(ids["tea"]))
    versions = page.locator(".timeline > li")
    await expect(versions).to_have_count(2)
    await expect(versions.nth(0)).to_contain_text("jasmine tea")
    await expect(versions.nth(0).locator(".badge").first).to_have_text("current")
    await expect(versions.nth(1)).to_contain_text("green tea")
    await expect(versions.nth(1).locator(".badge").first).to_have_text("superseded")
    await expect(versions.nth(0)).to_contain_text('"via": "ui:edit"')


async def test_forgetting_asks_first_then_removes_the_whole_history(open_server: Any, page: Page) -> None:
    server, ids = open_server
    await page.goto(f"{server.url}/memory?id={ids['job']}")
    await page.get_by_label("What").select_option("1")
    await page.get_by_role("button", name="Forget").click()  # the box is not ticked: nothing happens
    await page.wait_for_timeout(500)
    await expect(page).to_have_url(re.compile(ids["job"]))
    await page.get_by_label("Yes, forget it for good").check()
    await page.get_by_role("button", name="Forget").click()
    await expect(page.locator(".notice")).to_have_text("Forgot 2 version(s).")
    await expect(page.locator("tbody")).not_to_contain_text("Alice works at")
    answer = await page.goto(f"{server.url}/memory?id={ids['job_before']}")
    assert answer is not None and answer.status == 404


async def test_add_from_the_page(open_server: Any, page: Page) -> None:
    server, _ = open_server
    await page.goto(server.url + "/user?u=alice")
    await page.locator("textarea[name=content]").fill("Alice is learning the violin")
    await page.get_by_label("Category").select_option("context")
    await page.get_by_role("button", name="Remember").click()
    await expect(page).to_have_url(re.compile(r"/memory\?id="))
    await expect(page.locator(".timeline > li")).to_have_count(1)
    await expect(page.locator(".timeline")).to_contain_text('"via": "ui:add"')


async def test_a_write_by_another_process_appears_without_reloading(open_server: Any, page: Page) -> None:
    server, _ = open_server
    await page.goto(server.url + "/memories?u=alice")
    await page.evaluate("window.sameDocument = true")  # gone if the page were loaded again
    await page.wait_for_timeout(300)  # the change stream is open
    await another_process(server.db, "await m.add('Alice adopted a cat named Miso', user_id='alice')")
    await expect(page.locator("tbody")).to_contain_text("Alice adopted a cat named Miso", timeout=10_000)
    assert await page.evaluate("window.sameDocument") is True


async def test_export_then_import_with_progress(open_server: Any, page: Page, tmp_path: Path) -> None:
    server, _ = open_server
    await page.goto(server.url + "/user?u=bob")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Export every version as JSON lines").click()
    exported = tmp_path / "bob.jsonl"
    await (await download_info.value).save_as(exported)
    lines = exported.read_text().splitlines()
    assert [json.loads(line)["content"] for line in lines] == ["Bob plays the cello in an orchestra"]
    upload = tmp_path / "more.jsonl"
    upload.write_text("\n".join(json.dumps({"content": f"Bob collects stamp number {n}"}) for n in range(300))
                      + "\n" + json.dumps({"user_id": "alice", "content": "not Bob's"}) + "\n")
    await page.locator("input[type=file]").set_input_files(str(upload))
    await page.get_by_role("button", name="Import", exact=True).click()
    await expect(page.locator(".import[data-finished=yes]")).to_contain_text(
        "Imported 300, already present 0, refused 1 of 301 lines", timeout=60_000)
    await expect(page.locator(".import")).to_contain_text("line 301: a memory of user 'alice', not of 'bob'")


# -- signing in and keeping users apart ----------------------------------------------------------


async def test_sign_in_is_refused_without_a_valid_token(signed_server: Any, page: Page) -> None:
    server, ids = signed_server
    await page.goto(server.url + "/users")
    await expect(page).to_have_url(re.compile(r"/sign-in$"))
    await page.get_by_label("Token").fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#flash")).to_contain_text("That token is not valid")
    await expect(page).to_have_url(re.compile(r"/sign-in$"))
    assert (await page.goto(server.url + "/memories?u=alice")).url.endswith("/sign-in")  # type: ignore[union-attr]
    await page.get_by_label("Token").fill(ids["alice_token"])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("h1")).to_have_text("alice")
    await expect(page.locator("header")).to_contain_text("signed in as alice")


async def test_a_signed_in_user_never_sees_another_users_memories(signed_server: Any, page: Page) -> None:
    server, ids = signed_server
    await page.goto(server.url + "/sign-in")
    await page.get_by_label("Token").fill(ids["alice_token"])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("h1")).to_have_text("alice")
    await expect(page.get_by_role("link", name="Users")).to_have_count(0)
    await page.goto(server.url + "/users")
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("tbody")).not_to_contain_text("bob")
    for path in ("/user?u=bob", "/memories?u=bob", "/search?u=bob&q=cello", f"/memory?id={ids['bob']}",
                 "/export?u=bob"):
        answer = await page.goto(server.url + path)
        assert answer is not None and answer.status == 404, path
        assert "cello" not in await page.content()
    answer = await page.goto(server.url + "/search?u=alice&q=cello+orchestra&mode=text")
    assert answer is not None and answer.status == 200
    await expect(page.locator("tbody")).to_contain_text("Nothing relevant is stored")


# -- the same checks without a browser: what a page of another site or a stale cookie can do -------


def _csrf(html: str) -> str:
    found = re.search(r'data-csrf="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def _signed_in(server: UiServer, token: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=server.url)
    csrf = _csrf(client.get("/sign-in").text)
    answer = client.post("/sign-in", data={"token": token}, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200 and answer.headers["HX-Redirect"] == "/"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/memories?u=alice")
    return client, _csrf(page.text)


def test_changes_need_the_pages_csrf_token_and_its_own_origin(signed_server: Any) -> None:
    server, ids = signed_server
    client, csrf = _signed_in(server, ids["alice_token"])
    add = {"u": "alice", "content": "Alice climbs on Sundays"}
    refused = [
        client.post("/add", data=add),  # no token: a form posted by another site
        client.post("/add", data=add, headers={"X-CSRF-Token": "guessed"}),
        client.post("/add", data=add, headers={"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1:1"}),  # another port
        client.post("/add", data=add, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}),
        client.post("/add", data=add, headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert "climbs" not in client.get("/memories?u=alice").text
    origin = client.post("/add", data=add, headers={"X-CSRF-Token": csrf, "Origin": server.url})
    assert origin.status_code == 200 and origin.headers["HX-Redirect"].startswith("/memory?id=")
    assert "climbs" in client.get("/memories?u=alice").text
    assert client.get("/users", headers={"Host": "evil.example"}).status_code == 421  # DNS rebinding
    policy = client.get("/memories?u=alice").headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy  # no CDN, no framing
    assert client.post("/forget", data={"id": ids["bob"], "whole": "1", "confirm": "yes"},
                       headers={"X-CSRF-Token": csrf}).status_code == 404  # Bob's memory is not there for Alice
    assert client.get("/events?u=bob").status_code == 404
    assert client.post("/forget", data={"id": ids["tea"]}, headers={"X-CSRF-Token": csrf}).status_code == 400
    assert "green tea" in client.get("/memories?u=alice").text  # not confirmed: kept


def test_a_revoked_token_signs_its_browsers_out(signed_server: Any) -> None:
    from memory_mcp.server.auth import revoke_tokens

    server, ids = signed_server
    client, _ = _signed_in(server, ids["bob_token"])
    assert client.get("/user?u=bob").status_code == 200
    assert client.get("/user?u=alice").status_code == 404
    revoke_tokens(Path(ids["tokens_file"]), "bob")
    answer = client.get("/user?u=bob", headers={"Accept": "text/html"})
    assert answer.status_code == 303 and answer.headers["location"] == "/sign-in"
    assert client.get("/static/htmx.min.js").status_code == 200  # served by the app itself


async def test_the_http_server_serves_the_browser_beside_mcp_when_asked(tmp_path: Path, embedder: Any) -> None:
    from mcp import Client

    db = tmp_path / "memory.db"
    await seed(db, embedder)
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "memory_mcp", "serve", "--transport", "http", "--port", str(port), "--db-path",
         str(db), "--user-id", "alice", "--ui"], env=server_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(base + "/ui/static/ui.css", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        with httpx.Client(base_url=base) as browser:
            assert browser.get("/ui/").headers["location"] == "/ui/users"
            page = browser.get("/ui/memories?u=alice")
            assert page.status_code == 200 and 'href="/ui/static/ui.css"' in page.text
            assert "We are refactoring the auth module" in page.text
            added = browser.post("/ui/add", data={"u": "alice", "content": "Alice rows on the river"},
                                 headers={"X-CSRF-Token": _csrf(page.text)})
            assert added.status_code == 200 and added.headers["HX-Redirect"].startswith("/ui/memory?id=")
        async with Client(base + "/mcp") as client:  # the MCP server beside it sees the same memories
            text = (await client.call_tool("recall", {"query": "rowing on the river"})).content[0].text
        assert "Alice rows on the river" in text
    finally:
        server.terminate()
        server.wait(15)
        log.close()
