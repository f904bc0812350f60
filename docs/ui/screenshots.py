"""The screenshots of docs/ui/ and the README: the memory browser on a small made-up memory.

    .venv/bin/python docs/ui/screenshots.py          # needs Debian's chromium and playwright

Stores Alice's memories (a job and a city that changed, preferences, two sessions with their
agents, a note promoted from a session) in a temp database, starts ``memory-mcp ui`` on it and
takes each page with Chromium, as a person would see it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

from memory_mcp import HierarchicalMemory, MemoryConfig

HERE = Path(__file__).parent
NOW = datetime.now(UTC).replace(microsecond=0)


def chain(user: str, texts: list[tuple[str, int]], **fields: object) -> list[dict]:
    """One fact's versions, each (content, days ago it became true)."""
    ids = [str(uuid.uuid4()) for _ in texts]
    out = []
    for i, (content, days) in enumerate(texts):
        start = (NOW - timedelta(days=days)).isoformat()
        until = (NOW - timedelta(days=texts[i + 1][1])).isoformat() if i + 1 < len(texts) else None
        out.append({"id": ids[i], "user_id": user, "content": content, "created_at": start, "valid_from": start,
                    "valid_until": until, "supersedes": ids[i - 1] if i else None,
                    "superseded_by": ids[i + 1] if i + 1 < len(texts) else None,
                    "provenance": {"via": "mcp:remember" if i == 0 else "mcp:supersede",
                                   "recorded_at": start}, **fields})
    return out


def story() -> list[dict]:
    return [
        *chain("alice", [("Alice works at Google on search ranking", 400), ("Alice works at Anthropic", 120)],
               category="fact", importance=0.8),
        *chain("alice", [("Alice lives in Paris", 700), ("Alice lives in Lyon", 300), ("Alice lives in Oslo", 20)],
               category="fact", importance=0.7, entity_refs=["Oslo"]),
        *chain("alice", [("Alice prefers Go for backend services", 90)], category="preference", importance=0.6),
        *chain("alice", [("Alice drinks green tea, never coffee", 60)], category="preference", importance=0.4),
        *chain("alice", [("Alice is allergic to peanuts", 30)], category="fact", importance=0.95,
               origin_level="session", origin_session_id="trip-planning",
               promoted_at=(NOW - timedelta(days=30)).isoformat()),
        *chain("alice", [("Trip to Kyoto from 3 to 12 April, flights booked", 14)], category="context",
               session_id="trip-planning", importance=0.5),
        *chain("alice", [("Hotel: a ryokan near Gion, two nights", 13)], category="decision",
               session_id="trip-planning", agent_id="planner", importance=0.5),
        *chain("alice", [("The review covers the payments service retry logic", 3)], category="context",
               session_id="code-review", importance=0.4),
        *chain("alice", [("Prefers table-driven tests with pytest.mark.parametrize", 2)], category="preference",
               session_id="code-review", agent_id="coder", importance=0.5),
        *chain("bob", [("Bob plays the cello in a community orchestra", 50)], category="entity", importance=0.5),
    ]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "memory.db"
        memory = await HierarchicalMemory.create(MemoryConfig(db_path=db))
        await memory.import_jsonl([json.dumps(r) for r in story()])
        timeline = (await memory.search("where does Alice live", user_id="alice", mode="text"))[0].memory.id
        await memory.close()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "memory_mcp", "ui", "--db-path", str(db),
                                   "--port", str(port), "--log-level", "WARNING"])
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    httpx.get(base + "/static/ui.css")
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = await browser.new_page(viewport={"width": 1200, "height": 760})
                shots = {
                    "user.png": "/user?u=alice",
                    "memories.png": "/memories?u=alice&as_of="  # what was believed 200 days ago
                                    + (NOW - timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%S"),
                    "search.png": "/search?u=alice&q=which+city+is+she+in+now%3F",
                    "timeline.png": f"/memory?id={timeline}",
                }
                for name, path in shots.items():
                    await page.goto(base + path)
                    await page.wait_for_timeout(400)
                    await page.screenshot(path=HERE / name)
                    print(f"docs/ui/{name}")
                await browser.close()
        finally:
            server.terminate()
            server.wait(15)


if __name__ == "__main__":
    asyncio.run(main())
