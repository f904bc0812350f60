"""Retrieval quality of ``recall`` on LoCoMo-format conversations: recall@1/5/10 per search mode.

    .venv/bin/python bench/locomo_eval.py --data ../shared/data/locomo/locomo-dev.json \\
        [--modes hybrid,semantic,text] [--out docs/benchmarks/locomo.md]

The data is read from the given path only (LoCoMo is CC BY-NC: never copy it into the project).
Each conversation becomes one user; every dialog turn is stored, session by session with
``add_conversation`` (or, ``--store mcp``, the MCP tool ``remember_conversation``) into a fresh
temporary database, as one memory of that user: the text exactly
as said, prefixed by its speaker ("Caroline: ..."), with the session's date and time as
``valid_from``, the turn's ``dia_id`` in its metadata, and (``--context neighbours:2``, the
default) the two turns before and after it as its context, searched but not part of it. Each
turn is meant to stay its own memory, so the engine's duplicate merging is turned off
(``duplicate_similarity=1.0``; identical text would still merge, and the report says how many
memories the turns became; a memory several turns merged into counts as each of them). Every
question of categories 1-4 (5 is adversarial: no answer in the conversation) is then asked
through the MCP server's real ``recall`` tool, in-process over the SDK's client, once per mode.
A question is a hit at k when any of its evidence turns is among the first k memories returned.
Latency is the client-side time of one ``recall`` tool call (top_k=10).

Options: ``--context none`` stores each turn alone; ``--captions`` appends a shared
image's caption to its turn; ``--conversations N`` keeps a run short; ``--misses FILE`` writes the
questions not answered at rank 1, with what came first, for analysis (it holds data set text:
keep it out of the repository).

Nothing here knows the data set beyond its file format.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import memory_mcp
from memory_mcp import HierarchicalMemory, MemoryConfig
from memory_mcp.server import ServerSettings, build_server

sys.path.insert(0, str(Path(__file__).resolve().parent))
from locomo_data import CATEGORIES, CATEGORY_NAMES, KS, METRICS, Conversation, RecallTally, load  # noqa: E402
from suite import run_peer  # noqa: E402


def sessions_of(conv: Conversation) -> list[list[dict[str, Any]]]:
    """Each session's turns as ``add`` arguments, in order."""
    sessions: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for turn in conv.turns:
        sessions[turn.session].append({
            "content": turn.text, "valid_from": turn.when,
            "metadata": {"dia_id": turn.dia_id, "session": turn.session},
        })
    return list(sessions.values())


async def store(
    conversations: list[Conversation], where: dict[str, Any], duplicate_similarity: float, context: str
) -> dict[str, Any]:
    """Store every turn, session by session, with ``add_conversation``; returns timings, counts and
    memory id -> dia_ids (several if merged)."""
    window = int(context.partition(":")[2]) if context != "none" else 0
    t0 = time.perf_counter()
    config = MemoryConfig(**where, duplicate_similarity=duplicate_similarity)
    engine = await HierarchicalMemory.create(config)
    await engine.wait_until_ready()
    await engine.embedder.warm_up()
    opened = time.perf_counter() - t0
    floor = []
    for i in range(30):
        t = time.perf_counter()
        await engine.embedder.embed([f"what did they say about the trip number {i}?"])
        floor.append(time.perf_counter() - t)
    dia_of: dict[str, list[str]] = defaultdict(list)
    turns = 0
    t0 = time.perf_counter()
    for conv in conversations:
        for session in sessions_of(conv):
            stored = await engine.add_conversation(session, window=window, user_id=conv.user_id)
            turns += len(session)
            for item, memory in zip(session, stored, strict=True):
                dia_of[memory.id].append(item["metadata"]["dia_id"])
    stored_s = time.perf_counter() - t0
    current = 0
    for conv in conversations:
        current += (await engine.stats(conv.user_id)).current
    await engine.close()
    return {
        "open_s": opened, "store_s": stored_s, "turns": turns, "memories": len(dia_of), "current": current,
        "embed_floor_s": statistics.median(floor), "dia_of": dict(dia_of),
    }


