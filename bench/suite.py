"""The benchmark suite: speed and scale of memory_mcp, each figure beside the physical floor.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/suite.py            # 1k, 10k, 100k, 100k/1000 users
    .venv/bin/python bench/suite.py --configs 1000,10000 --samples 100                 # a quicker run
    .venv/bin/python bench/suite.py --engines sqlite,postgres --configs 10000,100000   # both engines, one run

For every configuration (N memories of one user, or N spread over U users) a fresh process fills a
database by bulk import and measures, through the library: add and recall latency, bulk import
throughput and its RSS; then the MCP server is started on that database as a subprocess and spoken
to over stdio by the SDK's client: time from process start to the first answer, tools/list size,
remember and recall latency and the server's RSS. The floor is measured in the same process as
each figure: one query embedding (latency) and batch embedding (throughput), same model, same cores.
With ``--engines sqlite,postgres`` every configuration runs on both storage engines, one after the
other in the same run; PostgreSQL is a private server (PyPI's ``pgserver``, PostgreSQL 16 with
pgvector) started for the run, or the server of ``--postgres-url`` (a URL whose user may create
databases). Results go to docs/benchmarks/ (results.json, speed.md, speed.png).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import pcts, query, rss_mb, sentence  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks"


# -- one configuration, in its own process ------------------------------------------------------------


def _is_url(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


async def measure_library(db: str, n: int, users: int, samples: int) -> dict[str, Any]:
    from memory_mcp import HierarchicalMemory, MemoryConfig

    rng = random.Random(7)
    config = MemoryConfig(database_url=db) if _is_url(db) else MemoryConfig(db_path=Path(db))
    memory = await HierarchicalMemory.create(config)
    await memory.wait_until_ready()
    embed = memory.embedder.embed
    for _ in range(20):  # warm the model's threads
        await embed([query(rng)])
    texts = [sentence(rng, 10_000_000 + i) for i in range(2048)]
    start = time.perf_counter()
    for at in range(0, len(texts), 256):
        await embed(texts[at : at + 256])
    batch_throughput = len(texts) / (time.perf_counter() - start)

    items = [{"content": sentence(rng, i), "user_id": f"user{i % users}"} for i in range(n)]
    start = time.perf_counter()
    await memory.add_many(items)
    import_throughput = n / (time.perf_counter() - start)

    floor, adds, recalls = [], [], []
    for i in range(samples):
        user = f"user{rng.randrange(users)}"
        start = time.perf_counter()
        await embed([query(rng)])
        floor.append(time.perf_counter() - start)
        start = time.perf_counter()
        await memory.add(sentence(rng, n + i), user_id=user)
        adds.append(time.perf_counter() - start)
        start = time.perf_counter()
        await memory.recall(query(rng), user_id=user, top_k=5)
        recalls.append(time.perf_counter() - start)
    result = {
        "embed_query_ms": pcts(floor), "embed_batch_per_s": batch_throughput, "import_per_s": import_throughput,
        "add_ms": pcts(adds), "recall_ms": pcts(recalls), "rss_mb": rss_mb(),
    }
    await memory.close()
    return result


async def measure_stdio(db: str, n: int, users: int, samples: int) -> dict[str, Any]:
    from mcp import Client, StdioServerParameters

    rng = random.Random(11)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memory_mcp", "serve", "--database-url" if _is_url(db) else "--db-path", db,
              "--user-id", "user0", "--log-level", "WARNING"],
        # PYTHONPATH passes through: a run of another checkout (a worktree) serves that checkout
        env={k: os.environ[k] for k in ("PATH", "HOME", "PYTHONPATH") if k in os.environ},
    )
    start = time.perf_counter()
    async with Client(params) as client:
        tools = await client.list_tools()
        first_answer = time.perf_counter() - start
        tools_bytes = len(tools.model_dump_json(by_alias=True, exclude_none=True).encode())
        # A recall that comes before the model is loaded waits for it (semantic_wait_s), so the
        # first semantic answer is the first recall that says semantic_ready.
        while not (await client.call_tool("recall", {"query": "warm up"})).structured_content["semantic_ready"]:
            await asyncio.sleep(0.02)
        first_semantic = time.perf_counter() - start
        remembers, recalls = [], []
        for i in range(samples):
            user = f"user{rng.randrange(users)}"
            start = time.perf_counter()
            await client.call_tool("remember", {"content": sentence(rng, n + 50_000 + i), "user_id": user})
            remembers.append(time.perf_counter() - start)
            start = time.perf_counter()
            await client.call_tool("recall", {"query": query(rng), "user_id": user})
            recalls.append(time.perf_counter() - start)
        server = _server_pid(str(db))
        server_rss = rss_mb(server) if server else float("nan")
    return {"first_answer_s": first_answer, "first_semantic_s": first_semantic, "tools_list_bytes": tools_bytes,
            "remember_ms": pcts(remembers),
            "recall_ms": pcts(recalls), "server_rss_mb": server_rss}


async def measure_torch(samples: int) -> dict[str, Any]:
    """One query embedding by the torch runtime of the same model (the sentence-transformers
    extra), beside the default ONNX runtime in the same process, query by query: the floor the
    issue's recall target is set against. Empty when the extra is not installed."""
    try:
        from memory_mcp.adapters.sentence_transformers_embedder import SentenceTransformersEmbedder
        torch = SentenceTransformersEmbedder()
        await torch.warm_up()
    except Exception as exc:  # the optional extra is missing: say so in the report
        return {"skipped": f"sentence-transformers runtime unavailable: {exc}".splitlines()[0]}
    from memory_mcp.adapters.onnx_embedder import OnnxEmbedder

    onnx = OnnxEmbedder()
    rng = random.Random(5)
    for _ in range(20):
        await torch.embed([query(rng)])
        await onnx.embed([query(rng)])
    timings: dict[str, list[float]] = {"torch": [], "onnx": []}
    for _ in range(samples):
        text = query(rng)
        for name, embedder in (("torch", torch), ("onnx", onnx)):
            start = time.perf_counter()
            await embedder.embed([text])
            timings[name].append(time.perf_counter() - start)
    return {"torch_query_ms": pcts(timings["torch"]), "onnx_query_ms": pcts(timings["onnx"])}


