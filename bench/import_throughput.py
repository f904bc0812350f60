"""Throughput and peak memory of ``memory-mcp import`` on a generated ChatGPT export.

    .venv/bin/python bench/import_throughput.py --messages 100000
    .venv/bin/python bench/import_throughput.py --messages 800000 --read-only   # a ~1 GB file, read only

Writes a ``conversations.json`` of about N messages (conversations of 2 to 30 messages, some with an
edited message whose old branch is left behind), as it generates it. Then runs the real command in a
subprocess, piped as a script runs it, on a new SQLite database, twice: the first import (messages/s
and its peak RSS, from wait4) and a re-run, which stores nothing. ``--read-only`` instead measures
reading the file alone: the importer's streaming reader (every conversation parsed, nothing stored)
beside the standard library's ``json.load`` of the whole file, each in a process of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, Any

from workload import DETAILS, SUBJECTS, THINGS, VERBS

OPENERS = ["Good question.", "Here is how I would approach it.", "That depends on a few things.",
           "Sure, let's break it down.", "A few options come to mind."]
ADVICE = ["Start with a small prototype", "Measure before you change anything", "Write the plan down first",
          "Ask the team for a second opinion", "Keep the old setup running until the new one is proven",
          "Automate the boring parts", "Check the documentation for the version you use"]


def user_text(rng: random.Random, i: int) -> str:
    said = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(THINGS)} {rng.choice(DETAILS)}"
            for _ in range(rng.randint(1, 3))]
    return ". ".join(said) + f". What should I do about item {i}?"


def assistant_text(rng: random.Random, i: int) -> str:
    said = [rng.choice(OPENERS)]
    for _ in range(rng.randint(3, 7)):
        said.append(f"{rng.choice(ADVICE)} when it comes to {rng.choice(THINGS)} {rng.choice(DETAILS)}.")
    said.append(f"That should settle point {i}.")
    return " ".join(said)


def node(node_id: str, parent: str | None, role: str | None, text: str | None, when: float) -> dict[str, Any]:
    message = None if role is None else {
        "id": node_id, "author": {"role": role, "name": None, "metadata": {}}, "create_time": when,
        "update_time": None, "content": {"content_type": "text", "parts": [text]},
        "status": "finished_successfully", "end_turn": role == "assistant", "weight": 1.0, "metadata": {},
        "recipient": "all",
    }
    return {"id": node_id, "message": message, "parent": parent, "children": []}


def conversation(rng: random.Random, first: int, size: int, start: float) -> tuple[dict[str, Any], int]:
    """A conversation of ``size`` messages on its current branch (numbered from ``first``), and how
    many it holds off that branch."""
    mapping = {"root": node("root", None, None, None, start)}
    parent, when, off = "root", start, 0
    for n in range(size):
        role = "user" if n % 2 == 0 else "assistant"
        text = user_text(rng, first + n) if role == "user" else assistant_text(rng, first + n)
        if role == "user" and n and rng.random() < 0.05:  # edited: the first wording stays, off the branch
            old = str(uuid.UUID(int=rng.getrandbits(128)))
            mapping[old] = node(old, parent, "user", user_text(rng, -first - n), when)
            mapping[parent]["children"].append(old)
            off += 1
        when += rng.uniform(5, 120)
        node_id = str(uuid.UUID(int=rng.getrandbits(128)))
        mapping[node_id] = node(node_id, parent, role, text, when)
        mapping[parent]["children"].append(node_id)
        parent = node_id
    cid = str(uuid.UUID(int=rng.getrandbits(128)))
    return {"title": f"Conversation {first}", "create_time": start, "update_time": when, "mapping": mapping,
            "current_node": parent, "conversation_id": cid, "id": cid}, off


def generate(path: Path, messages: int, seed: int = 11) -> dict[str, int]:
    rng = random.Random(seed)
    written = conversations = off = 0
    # Conversations spread over the five years before today (a message dated in the future is
    # refused), about 16 messages each.
    span = 5 * 365 * 86400.0
    step = span / max(1.0, messages / 16)
    start = time.time() - span - 86400
    with open(path, "w", encoding="utf-8") as out:
        out.write("[")
        while written < messages:
            size = min(rng.randint(2, 30), messages - written)
            record, left = conversation(rng, written, size, start)
            out.write(("," if conversations else "") + json.dumps(record))
            written, conversations, off = written + size, conversations + 1, off + left
            start = min(start + rng.uniform(0.1, 1.9) * step, time.time() - 86400)
        out.write("]")
    return {"messages": written, "conversations": conversations, "off_branch": off, "bytes": path.stat().st_size}


def run(args: list[str], stdout: IO[bytes] | int = subprocess.DEVNULL) -> tuple[float, float, str]:
    """Seconds, peak RSS (MB) and stderr of one process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        err.seek(0)
        said = err.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{said}")
    return elapsed, usage.ru_maxrss / 1024, said


READ_ONLY = """
import sys
from memory_mcp.importers import chatgpt, open_export
source, _ = open_export(sys.argv[1])
n = sum(len(chatgpt.conversation(r).messages) for _, r in source.array_items("item"))
print(n)
"""
JSON_LOAD = "import json, sys; print(sum(len(c['mapping']) for c in json.load(open(sys.argv[1]))))"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--read-only", action="store_true", help="measure reading the file only")
    parser.add_argument("--keep", help="directory to keep the export and database in (default: a temporary one)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(options.keep or tmp)
        where.mkdir(parents=True, exist_ok=True)
        export = where / "conversations.json"
        made = generate(export, options.messages)
        print(f"generated {made['messages']} messages in {made['conversations']} conversations "
              f"({made['off_branch']} off the current branch), {made['bytes'] / 1e6:.0f} MB", flush=True)
        if options.read_only:
            for name, code in (("streaming reader", READ_ONLY), ("json.load", JSON_LOAD)):
                seconds, peak, _ = run([sys.executable, "-c", code, str(export)])
                print(f"{name}: {seconds:.1f} s, peak RSS {peak:.0f} MB", flush=True)
            return
        command = [sys.executable, "-m", "memory_mcp", "import", str(export), "--db-path", str(where / "bench.db"),
                   "--user-id", "bench", "--log-level", "WARNING"]
        for name in ("first import", "re-run"):
            seconds, peak, said = run(command)
            print(f"{name}: {seconds:.1f} s, {made['messages'] / seconds:.0f} messages/s, peak RSS {peak:.0f} MB "
                  f"| {said.strip().splitlines()[-1]}", flush=True)


if __name__ == "__main__":
    main()