async def store_over_mcp(
    conversations: list[Conversation], where: dict[str, Any], duplicate_similarity: float
) -> dict[str, Any]:
    """Store every session's turns through the MCP server's ``remember_conversation`` tool (what a
    client without the library does), in-process over the SDK's client; the same result as
    ``store``. The tool gives each turn the two before and after it as context."""
    from mcp import Client

    t0 = time.perf_counter()
    server = build_server(ServerSettings(**where, duplicate_similarity=duplicate_similarity, user_id="locomo-eval"))
    dia_of: dict[str, list[str]] = defaultdict(list)
    turns = 0
    async with Client(server) as client:
        opened = time.perf_counter() - t0
        t0 = time.perf_counter()
        for conv in conversations:
            for session in sessions_of(conv):
                sent = []
                for item in session:
                    speaker, _, text = item["content"].partition(": ")
                    sent.append({"text": text, "speaker": speaker, "at": item["valid_from"].isoformat()})
                out = await client.call_tool("remember_conversation", {"turns": sent, "user_id": conv.user_id})
                if out.is_error:
                    raise RuntimeError(f"remember_conversation failed: {out.content}")
                memories = out.structured_content["memories"]
                turns += len(session)
                for item, memory in zip(session, memories, strict=True):
                    dia_of[memory["id"]].append(item["metadata"]["dia_id"])
        stored_s = time.perf_counter() - t0
        current = 0
        for conv in conversations:
            stats = await client.read_resource(f"memory://users/{conv.user_id}/stats")
            current += json.loads(stats.contents[0].text)["current"]
    return {
        "open_s": opened, "store_s": stored_s, "turns": turns, "memories": len(dia_of), "current": current,
        "embed_floor_s": float("nan"), "dia_of": dict(dia_of),
        "via": "the MCP tool remember_conversation (the server embeds in the background, outside this time)",
    }


async def ask(
    where: dict[str, Any], conversations: list[Conversation], modes: list[str], dia_of: dict[str, list[str]],
    misses: list[dict[str, Any]] | None,
) -> dict[str, RecallTally]:
    """Every question through the MCP server's recall tool, once per mode."""
    from mcp import Client

    server = build_server(ServerSettings(**where, user_id="locomo-eval"))
    results = {mode: RecallTally() for mode in modes}
    async with Client(server) as client:
        deadline = time.monotonic() + 300
        while True:  # the server loads the embedding model in the background
            out = await client.call_tool("recall", {"query": "warm up", "user_id": conversations[0].user_id})
            if out.structured_content and out.structured_content["semantic_ready"]:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the server's embedding model did not load within 300 s")
            await asyncio.sleep(0.2)
        for mode in modes:
            for conv in conversations:
                for qa in conv.questions:
                    t = time.perf_counter()
                    out = await client.call_tool("recall", {
                        "query": qa["question"], "user_id": conv.user_id, "top_k": max(KS), "mode": mode,
                    })
                    results[mode].latencies.append(time.perf_counter() - t)
                    if out.is_error:
                        raise RuntimeError(f"recall failed: {out.content}")
                    hits = out.structured_content["results"]
                    rank = results[mode].add(qa["category"], [dia_of.get(h["id"], []) for h in hits], qa["evidence"])
                    if misses is not None and (rank is None or rank > 1):
                        misses.append({
                            "mode": mode, "user": conv.user_id, "category": qa["category"],
                            "question": qa["question"], "evidence": sorted(qa["evidence"]), "rank": rank,
                            "top": [
                                [",".join(dia_of.get(h["id"], ["?"])), h["content"][:160]] for h in hits[:5]
                            ],
                        })
    return results