def measure_install() -> dict[str, Any]:
    """A fresh venv with ``pip install .`` of this checkout, the README's way: its size on disk,
    the time pip took (with pip's cache as this machine has it) and whether torch came with it."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        start = time.perf_counter()
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
                       check=True)
        seconds = time.perf_counter() - start
        size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
        has_torch = any(venv.glob("lib/python*/site-packages/torch"))
    return {"install_s": seconds, "venv_mb": size / 2**20, "torch_installed": has_torch}


def _server_pid(text: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    return None


def run_config(
    n: int, users: int, samples: int, peers: list[str], peer_max: int, engine: str = "sqlite",
    postgres: Postgres | None = None,
) -> dict[str, Any]:
    """Both measurements of one configuration on one engine, each in a fresh process, and the
    peers' (up to ``peer_max`` memories) on the same texts; returns their results."""
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db") if engine == "sqlite" else postgres.new_database()  # type: ignore[union-attr]
        results: dict[str, Any] = {"memories": n, "users": users, "engine": engine}
        for part in ("library", "stdio") + (("torch",) if engine == "sqlite" else ()):
            out = subprocess.run(
                [sys.executable, __file__, "--worker", part, "--db", db, "--memories", str(n),
                 "--users", str(users), "--samples", str(samples)],
                capture_output=True, text=True, check=True,
            )
            results[part] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  {engine} {part}: {json.dumps(results[part])}", file=sys.stderr)
        if postgres is not None and engine == "postgres":
            postgres.drop(db)
    results["peers"] = {}
    for name in peers:
        if n > peer_max:
            results["peers"][name] = {"skipped": f"above --peer-max {peer_max:,}"}
            continue
        results["peers"][name] = run_peer(
            name, "speed", "--memories", str(n), "--users", str(users), "--samples", str(samples)
        )
        print(f"  {name}: {json.dumps(results['peers'][name])[:400]}", file=sys.stderr)
    return results


class Postgres:
    """Where the PostgreSQL runs get their databases: a private pgserver, or an existing server."""

    def __init__(self, admin_url: str | None, directory: Path):
        self._server = None
        if admin_url is None:
            import pgserver

            self._server = pgserver.get_server(directory, cleanup_mode="stop")
            admin_url = self._server.get_uri()
        self.admin_url = admin_url
        self._count = 0

    def _admin(self, sql: str) -> None:
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.admin_url)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())

    def new_database(self) -> str:
        from urllib.parse import urlsplit, urlunsplit

        self._count += 1
        name = f"memory_mcp_bench_{os.getpid()}_{self._count}"
        self._admin(f"CREATE DATABASE {name}")
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{name}"))

    def drop(self, url: str) -> None:
        from urllib.parse import urlsplit

        self._admin(f"DROP DATABASE IF EXISTS {urlsplit(url).path.lstrip('/')} WITH (FORCE)")

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()


# -- peers ----------------------------------------------------------------------------------------------

