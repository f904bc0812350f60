"""Server time of each page of the memory browser at N memories of one user.

    .venv/bin/python bench/ui_data.py /tmp/ui-100k.db --memories 100000    # once (minutes)
    .venv/bin/python bench/ui_pages.py /tmp/ui-100k.db --samples 30

Starts ``memory-mcp ui`` on the database (a subprocess, as a person would) and asks for every page
``--samples`` times after a warm-up, reading the time the server spent on each answer from its
``Server-Timing`` header (request in, to the answer's headers; the pages are rendered by then) and
the time the client waited. Prints percentiles in milliseconds as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from workload import query  # noqa: E402


def pcts(values: list[float]) -> dict[str, float]:
    """p50/p95 in milliseconds of values in seconds (inclusive: never beyond the largest)."""
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": statistics.median(values) * 1000, "p95": q[94] * 1000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pages(client: httpx.Client, user: str, rng: random.Random) -> dict[str, str]:
    """Each page as a person reaches it (ids taken from the pages themselves)."""
    superseded = client.get(f"/memories?u={user}&state=superseded").text
    chain = re.search(r'/memory\?id=([0-9a-f-]+)', superseded)
    assert chain, "no superseded memory to show a timeline of"
    return {
        "users": "/users",
        "user: stats and tree": f"/user?u={user}",
        "list, first page": f"/memories?u={user}",
        "list, page 1000": f"/memories?u={user}&page=1000",
        "list, one category": f"/memories?u={user}&category=decision",
        "list, superseded only": f"/memories?u={user}&state=superseded",
        "list, every version, page 500": f"/memories?u={user}&state=all&page=500",
        "list, one session": f"/memories?u={user}&session=s007",
        "list, as of 300 days ago": f"/memories?u={user}&as_of=" + time.strftime(
            "%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 300 * 86400)),
        "list, by words": f"/memories?u={user}&q=Python+migration",
        "list, by words, page 10 (the last)": f"/memories?u={user}&q=Python+migration&page=10",
        "search (hybrid)": f"/search?u={user}&q=" + "{query}",
        "search (text)": f"/search?u={user}&mode=text&q=" + "{query}",
        "memory and its timeline": f"/memory?id={chain.group(1)}",
    }


def main(db: Path, user: str, samples: int, out: Path | None) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = open(db.with_suffix(".ui.log"), "w")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "-m", "memory_mcp", "ui", "--db-path", str(db), "--port", str(port),
                               "--log-level", "WARNING"], env=env, stdout=log, stderr=subprocess.STDOUT)
    rng = random.Random(11)
    rows = {}
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)  # a first search may build the index
        for _ in range(600):
            try:
                client.get("/static/ui.css")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        count = client.get(f"/user?u={user}").text
        for name, path in pages(client, user, rng).items():
            server_s, client_s = [], []
            for i in range(samples + 3):
                url = path.replace("{query}", query(rng).replace(" ", "+").replace("?", ""))
                t = time.perf_counter()
                answer = client.get(url)
                waited = time.perf_counter() - t
                assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
                if i >= 3:  # the first answers warm caches and compile templates
                    server_s.append(float(answer.headers["server-timing"].split("dur=")[1]) / 1000)
                    client_s.append(waited)
            rows[name] = {"server_ms": pcts(server_s), "client_ms": pcts(client_s), "max_ms": max(server_s) * 1000}
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    total = re.search(r"<b>([\d,]+)</b><span>every version", count)
    print(f"memories of {user}: {total.group(1) if total else '?'}; {samples} samples per page; "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} cores\n")
    print("| page | server p50 | p95 | max | client p50 |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        s = row["server_ms"]
        print(f"| {name} | {s['p50']:.1f} ms | {s['p95']:.1f} ms | {row['max_ms']:.1f} ms | "
              f"{row['client_ms']['p50']:.1f} ms |")
    if out is not None:
        out.write_text(json.dumps({"samples": samples, "pages": rows}, indent=1))
    print(f"\nslowest page p50: {max(row['server_ms']['p50'] for row in rows.values()):.1f} ms, "
          f"slowest p95: {max(row['server_ms']['p95'] for row in rows.values()):.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path, help="a database made by bench/ui_data.py")
    parser.add_argument("--user", default="bench")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    main(args.db, args.user, args.samples, args.json)