def plot(path: Path, modes: list[str], results: dict[str, RecallTally], peers: dict[str, dict[str, Any]]) -> None:
    """Recall@1/5/10 of each mode and each peer, as grouped bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [(f"memory_mcp {m}", [results[m].recall_at("all", k) for k in KS]) for m in modes]
    systems += [(name, [peer["overall"][str(k)] for k in KS]) for name, peer in peers.items() if "skipped" not in peer]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    width = 0.8 / len(systems)
    for i, (label, values) in enumerate(systems):
        xs = [j + i * width for j in range(len(KS))]
        ax.bar(xs, values, width, label=label)
    ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(KS))], [f"R@{k}" for k in KS])
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of questions with an evidence turn in the top k")
    ax.set_title("LoCoMo (dev split) recall@k per system")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def _code_version() -> str:
    root = Path(memory_mcp.__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%h %s"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "memory_mcp"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head, dirty = "", ""
    return f"{head or 'unknown'}{' (modified)' if dirty else ''}"


def report(
    data: Path, modes: list[str], stored: dict[str, Any], results: dict[str, RecallTally],
    skipped: dict[str, int], n_conversations: int, captions: bool, duplicate_similarity: float, context: str,
    peers: dict[str, dict[str, Any]],
) -> str:
    first = results[modes[0]]
    lines = [
        "# LoCoMo retrieval: recall@k of the `recall` tool",
        "",
        f"Data: `{data.name}`, {n_conversations} conversations, {stored['turns']} turns stored as "
        f"{stored['memories']} memories ({stored['current']} current"
        f"{'; image captions appended' if captions else ''}"
        + (f"; each turn with the {context.partition(':')[2]} turns before and after it in its session "
           "as context" if context != "none" else "; no context") +
        f"; duplicate_similarity={duplicate_similarity}). "
        f"Questions of categories 1-4 with evidence: {first.counts['all']} "
        f"(skipped: {skipped['adversarial_or_other']} of category 5, "
        f"{skipped['no_evidence']} without usable evidence).",
        "A question is a hit at k when any of its evidence turns is among the first k memories recalled.",
        "",
        "| mode | R@1 | R@5 | R@10 | recall p50 ms | p95 ms |",
        "|---|---|---|---|---|---|",
    ]
    for mode in modes:
        r = results[mode]
        lines.append(
            f"| {mode} | " + " | ".join(f"{r.recall_at('all', k):.3f}" for k in KS)
            + f" | {statistics.median(r.latencies) * 1000:.1f} | {_pct(r.latencies, 95) * 1000:.1f} |"
        )
    for name, peer in peers.items():
        if "skipped" in peer:
            lines.append(f"| {name} | {peer['skipped']} | | | | |")
            continue
        lat = peer["latency_ms"]
        lines.append(
            f"| {name} {peer.get('version', '')} | " + " | ".join(f"{peer['overall'][str(k)]:.3f}" for k in KS)
            + f" | {lat['p50']:.1f} | {lat['p95']:.1f} |"
        )
    measured = {name: peer for name, peer in peers.items() if "skipped" not in peer}
    lines += [
        "",
        "The metrics the LongMemEval authors report, at turn and at session level: all@k is the share of "
        "questions with every evidence turn (session) among the first k results (sessions, in order of "
        "first appearance), NDCG@10 the normalised discounted gain of the ranking (binary gains):",
        "",
        "| system | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for mode in modes:
        lines.append(f"| {mode} | " + " | ".join(f"{results[mode].mean('all', m):.3f}" for m in METRICS) + " |")
    for name, peer in measured.items():
        got = peer["overall"]
        lines.append(f"| {name} | " + " | ".join(f"{got[m]:.3f}" if m in got else "-" for m in METRICS) + " |")
    lines += [
        "",
        "Per category (R@1 / R@5 / R@10):",
        "",
        "| category | n | " + " | ".join([*modes, *measured]) + " |",
        "|---|---|" + "---|" * (len(modes) + len(measured)),
    ]
    for category in (*CATEGORIES, "all"):
        if not first.counts[category]:
            continue
        name = f"{category} ({CATEGORY_NAMES[category]})" if category in CATEGORY_NAMES else str(category)
        cells = [" / ".join(f"{results[m].recall_at(category, k):.3f}" for k in KS) for m in modes]
        for peer in measured.values():
            got = peer["overall"] if category == "all" else peer["per_category"].get(str(category), {})
            cells.append(" / ".join(f"{got[str(k)]:.3f}" if str(k) in got else "-" for k in KS))
        lines.append(f"| {name} | {first.counts[category]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Timing: engine open + model load {stored['open_s']:.1f} s; storing {stored['turns']} turns with "
        f"{stored.get('via', 'add_conversation')} {stored['store_s']:.1f} s "
        f"({stored['turns'] / stored['store_s']:.0f} turns/s); "
        + (f"embedding one query (the floor) p50 {stored['embed_floor_s'] * 1000:.1f} ms; "
           if stored["embed_floor_s"] == stored["embed_floor_s"] else "")
        + f"recall latency is one MCP tool call (top_k={max(KS)}) in-process, client side.",
        "",
        f"Code: `{_code_version()}`; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs.",
    ]
    if measured:
        lines += ["", "Peers (their runners under `bench/peers/`, same data, same questions, top 10):", ""]
        lines += [f"- **{name}**: stored {peer['counts']['turns']} turns in {peer['store_s']:.0f} s. {peer['notes']}"
                  for name, peer in measured.items()]
    return "\n".join(lines) + "\n"


def _context(value: str) -> str:
    name, _, window = value.partition(":")
    if value == "none" or (name == "neighbours" and window.isdigit()):
        return value
    raise argparse.ArgumentTypeError(f"{value!r}: use neighbours:N or none")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="LoCoMo-format JSON (read in place, never copied)")
    parser.add_argument("--modes", default="hybrid,semantic,text",
                        help="comma-separated: hybrid, semantic, text")
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    parser.add_argument("--conversations", type=int, help="only the first N conversations (quick runs)")
    parser.add_argument("--captions", action="store_true",
                        help="append a shared image's caption to its turn (off: the text exactly as said)")
    parser.add_argument("--context", default="neighbours:2", type=_context,
                        help="neighbours:N stores each turn with the N turns before and after it in its "
                        "session as context (add_conversation's window); none stores turns alone "
                        "(default: %(default)s)")
    parser.add_argument("--duplicate-similarity", type=float, default=1.0,
                        help="the engine's duplicate threshold (1.0, the default here, keeps turns apart)")
    parser.add_argument("--peers", default="",
                        help="also run these peers on the same data (comma-separated: mem0, server-memory)")
    parser.add_argument("--misses", type=Path,
                        help="write the questions not answered at rank 1 as JSON lines")
    parser.add_argument("--store", choices=["library", "mcp"], default="library",
                        help="store with the library's add_conversation (default) or the MCP tool "
                        "remember_conversation")
    parser.add_argument("--database-url",
                        help="an empty PostgreSQL database (postgresql://...) instead of a temporary SQLite file")
    parser.add_argument("--db-dir", type=Path,
                        help="where the temporary database goes (default: system temp)")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in ("hybrid", "semantic", "text") for m in modes):
        parser.error("--modes takes hybrid, semantic and/or text")

    conversations, skipped = load(args.data, args.conversations, args.captions)
    logging.basicConfig(level=logging.WARNING, force=True)
    print(f"memory_mcp from {Path(memory_mcp.__file__).resolve().parent}", file=sys.stderr)
    misses: list[dict[str, Any]] | None = [] if args.misses else None
    with tempfile.TemporaryDirectory(dir=args.db_dir) as tmp:
        where = {"database_url": args.database_url} if args.database_url else {"db_path": Path(tmp) / "locomo.db"}
        if args.store == "mcp":
            if args.context != "neighbours:2":
                parser.error("--store mcp stores with the tool's context, two turns either side (neighbours:2)")
            stored = await store_over_mcp(conversations, where, args.duplicate_similarity)
        else:
            stored = await store(conversations, where, args.duplicate_similarity, args.context)
        print(f"stored {stored['turns']} turns as {stored['memories']} memories in {stored['store_s']:.1f} s",
              file=sys.stderr)
        results = await ask(where, conversations, modes, stored["dia_of"], misses)
    peers = {}
    for name in [p.strip() for p in args.peers.split(",") if p.strip()]:
        print(f"running peer {name} (may take minutes)", file=sys.stderr)
        extra = ["--conversations", str(args.conversations)] if args.conversations else []
        peers[name] = run_peer(name, "locomo", "--data", str(args.data.resolve()), *extra)
    text = report(args.data, modes, stored, results, skipped, len(conversations), args.captions,
                  args.duplicate_similarity, args.context, peers)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        plot(args.out.with_suffix(".png"), modes, results, peers)
    if args.misses and misses is not None:
        lines = "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in misses)
        args.misses.write_text(lines, encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
