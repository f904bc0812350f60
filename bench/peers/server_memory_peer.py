"""The official MCP memory server (``@modelcontextprotocol/server-memory``, npm) as a peer, over stdio.

    .venv/bin/python bench/peers/server_memory_peer.py speed --memories 10000 --users 1 --samples 200
    .venv/bin/python bench/peers/server_memory_peer.py locomo --data ../shared/data/locomo/locomo-dev.json

Runs in the project's venv (it needs only the MCP SDK's client); the server is the bench-local npm
install made by bench/peers/setup.sh, started as ``node .../dist/index.js`` (what ``npx`` would end up
running, without npx's own start-up and registry check) with MEMORY_FILE_PATH in a temporary directory.
The server keeps a knowledge graph of entities (name, entityType, observations) in one JSONL file; each
memory is stored as its own entity (a unique name, entityType "memory", observations = [the text]) and
a query is one ``search_nodes`` call, whose entities, in the order returned, are the ranking. The last
line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    KS,
    RecallTally,
    SpeedData,
    children,
    emit,
    load,
    log,
    machine,
    pcts,
    rss_mb,
    summary,
)

PACKAGE = Path(__file__).resolve().parent / "node" / "node_modules" / "@modelcontextprotocol/server-memory"
ENTRY = PACKAGE / "dist" / "index.js"

NOTES = (
    "server-memory has no embeddings and no ranking: search_nodes keeps every entity whose name, entityType "
    "or any observation contains the whole query as a case-insensitive substring, in file order, with no "
    "limit. It has no notion of users (one graph per MEMORY_FILE_PATH). Every tool call re-reads and parses "
    "the whole JSONL file, and every mutation (create_entities, add_observations, ...) rewrites the whole "
    "file (to a temporary file, then rename); create_entities also checks each new name against every "
    "existing entity. No embedding floor applies (no model)."
)


def version() -> str:
    return json.loads((PACKAGE / "package.json").read_text())["version"]


@asynccontextmanager
async def server(memory_file: Path) -> Any:
    """A started server and its client; yields (client, seconds from spawn to the first tools/list answer,
    tools/list size in bytes, server pid)."""
    from mcp import Client, StdioServerParameters

    if not ENTRY.exists():
        raise SystemExit(f"{ENTRY} is missing: run bench/peers/setup.sh")
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not on PATH")
    env = {"MEMORY_FILE_PATH": str(memory_file)}  # merged over the SDK's default environment
    params = StdioServerParameters(command=node, args=[str(ENTRY)], env=env)
    before = set(children(os.getpid()))
    start = time.perf_counter()
    async with Client(params) as client:
        tools = await client.list_tools()
        first_answer = time.perf_counter() - start
        tools_bytes = len(tools.model_dump_json(by_alias=True, exclude_none=True).encode())
        names = {t.name for t in tools.tools}
        if not {"create_entities", "search_nodes"} <= names:
            raise RuntimeError(f"unexpected tools: {sorted(names)}")
        spawned = [p for p in children(os.getpid()) if p not in before]
        pid = next((p for p in spawned if str(ENTRY).encode() in Path(f"/proc/{p}/cmdline").read_bytes()),
                   None)
        yield client, first_answer, tools_bytes, pid


async def call(client: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    out = await client.call_tool(tool, arguments)
    if out.is_error:
        raise RuntimeError(f"{tool} failed: {out.content}")
    return out.structured_content or {}


def entity(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "entityType": "memory", "observations": [text]}


async def create(client: Any, entities: list[dict[str, Any]]) -> None:
    created = (await call(client, "create_entities", {"entities": entities}))["entities"]
    if len(created) != len(entities):
        raise RuntimeError(f"create_entities created {len(created)} of {len(entities)}")


# -- speed --------------------------------------------------------------------------------------------


async def speed(n: int, users: int, samples: int, batch: int, tmp: Path) -> dict[str, Any]:
    data = SpeedData(n, users)  # the suite's texts, in the suite's order (its floor queries go unused)
    memory_file = tmp / "memory.jsonl"
    async with server(memory_file) as (client, first_answer, tools_bytes, pid):
        log(f"first answer {first_answer:.3f} s after spawn; server pid {pid}")
        entities = [entity(f"{user}-m{i}", text) for i, (text, user) in enumerate(data.items)]
        start = time.perf_counter()
        for at in range(0, n, batch):
            await create(client, entities[at : at + batch])
            if (at // batch) % 10 == 9:
                log(f"  imported {at + batch}/{n} ({(at + batch) / (time.perf_counter() - start):.0f}/s)")
        import_throughput = n / (time.perf_counter() - start)
        adds, recalls, matched = [], [], []
        for i in range(samples):
            user, _floor_query, text, recall_query = data.sample(i)
            t = time.perf_counter()
            await create(client, [entity(f"{user}-m{n + i}", text)])
            adds.append(time.perf_counter() - t)
            t = time.perf_counter()
            found = (await call(client, "search_nodes", {"query": recall_query}))["entities"]
            recalls.append(time.perf_counter() - t)
            matched.append(len(found))
        server_rss = rss_mb(pid) if pid else float("nan")
        file_mb = memory_file.stat().st_size / 1e6
    return {
        "system": "server-memory", "version": version(), "memories": n, "users": users, "samples": samples,
        "import_per_s": import_throughput, "add_ms": pcts(adds), "recall_ms": pcts(recalls),
        "rss_mb": server_rss, "server_rss_mb": server_rss, "client_rss_mb": rss_mb(),
        "first_answer_s": first_answer, "tools_list_bytes": tools_bytes,
        "recalls_with_any_result": sum(1 for m in matched if m), "recall_results_max": max(matched),
        "memory_file_mb": file_mb,
        "notes": NOTES + f" Bulk import: create_entities with {batch} entities per call; add: "
        "create_entities of one entity; recall: one search_nodes call (the query verbatim, over all "
        "users' entities, as the server cannot scope by user). first_answer_s: spawn of node to the "
        "first tools/list answer.",
    }


# -- LoCoMo -------------------------------------------------------------------------------------------


async def locomo(data_path: Path, limit: int | None, batch: int, tmp: Path) -> dict[str, Any]:
    conversations, skipped = load(data_path, limit)
    tally = RecallTally()
    store_s, turns, answered, returned = 0.0, 0, 0, []
    for number, conv in enumerate(conversations):
        # One graph file (one server) per conversation: the server has no users, a file is a user.
        async with server(tmp / f"conv{number}.jsonl") as (client, _first, _bytes, _pid):
            entities = [entity(turn.dia_id, turn.text) for turn in conv.turns]
            t = time.perf_counter()
            for at in range(0, len(entities), batch):
                await create(client, entities[at : at + batch])
            store_s += time.perf_counter() - t
            turns += len(entities)
            for qa in conv.questions:
                t = time.perf_counter()
                found = (await call(client, "search_nodes", {"query": qa["question"]}))["entities"]
                tally.latencies.append(time.perf_counter() - t)
                returned.append(len(found))
                answered += bool(found)
                ranked = [[e["name"]] for e in found[: max(KS)]]
                tally.add(qa["category"], ranked, qa["evidence"])
        log(f"  {conv.user_id}: {len(conv.turns)} turns, {len(conv.questions)} questions")
    result = summary(tally)
    return {
        "system": "server-memory", "version": version(), "data": data_path.name,
        "overall": result["overall"], "per_category": result["per_category"],
        "counts": {"conversations": len(conversations), "turns": turns, "questions": tally.counts["all"],
                   "skipped": skipped, "questions_with_any_result": answered,
                   "results_per_question_max": max(returned) if returned else 0},
        "latency_ms": result["latency_ms"], "store_s": store_s, "store_per_s": turns / store_s,
        "notes": NOTES + " Each turn is one entity (name = its dia_id, entityType \"memory\", "
        f"observations = [\"Speaker: text\"]), stored with create_entities, {batch} per call, one graph "
        "file and server per conversation; the session time has no place in the graph and is not stored. "
        "Each question is one search_nodes call with the question verbatim; the first 10 entities returned "
        "are the ranking.",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("speed", help="add/recall latency, bulk import, server RSS, first answer")
    sp.add_argument("--memories", type=int, default=1000)
    sp.add_argument("--users", type=int, default=1)
    sp.add_argument("--samples", type=int, default=200)
    sp.add_argument("--batch", type=int, default=256, help="entities per create_entities call in the import")
    lp = sub.add_parser("locomo", help="recall@1/5/10 on LoCoMo-format conversations")
    lp.add_argument("--data", type=Path, required=True,
                    help="LoCoMo-format JSON (read in place, never copied)")
    lp.add_argument("--conversations", type=int, help="only the first N conversations")
    lp.add_argument("--batch", type=int, default=256, help="entities per create_entities call")
    args = parser.parse_args()
    at_start, t0 = machine(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="server_memory_peer_") as tmp:
        if args.command == "speed":
            result = asyncio.run(speed(args.memories, args.users, args.samples, args.batch, Path(tmp)))
        else:
            result = asyncio.run(locomo(args.data, args.conversations, args.batch, Path(tmp)))
    result["wall_s"] = time.perf_counter() - t0
    result["machine"] = {**at_start, "loadavg_end": machine()["loadavg"]}
    emit(result)


if __name__ == "__main__":
    main()