PEERS = ROOT / "bench" / "peers"
PEER_RUNNERS = {  # name -> (interpreter, runner): Mem0 lives in its own venv (bench/peers/setup.sh)
    "mem0": (PEERS / ".venv" / "bin" / "python", PEERS / "mem0_peer.py"),
    "server-memory": (Path(sys.executable), PEERS / "server_memory_peer.py"),
}


def run_peer(name: str, *args: str) -> dict[str, Any]:
    """One peer runner's JSON result, or why it could not run."""
    python, runner = PEER_RUNNERS[name]
    if not python.exists() or (name == "server-memory" and not (PEERS / "node" / "node_modules").exists()):
        return {"skipped": "not set up: run bench/peers/setup.sh"}
    out = subprocess.run([str(python), str(runner), *args], capture_output=True, text=True)
    if out.returncode != 0:
        return {"skipped": f"failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1:]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- reporting ------------------------------------------------------------------------------------------


def write_report(runs: list[dict[str, Any]], samples: int, command: str, out: Path = OUT,
                 install: dict[str, Any] | None = None, before: list[dict[str, Any]] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
               "processor": _cpu_model()}
    (out / "results.json").write_text(json.dumps(
        {"machine": machine, "command": command, "install": install, "runs": runs}, indent=1))
    rows = ["| engine | memories (users) | embed 1 query p50 (torch) | library add p50 | library recall p50 / p99 | "
            "recall p50 ÷ embed | bulk import | ÷ batch embedding | stdio remember p50 | stdio recall p50 / p99 | "
            "first answer / semantic | tools/list | RSS library / server |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        lib, std = run["library"], run["stdio"]
        torch = run.get("torch", {}).get("torch_query_ms")
        rows.append(
            f"| {run.get('engine', 'sqlite')} | {run['memories']:,} ({run['users']:,}) "
            f"| {lib['embed_query_ms']['p50']:.1f} ms" + (f" ({torch['p50']:.1f} ms)" if torch else "")
            + f" | {lib['add_ms']['p50']:.1f} ms "
            f"| {lib['recall_ms']['p50']:.1f} / {lib['recall_ms']['p99']:.1f} ms "
            f"| {lib['recall_ms']['p50'] / lib['embed_query_ms']['p50']:.2f}× "
            f"| {lib['import_per_s']:.0f}/s | {lib['import_per_s'] / lib['embed_batch_per_s']:.2f}× "
            f"| {std['remember_ms']['p50']:.1f} ms | {std['recall_ms']['p50']:.1f} / {std['recall_ms']['p99']:.1f} ms "
            f"| {std['first_answer_s']:.2f} / {std.get('first_semantic_s', float('nan')):.2f} s "
            f"| {std['tools_list_bytes']:,} B | {lib['rss_mb']:.0f} / {std['server_rss_mb']:.0f} MB |"
        )
    peer_rows = []
    for run in runs:
        lib, std = run["library"], run["stdio"]
        size = f"{run['memories']:,} ({run['users']:,})"
        peer_rows.append(
            f"| memory_mcp (library / stdio) | {size} | {lib['add_ms']['p50']:.1f} / {std['remember_ms']['p50']:.1f} ms "
            f"| {lib['recall_ms']['p50']:.1f} / {std['recall_ms']['p50']:.1f} ms "
            f"| {lib['recall_ms']['p99']:.1f} / {std['recall_ms']['p99']:.1f} ms | {lib['import_per_s']:.0f}/s "
            f"| {std['first_answer_s']:.2f} s | {lib['rss_mb']:.0f} / {std['server_rss_mb']:.0f} MB |"
        )
        for name, peer in run.get("peers", {}).items():
            if "skipped" in peer:
                peer_rows.append(f"| {name} | {size} | {peer['skipped']} | | | | | |")
                continue
            peer_rows.append(
                f"| {name} {peer.get('version', '')} | {size} | {peer['add_ms']['p50']:.1f} ms "
                f"| {peer['recall_ms']['p50']:.1f} ms | {peer['recall_ms']['p99']:.1f} ms "
                f"| {peer['import_per_s']:.0f}/s | {peer['first_answer_s']:.2f} s | {peer['rss_mb']:.0f} MB |"
            )
    peers_text = ""
    if any(run.get("peers") for run in runs):
        notes = {name: peer["notes"] for run in runs for name, peer in run.get("peers", {}).items()
                 if "notes" in peer}
        peers_text = (
            "\n## Beside the peers\n\nSame texts, same machine, same run; Mem0 with the same model "
            "(all-MiniLM-L6-v2, CPU). Each peer's figures are its own runner's (`bench/peers/`).\n\n"
            "| system | memories (users) | add p50 | recall p50 | recall p99 | bulk import | first answer | RSS |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(peer_rows) + "\n\n"
            + "".join(f"- **{name}**: {note}\n" for name, note in notes.items())
        )
    install_text = ""
    if install:
        install_text = (
            f"\nA fresh venv with `pip install .` of this checkout: {install['venv_mb']:.0f} MB on disk, "
            f"{install['install_s']:.0f} s with this machine's pip cache, torch "
            f"{'installed' if install['torch_installed'] else 'not installed'}.\n"
        )
    text = (
        "# Speed and scale\n\n"
        f"Made by `{command}` on {machine['cpus']} cores ({machine['processor']}), Python {machine['python']}, "
        f"{samples} samples per figure. Each row's floor (one query embedding, batch embedding throughput) is "
        "measured in the same process as the row's figures; the machine is shared, so compare within a row. "
        "In brackets, one query embedding by the torch runtime of the same model (the sentence-transformers "
        "extra), measured in a process of its own right after the row's.\n\n"
        + "\n".join(rows) + "\n" + install_text + targets_section(runs, install, before or []) + peers_text
    )
    (out / "speed.md").write_text(text)
    _plot(runs, out)
    print(text)


def _row(runs: list[dict[str, Any]], n: int, users: int = 1) -> dict[str, Any] | None:
    return next((r for r in runs if r["memories"] == n and r["users"] == users
                 and r.get("engine", "sqlite") == "sqlite"), None)


def targets_section(runs: list[dict[str, Any]], install: dict[str, Any] | None,
                    before: list[dict[str, Any]]) -> str:
    """The speed targets of a light, fast default (SQLite, one user's memories), each beside the
    figure of ``before`` (runs of an earlier report) where that report has it."""

    def get(rows: list[dict[str, Any]], n: int, *path: str) -> float | None:
        value: Any = _row(rows, n)
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def recall_vs_torch(rows: list[dict[str, Any]]) -> float | None:
        # before the ONNX default, the library's own query floor was the torch runtime
        torch = get(rows, 100_000, "torch", "torch_query_ms", "p50") or (
            get(rows, 100_000, "library", "embed_query_ms", "p50") if rows is before else None)
        return ratio(get(rows, 100_000, "stdio", "recall_ms", "p50"), torch)

    def import_ratio(rows: list[dict[str, Any]]) -> float | None:
        return ratio(get(rows, 100_000, "library", "import_per_s"), get(rows, 100_000, "library", "embed_batch_per_s"))

    def scale(rows: list[dict[str, Any]]) -> float | None:
        return ratio(get(rows, 100_000, "stdio", "recall_ms", "p50"), get(rows, 1_000, "stdio", "recall_ms", "p50"))

    targets = [  # (figure, target, unit, at most?, figure of a list of runs)
        ("process start → first answer (10k)", 0.5, "s", True, lambda r: get(r, 10_000, "stdio", "first_answer_s")),
        ("process start → semantic recall (10k)", 1.0, "s", True,
         lambda r: get(r, 10_000, "stdio", "first_semantic_s")),
        ("server RSS, 10k", 250, "MB", True, lambda r: get(r, 10_000, "stdio", "server_rss_mb")),
        ("server RSS, 100k", 350, "MB", True, lambda r: get(r, 100_000, "stdio", "server_rss_mb")),
        ("default install (fresh venv)", 400, "MB", True, lambda r: install["venv_mb"] if install and r is runs else None),
        ("stdio recall p50 ÷ one torch query embedding, 100k", 1.0, "×", True, recall_vs_torch),
        ("stdio recall p99, 100k", 25, "ms", True, lambda r: get(r, 100_000, "stdio", "recall_ms", "p99")),
        ("stdio remember p50, 100k", 8, "ms", True, lambda r: get(r, 100_000, "stdio", "remember_ms", "p50")),
        ("bulk import ÷ batch embedding, 100k", 0.8, "×", False, import_ratio),
        ("stdio recall p50 at 100k ÷ at 1k", 1.3, "×", True, scale),
    ]

    def show(value: float | None, unit: str) -> str:
        if value is None:
            return "—"
        return f"{value:.2f}{unit}" if unit in ("×", "s") else f"{value:.1f} {unit}" if unit == "ms" else f"{value:.0f} {unit}"

    lines = ["\n## Targets\n", "SQLite, memories of one user. *Before* is the report this run is compared "
             "with (`--before`); — where it has no such figure.\n",
             "| figure | target | before | now | holds |", "|---|---|---|---|---|"]
    for label, target, unit, at_most, figure in targets:
        now = figure(runs)
        holds = "—" if now is None else "yes" if (now <= target if at_most else now >= target) else "no"
        lines.append(f"| {label} | {'≤' if at_most else '≥'} {show(target, unit)} | {show(figure(before), unit)} "
                     f"| {show(now, unit)} | {holds} |")
    return "\n".join(lines) + "\n"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _plot(runs: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single = [r for r in runs if r["users"] == 1 and r.get("engine", "sqlite") == "sqlite"]
    if len(single) < 2:
        return
    sizes = [r["memories"] for r in single]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    series = [
        ("library recall p50", [r["library"]["recall_ms"]["p50"] for r in single]),
        ("library recall p99", [r["library"]["recall_ms"]["p99"] for r in single]),
        ("library add p50", [r["library"]["add_ms"]["p50"] for r in single]),
        ("stdio recall p50", [r["stdio"]["recall_ms"]["p50"] for r in single]),
        ("stdio remember p50", [r["stdio"]["remember_ms"]["p50"] for r in single]),
        ("embed one query p50 (floor)", [r["library"]["embed_query_ms"]["p50"] for r in single]),
    ]
    for label, values in series:
        ax.plot(sizes, values, marker="o", label=label, linestyle="--" if "floor" in label else "-")
    for name in sorted({name for r in single for name in r.get("peers", {})}):
        measured = [(r["memories"], r["peers"][name]) for r in single if "recall_ms" in r.get("peers", {}).get(name, {})]
        if measured:
            ax.plot([n for n, _ in measured], [p["recall_ms"]["p50"] for _, p in measured], marker="s", linestyle=":",
                    label=f"{name} search p50")
            ax.plot([n for n, _ in measured], [p["add_ms"]["p50"] for _, p in measured], marker="^", linestyle=":",
                    label=f"{name} add p50")
    ax.set_xscale("log")
    ax.set_xlabel("memories of one user")
    ax.set_ylabel("latency (ms)")
    ax.set_title("memory_mcp latency vs. number of memories")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "speed.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="1000,10000,100000,100000:1000",
                        help="comma-separated N or N:USERS (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--peers", default="mem0,server-memory",
                        help="peers measured on the same texts (comma-separated; '' for none; default: %(default)s)")
    parser.add_argument("--peer-max", type=int, default=10_000,
                        help="largest configuration the peers run (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the report goes (default: docs/benchmarks)")
    parser.add_argument("--engines", default="sqlite", help="sqlite and/or postgres, comma-separated (default: %(default)s)")
    parser.add_argument("--postgres-url", help="an existing PostgreSQL with pgvector, as a user who may create "
                        "databases (default: a private server from the pgserver package)")
    parser.add_argument("--before", type=Path, nargs="*", default=[],
                        help="results.json files of an earlier run to set the targets against (a later file's "
                        "configuration replaces an earlier file's)")
    parser.add_argument("--no-install", action="store_true", help="skip measuring a fresh install")
    parser.add_argument("--worker", choices=["library", "stdio", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--memories", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "torch":
        print(json.dumps(asyncio.run(measure_torch(args.samples))))
        return
    if args.worker:
        work = measure_library if args.worker == "library" else measure_stdio
        print(json.dumps(asyncio.run(work(args.db, args.memories, args.users, args.samples))))
        return
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or set(engines) - {"sqlite", "postgres"}:
        parser.error("--engines takes sqlite and/or postgres")
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if unknown := set(peers) - set(PEER_RUNNERS):
        parser.error(f"unknown peer(s) {sorted(unknown)}; known: {sorted(PEER_RUNNERS)}")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        postgres = Postgres(args.postgres_url, Path(tmp) / "postgres") if "postgres" in engines else None
        try:
            for config in args.configs.split(","):
                n, _, users = config.partition(":")
                for engine in engines:
                    print(f"configuration: {int(n):,} memories, {int(users or 1):,} users, {engine}", file=sys.stderr)
                    runs.append(run_config(
                        int(n), int(users or 1), args.samples, peers if engine == engines[0] else [], args.peer_max,
                        engine, postgres,
                    ))
        finally:
            if postgres is not None:
                postgres.stop()
    before: dict[tuple[int, int, str], dict[str, Any]] = {}
    for path in args.before:
        for run in json.loads(path.read_text())["runs"]:
            before[(run["memories"], run["users"], run.get("engine", "sqlite"))] = run
    install = None if args.no_install else measure_install()
    write_report(runs, args.samples, "python bench/suite.py " + " ".join(sys.argv[1:]), args.out,
                 install, list(before.values()))


if __name__ == "__main__":
    main()
