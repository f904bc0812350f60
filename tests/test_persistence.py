"""Persistence: what survives a restart, a damaged vector index, a second engine or process on the
same file, a mismatched embedder, and an embedder that is still loading.

Everything runs against a real SQLite file, the real usearch index saved in ``<db>.vectors/`` and
the real MiniLM model (shared through the conftest fixtures). Damage is done to the files on disk
with the engine closed, as a crash, a full disk or a stray copy would leave them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
import sys
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memory_mcp import (
    AlreadySupersededError,
    EmbedderError,
    EmbedderMismatchError,
    HierarchicalMemory,
    Memory,
    MemoryConfig,
    MemoryFilter,
    MemoryNotFoundError,
)

INDEX_LOGGER = "memory_mcp.adapters.usearch_index"
MINILM = "all-MiniLM-L6-v2"

# Facts on unrelated subjects, each with a question that shares no word with it: only the
# semantic side (the vector index) can answer these questions.
FACTS = {
    "allergy": ("Alice is allergic to peanuts", "food intolerance"),
    "car": ("Alice drives a red Tesla", "what vehicle does she own"),
    "music": ("Alice's daughter plays the violin", "musical instrument lessons"),
    "job": ("Alice works as a marine biologist", "occupation and career"),
    "trip": ("Alice is planning a trip to Iceland next summer", "vacation travel plans"),
}


# -- helpers ---------------------------------------------------------------------------------------


async def _add_facts(
    engine: HierarchicalMemory, names: Sequence[str], user_id: str = "alice"
) -> dict[str, Memory]:
    return {name: await engine.add(FACTS[name][0], user_id=user_id) for name in names}


async def _top_id(engine: HierarchicalMemory, question: str, user_id: str = "alice") -> str | None:
    results = await engine.search(question, user_id=user_id, top_k=1)
    return results[0].memory.id if results else None


def rebuilds(engine: HierarchicalMemory) -> int:
    """How many user indexes the engine rebuilt rather than loaded (an index kept in the database,
    as pgvector's, never rebuilds)."""
    return int(getattr(engine.vector_index, "rebuilds", 0))


def _vectors_dir(db_path: Path) -> Path:
    return Path(str(db_path) + ".vectors")


def _connect(db_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(db_path, timeout=30)


def _user_key(db_path: Path, user_id: str) -> int:
    with closing(_connect(db_path)) as con:
        (key,) = con.execute("SELECT user_key FROM users WHERE user_id = ?", (user_id,)).fetchone()
    return int(key)


def _index_record(db_path: Path, user_id: str) -> dict[str, Any]:
    with closing(_connect(db_path)) as con:
        con.row_factory = sqlite3.Row
        row = con.execute(
            "SELECT f.* FROM vector_index_files f JOIN users u ON u.user_key = f.user_key "
            "WHERE u.user_id = ?",
            (user_id,),
        ).fetchone()
    assert row is not None, f"no saved vector index is recorded for {user_id}"
    return dict(row)


def _index_file(db_path: Path, user_id: str) -> Path:
    return _vectors_dir(db_path) / _index_record(db_path, user_id)["file_name"]


def _snapshot(db_path: Path) -> dict[str, Any]:
    """Everything an engine could change: the rows of every table that matters, and the index files."""
    tables = ("meta", "users", "memories", "changes", "vector_index_files", "idempotency_keys", "recalls")
    with closing(_connect(db_path)) as con:
        state: dict[str, Any] = {t: sorted(map(tuple, con.execute(f"SELECT * FROM {t}"))) for t in tables}
        state["user_version"] = con.execute("PRAGMA user_version").fetchone()[0]
    directory = _vectors_dir(db_path)
    state["files"] = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())
    } if directory.exists() else {}
    return state


def _delete(path: Path, db_path: Path) -> None:
    path.unlink()


def _truncate(path: Path, db_path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path, db_path: Path) -> None:
    path.write_bytes(b"")


def _flip_bytes(path: Path, db_path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _garbage_with_matching_record(path: Path, db_path: Path) -> None:
    """Junk whose size and checksum the record agrees with: only reading the file can tell."""
    data = b"\0" * path.stat().st_size
    path.write_bytes(data)
    with closing(_connect(db_path)) as con, con:
        con.execute(
            "UPDATE vector_index_files SET crc32 = ?, size = ? WHERE file_name = ?",
            (zlib.crc32(data), len(data), path.name),
        )


class _FakeEmbedder:
    """A deterministic embedder of another model (and, optionally, another dimension)."""

    def __init__(self, model_name: str, dim: int):
        self._model_name = model_name
        self._dim = dim

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def is_ready(self) -> bool:
        return True

    async def dimension(self) -> int:
        return self._dim

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
            v = np.random.default_rng(seed).standard_normal(self._dim)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self._dim)

    async def warm_up(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class _GatedEmbedder:
    """Wraps an embedder whose model 'loads' until the test sets ``gate``.

    ``embed`` before the gate is open is a misuse by the engine (a real model would block for
    seconds): it is recorded and refused. ``warm_up_error`` makes the loading fail once the gate opens.
    """

    def __init__(self, inner: Any, gate: asyncio.Event, *, warm_up_error: Exception | None = None):
        self._inner = inner
        self._gate = gate
        self._warm_up_error = warm_up_error
        self.early_embeds: list[list[str]] = []

    @property
    def model_name(self) -> str:
        return str(self._inner.model_name)

    @property
    def is_ready(self) -> bool:
        return self._gate.is_set() and self._warm_up_error is None

    async def dimension(self) -> int:
        return int(await self._inner.dimension())

    async def warm_up(self) -> None:
        await self._gate.wait()
        if self._warm_up_error is not None:
            raise self._warm_up_error
        await self._inner.warm_up()

    async def embed(self, texts: Sequence[str]) -> Any:
        if not self._gate.is_set():
            self.early_embeds.append(list(texts))
            raise RuntimeError("embed() called while the model is still loading")
        return await self._inner.embed(texts)

    async def aclose(self) -> None:  # the wrapped model is the test session's: never unload it
        pass


# -- close and reopen --------------------------------------------------------------------------------


async def test_reopened_database_keeps_memories_chains_and_search_and_loads_the_saved_index(
    open_memory: Callable[..., Any], db_path: Path
) -> None:
    engine = await open_memory()
    facts = await _add_facts(engine, list(FACTS))
    old_job = facts["job"]
    new_job = await engine.supersede(old_job.id, "Alice now works as a software engineer")
    await engine.close()

    engine = await open_memory()
    try:
        assert await _top_id(engine, FACTS["allergy"][1]) == facts["allergy"].id
        assert rebuilds(engine) == 0  # loaded from <db>.vectors/, not rebuilt

        current = await engine.query(MemoryFilter(user_id="alice"))
        assert sorted(m.content for m in current) == sorted(
            [FACTS[n][0] for n in FACTS if n != "job"] + ["Alice now works as a software engineer"]
        )
        chain = await engine.get_history(old_job.id)
        assert [(m.id, m.is_current) for m in chain] == [(old_job.id, False), (new_job.id, True)]
        assert chain[0].superseded_by == new_job.id and chain[1].supersedes == old_job.id
        assert chain[0].valid_until == chain[1].valid_from

        for name in ("car", "music", "trip"):
            assert await _top_id(engine, FACTS[name][1]) == facts[name].id, name
        assert await _top_id(engine, "occupation and career") == new_job.id
        everything = await engine.search("occupation and career", user_id="alice", top_k=10, min_relevance=0)
        assert old_job.id not in [r.memory.id for r in everything]
        assert len(everything) == len(FACTS)
        assert rebuilds(engine) == 0
    finally:
        await engine.close()


@pytest.mark.sqlite_only  # about <db>.vectors/ files or the SQLite file itself
async def test_index_saved_on_close_is_recorded_with_its_size_and_checksum(
    open_memory: Callable[..., Any], db_path: Path
) -> None:
    engine = await open_memory()
    await _add_facts(engine, ["allergy", "car", "music"])
    await engine.search("anything", user_id="alice")
    await engine.close()

    record = _index_record(db_path, "alice")
    data = (_vectors_dir(db_path) / record["file_name"]).read_bytes()
    assert (record["size"], record["crc32"]) == (len(data), zlib.crc32(data))
    assert (record["count"], record["model"], record["dim"]) == (3, MINILM, 384)
    # one file per user: older generations are not left behind
    saved = [p.name for p in _vectors_dir(db_path).iterdir() if p.suffix == ".usearch"]
    assert saved == [record["file_name"]]


@pytest.mark.sqlite_only  # about the SQLite file itself
async def test_a_growing_database_gets_planner_statistics_while_it_is_open(
    open_memory: Callable[..., Any], db_path: Path
) -> None:
    # SQLite takes them at close too; a server that never closes must not plan without them (it
    # read a recall's candidates through the user's index, every memory of it, instead of by key).
    engine = await open_memory()
    try:
        await engine.add_many([{"content": f"Reading list entry {i}", "user_id": "alice"} for i in range(1100)])
        with closing(sqlite3.connect(db_path)) as db:
            analysed = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone() and (
                db.execute("SELECT 1 FROM sqlite_stat1 WHERE tbl = 'memories'").fetchone()
            )
        assert analysed
    finally:
        await engine.close()


@pytest.mark.sqlite_only  # about <db>.vectors/ files or the SQLite file itself
@pytest.mark.parametrize(
    "damage",
    [_delete, _truncate, _empty, _flip_bytes, _garbage_with_matching_record],
    ids=["deleted", "truncated", "emptied", "bytes_flipped", "garbage_with_matching_record"],
)
async def test_missing_or_damaged_index_file_is_rebuilt_with_a_warning_and_search_still_works(
    open_memory: Callable[..., Any], db_path: Path, caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path, Path], None],
) -> None:
    engine = await open_memory()
    facts = await _add_facts(engine, list(FACTS))
    await engine.search("anything", user_id="alice")
    await engine.close()

    damage(_index_file(db_path, "alice"), db_path)

    engine = await open_memory()
    try:
        with caplog.at_level(logging.WARNING, logger=INDEX_LOGGER):
            assert await _top_id(engine, FACTS["music"][1]) == facts["music"].id
        assert rebuilds(engine) == 1
        warnings = [r for r in caplog.records if r.name == INDEX_LOGGER and r.levelno == logging.WARNING]
        assert warnings and "rebuilt" in warnings[0].getMessage()
        for name in FACTS:
            assert await _top_id(engine, FACTS[name][1]) == facts[name].id, name
    finally:
        await engine.close()

    # The rebuilt index replaced the damaged one on disk: the next open loads it.
    engine = await open_memory()
    try:
        assert await _top_id(engine, FACTS["trip"][1]) == facts["trip"].id
        assert rebuilds(engine) == 0
    finally:
        await engine.close()


@pytest.mark.sqlite_only  # about <db>.vectors/ files or the SQLite file itself
async def test_stale_index_file_put_back_after_later_writes_is_caught_up_or_rebuilt(
    open_memory: Callable[..., Any], db_path: Path
) -> None:
    engine = await open_memory()
    first = await _add_facts(engine, ["allergy", "car"])
    await engine.search("anything", user_id="alice")
    await engine.close()
    old_record = _index_record(db_path, "alice")
    old_bytes = (_vectors_dir(db_path) / old_record["file_name"]).read_bytes()

    engine = await open_memory()
    later = await _add_facts(engine, ["music", "job"])
    await engine.delete(first["car"].id)
    await engine.search("anything", user_id="alice")
    await engine.close()
    assert _index_record(db_path, "alice")["seq"] > old_record["seq"]

    # Put the old generation back, file and record, as a restored backup of the folder would.
    (_vectors_dir(db_path) / old_record["file_name"]).write_bytes(old_bytes)
    with closing(_connect(db_path)) as con, con:
        con.execute(
            "UPDATE vector_index_files SET file_name = :file_name, seq = :seq, count = :count, "
            "crc32 = :crc32, size = :size, model = :model, dim = :dim WHERE user_key = :user_key",
            old_record,
        )

    engine = await open_memory()
    try:
        assert await _top_id(engine, FACTS["music"][1]) == later["music"].id
        assert rebuilds(engine) in (0, 1)
        assert await _top_id(engine, FACTS["job"][1]) == later["job"].id
        assert await _top_id(engine, FACTS["allergy"][1]) == first["allergy"].id
        everything = await engine.search("anything at all", user_id="alice", top_k=10)
        assert sorted(r.memory.id for r in everything) == sorted(
            [first["allergy"].id, later["music"].id, later["job"].id]
        )
        # the index itself no longer holds the deleted memory's vector
        assert await engine.vector_index.size(_user_key(db_path, "alice")) == 3
    finally:
        await engine.close()


# -- two engines on one file ------------------------------------------------------------------------


@pytest.fixture
async def two_engines(
    open_memory: Callable[..., Any],
) -> AsyncIterator[tuple[HierarchicalMemory, HierarchicalMemory]]:
    a = await open_memory()
    b = await open_memory()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_add_by_one_engine_is_seen_by_the_others_next_query_recall_and_search(
    two_engines: tuple[HierarchicalMemory, HierarchicalMemory],
) -> None:
    a, b = two_engines
    allergy = await a.add(FACTS["allergy"][0], user_id="alice")
    assert await _top_id(b, FACTS["allergy"][1]) == allergy.id  # b has now loaded alice's index

    car = await a.add(FACTS["car"][0], user_id="alice")
    assert car.id in [m.id for m in await b.query(MemoryFilter(user_id="alice"))]
    assert await _top_id(b, FACTS["car"][1]) == car.id
    assert [r.memory.id for r in await b.recall("Tesla", user_id="alice", top_k=1)] == [car.id]
    assert [r.memory.id for r in await b.text_search("Tesla", user_id="alice")] == [car.id]
    assert (await b.get(car.id)).content == FACTS["car"][0]

    # and the other way round
    music = await b.add(FACTS["music"][0], user_id="alice")
    assert await _top_id(a, FACTS["music"][1]) == music.id


async def test_a_user_first_stored_by_another_engine_is_found_after_an_empty_recall(
    two_engines: tuple[HierarchicalMemory, HierarchicalMemory],
) -> None:
    """An engine remembers users' keys: one it looked for before the user existed is looked
    for again, not taken as absent for good."""
    a, b = two_engines
    assert await b.recall("allergy", user_id="newcomer") == []
    allergy = await a.add(FACTS["allergy"][0], user_id="newcomer")
    assert await _top_id(b, FACTS["allergy"][1], user_id="newcomer") == allergy.id
    assert [r.memory.id for r in await b.recall(FACTS["allergy"][1], user_id="newcomer")] == [allergy.id]


async def test_supersession_by_one_engine_hides_the_old_version_from_the_others_recall(
    two_engines: tuple[HierarchicalMemory, HierarchicalMemory],
) -> None:
    a, b = two_engines
    facts = await _add_facts(a, ["job", "allergy"])
    old = facts["job"]
    assert await _top_id(b, "occupation and career") == old.id
    assert (await b.get(old.id)).is_current  # now in b's cache

    new = await a.supersede(old.id, "Alice now works as a software engineer")

    recalled = [r.memory.id for r in await b.recall("occupation and career", user_id="alice")]
    assert new.id in recalled and old.id not in recalled
    searched = [r.memory.id for r in await b.search("occupation and career", user_id="alice", top_k=10)]
    assert searched[0] == new.id and old.id not in searched
    assert old.id not in [r.memory.id for r in await b.text_search("marine biologist", user_id="alice")]
    assert sorted(m.content for m in await b.query(MemoryFilter(user_id="alice"))) == sorted(
        [FACTS["allergy"][0], "Alice now works as a software engineer"]
    )
    closed = await b.get(old.id)
    assert not closed.is_current and closed.superseded_by == new.id
    with pytest.raises(AlreadySupersededError):
        await b.supersede(old.id, "Alice works as a chef")


async def test_delete_by_one_engine_removes_the_memory_from_the_others_results(
    two_engines: tuple[HierarchicalMemory, HierarchicalMemory],
) -> None:
    a, b = two_engines
    facts = await _add_facts(a, ["allergy", "car", "trip"])
    assert await _top_id(b, FACTS["car"][1]) == facts["car"].id
    assert (await b.get(facts["car"].id)).id == facts["car"].id  # cached in b

    assert await a.delete(facts["car"].id) == 1

    assert facts["car"].id not in [r.memory.id for r in await b.search("vehicle", user_id="alice", top_k=10)]
    assert await b.text_search("Tesla", user_id="alice") == []
    assert facts["car"].id not in [r.memory.id for r in await b.recall("red Tesla", user_id="alice")]
    assert facts["car"].id not in [m.id for m in await b.query(MemoryFilter(user_id="alice"))]
    with pytest.raises(MemoryNotFoundError):
        await b.get(facts["car"].id)
    async with b.store.reading() as db:
        user_key = await db.user_key("alice")
    assert user_key is not None and len(await b.vector_index.keys(user_key)) == 2


async def test_clear_by_one_engine_empties_the_others_view(
    two_engines: tuple[HierarchicalMemory, HierarchicalMemory],
) -> None:
    a, b = two_engines
    facts = await _add_facts(a, list(FACTS))
    assert await _top_id(b, FACTS["trip"][1]) == facts["trip"].id

    assert await a.clear("alice") == len(FACTS)

    assert await b.query(MemoryFilter(user_id="alice")) == []
    assert await b.search("vacation travel plans", user_id="alice") == []
    assert await b.text_search("Iceland", user_id="alice") == []
    assert await b.recall("Iceland trip", user_id="alice") == []
    assert (await b.stats("alice"))["total"] == 0
    with pytest.raises(MemoryNotFoundError):
        await b.get(facts["trip"].id)

    again = await a.add(FACTS["trip"][0], user_id="alice")  # same text, after the clear
    assert again.id != facts["trip"].id
    assert [r.memory.id for r in await b.search("vacation travel plans", user_id="alice")] == [again.id]


async def test_concurrent_adds_from_two_engines_lose_nothing_and_never_report_a_locked_database(
    open_memory: Callable[..., Any], db_path: Path
) -> None:
    # duplicate_similarity=1.0: the notes are alike on purpose, none may be merged as a near-duplicate
    a = await open_memory(duplicate_similarity=1.0)
    b = await open_memory(duplicate_similarity=1.0)
    try:
        n = 40
        writes = [a.add(f"Note {i} written by engine A, token qa{i}x", user_id="alice") for i in range(n)]
        writes += [b.add(f"Note {i} written by engine B, token qb{i}x", user_id="alice") for i in range(n)]
        writes += [b.recall("note written by engine", user_id="alice") for _ in range(5)]
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert errors == []
        stored = [o for o in outcomes if isinstance(o, Memory)]
        assert len({m.id for m in stored}) == 2 * n

        expected = sorted(m.content for m in stored)
        for engine in (a, b):
            assert sorted(m.content for m in await engine.get_all("alice")) == expected
            assert (await engine.stats("alice"))["total"] == 2 * n
            found = await engine.search("note", user_id="alice", top_k=1000)
            assert sorted(r.memory.id for r in found) == sorted(m.id for m in stored)
        assert [r.memory.content for r in await a.text_search("qb17x", user_id="alice")] == [
            "Note 17 written by engine B, token qb17x"
        ]
        assert [r.memory.content for r in await b.text_search("qa33x", user_id="alice")] == [
            "Note 33 written by engine A, token qa33x"
        ]
    finally:
        await a.close()
        await b.close()


async def test_concurrent_supersessions_of_one_memory_from_two_engines_let_exactly_one_win(
    two_engines: tuple[HierarchicalMemory, HierarchicalMemory],
) -> None:
    a, b = two_engines
    old = await a.add("Alice lives in Paris", user_id="alice")
    outcomes = await asyncio.gather(
        a.supersede(old.id, "Alice lives in Lyon"),
        b.supersede(old.id, "Alice lives in Nantes"),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, Memory)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], AlreadySupersededError)
    for engine in (a, b):
        chain = await engine.get_history(old.id)
        assert [m.id for m in chain] == [old.id, winners[0].id]
        assert [m.content for m in await engine.query(MemoryFilter(user_id="alice"))] == [winners[0].content]


async def test_index_saved_by_two_engines_is_loaded_without_rebuild_when_reopened(
    open_memory: Callable[..., Any],
) -> None:
    a = await open_memory()
    b = await open_memory()
    facts = await _add_facts(a, ["allergy", "car"])
    facts.update(await _add_facts(b, ["music", "job"]))
    assert await _top_id(a, FACTS["music"][1]) == facts["music"].id
    assert await _top_id(b, FACTS["car"][1]) == facts["car"].id
    await a.close()
    await b.close()

    engine = await open_memory()
    try:
        for name in facts:
            assert await _top_id(engine, FACTS[name][1]) == facts[name].id, name
        assert rebuilds(engine) == 0
    finally:
        await engine.close()


# -- a second process ------------------------------------------------------------------------------

_CHILD = """
import asyncio, os, sys
from memory_mcp import HierarchicalMemory, MemoryConfig

async def main(db, how):
    engine = await HierarchicalMemory.create(MemoryConfig(db_path=db, embedder_backend="local"))
    mem = await engine.add("Alice keeps bees on the roof of her house", user_id="alice")
    seen = await engine.search("food intolerance", user_id="alice", top_k=1)
    print(mem.id, seen[0].memory.id if seen else "-", flush=True)
    if how == "killed":  # dies without closing: its vector index is never saved
        os._exit(0)
    await engine.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.parametrize("how", ["closes", "killed"])
async def test_memory_written_by_another_process_is_found_by_this_processs_next_search(
    open_memory: Callable[..., Any], db_path: Path, how: str
) -> None:
    engine = await open_memory()
    try:
        facts = await _add_facts(engine, ["allergy", "car"])
        assert await _top_id(engine, FACTS["car"][1]) == facts["car"].id  # alice's index is loaded here
        rebuilt = rebuilds(engine)

        env = dict(os.environ)
        if engine.config.database_url:  # the same PostgreSQL database
            env["MEMORY_MCP_DATABASE_URL"] = engine.config.database_url
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD, str(db_path), how,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )
        out, err = await asyncio.wait_for(child.communicate(), timeout=300)
        assert child.returncode == 0, err.decode(errors="replace")[-3000:]
        bees_id, child_saw = out.decode().split()
        assert child_saw == facts["allergy"].id  # the child found what this process wrote

        assert await _top_id(engine, "beekeeping hobby and honey") == bees_id
        assert [r.memory.id for r in await engine.text_search("bees", user_id="alice")] == [bees_id]
        assert (await engine.get(bees_id)).embedded
        assert rebuilds(engine) == rebuilt  # caught up from the change log
    finally:
        await engine.close()

    engine = await open_memory()
    try:
        assert await _top_id(engine, "beekeeping hobby and honey") == bees_id
        assert rebuilds(engine) == 0
    finally:
        await engine.close()


# -- embedder mismatch ------------------------------------------------------------------------------


@pytest.mark.sqlite_only  # about <db>.vectors/ files or the SQLite file itself
@pytest.mark.parametrize(
    ("model", "dim"), [("other-model", 8), ("other-model", 384), (MINILM, 8)],
    ids=["other_model_other_dim", "other_model_same_dim", "same_name_other_dim"],
)
async def test_database_refuses_an_embedder_of_another_model_or_dimension_and_stays_unchanged(
    open_memory: Callable[..., Any], db_path: Path, model: str, dim: int
) -> None:
    engine = await open_memory()
    allergy = await engine.add(FACTS["allergy"][0], user_id="alice")
    await engine.add(FACTS["car"][0], user_id="alice")
    await engine.search("anything", user_id="alice")
    await engine.close()
    before = _snapshot(db_path)

    with pytest.raises(EmbedderMismatchError) as raised:
        await HierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=_FakeEmbedder(model, dim))

    message = str(raised.value)
    assert MINILM in message and model in message  # names what the database has and what was offered
    assert "384" in message and str(dim) in message
    assert "re-embed" in message or "reindex" in message  # says what to do
    assert _snapshot(db_path) == before

    engine = await open_memory()  # the right embedder still opens it, index untouched
    try:
        assert await _top_id(engine, FACTS["allergy"][1]) == allergy.id
        assert rebuilds(engine) == 0
    finally:
        await engine.close()


@pytest.mark.sqlite_only  # about <db>.vectors/ files or the SQLite file itself
async def test_configured_vector_dimension_that_the_model_does_not_produce_is_refused(
    open_memory: Callable[..., Any], db_path: Path
) -> None:
    with pytest.raises(EmbedderMismatchError) as raised:
        await open_memory(vector_dimension=100)
    message = str(raised.value)
    assert "100" in message and "384" in message
    with closing(_connect(db_path)) as con:
        recorded = con.execute("SELECT count(*) FROM meta WHERE key IN ('embedder_model', 'embedding_dim')")
        assert recorded.fetchone() == (0,)

    engine = await open_memory(vector_dimension=384)  # the right dimension is accepted
    try:
        stored = await engine.add(FACTS["trip"][0], user_id="alice")
        assert await _top_id(engine, FACTS["trip"][1]) == stored.id
    finally:
        await engine.close()


# -- background embedding ----------------------------------------------------------------------------


async def test_background_mode_stores_and_answers_from_text_until_the_model_is_ready_then_embeds(
    db_path: Path, embedder: Any
) -> None:
    gate = asyncio.Event()
    gated = _GatedEmbedder(embedder, gate)
    engine = await asyncio.wait_for(
        HierarchicalMemory.create(MemoryConfig(db_path=db_path, background_embedding=True), embedder=gated),
        timeout=10,
    )
    try:
        assert not engine.semantic_ready
        allergy = await asyncio.wait_for(engine.add(FACTS["allergy"][0], user_id="alice"), timeout=10)
        car = await asyncio.wait_for(engine.add(FACTS["car"][0], user_id="alice"), timeout=10)
        batch = await asyncio.wait_for(
            engine.add_many([{"content": FACTS["trip"][0], "user_id": "alice"}]), timeout=10
        )
        assert not allergy.embedded and not car.embedded and not batch[0].embedded

        results = await asyncio.wait_for(engine.recall("peanuts", user_id="alice"), timeout=10)
        assert [r.memory.id for r in results] == [allergy.id]
        assert results[0].similarity is None and results[0].text_score is not None
        assert not engine.semantic_ready
        assert gated.early_embeds == []

        gate.set()
        await asyncio.wait_for(engine.wait_until_ready(), timeout=60)

        assert engine.semantic_ready
        for stored in (allergy, car, batch[0]):
            assert (await engine.get(stored.id)).embedded
        assert await _top_id(engine, FACTS["allergy"][1]) == allergy.id
        assert await _top_id(engine, FACTS["car"][1]) == car.id
        hybrid = await engine.recall(FACTS["trip"][1], user_id="alice", top_k=1)
        assert hybrid[0].memory.id == batch[0].id and hybrid[0].similarity is not None
        later = await engine.add(FACTS["music"][0], user_id="alice")
        assert later.embedded
    finally:
        gate.set()
        await engine.close()


async def test_background_mode_semantic_search_made_while_loading_waits_and_then_answers(
    db_path: Path, embedder: Any
) -> None:
    gate = asyncio.Event()
    engine = await HierarchicalMemory.create(
        MemoryConfig(db_path=db_path, background_embedding=True), embedder=_GatedEmbedder(embedder, gate)
    )
    try:
        allergy = await engine.add(FACTS["allergy"][0], user_id="alice")
        await engine.add(FACTS["car"][0], user_id="alice")
        pending = asyncio.create_task(engine.search(FACTS["allergy"][1], user_id="alice", top_k=1))
        await asyncio.sleep(0.2)
        assert not pending.done()
        gate.set()
        results = await asyncio.wait_for(pending, timeout=60)
        assert [r.memory.id for r in results] == [allergy.id]
    finally:
        gate.set()
        await engine.close()


@pytest.mark.sqlite_only  # about <db>.vectors/ files or the SQLite file itself
async def test_writes_stored_before_the_model_was_ready_are_embedded_at_the_next_open(
    open_memory: Callable[..., Any], db_path: Path, embedder: Any
) -> None:
    gate = asyncio.Event()  # never set: the engine closes before its model is ready
    engine = await HierarchicalMemory.create(
        MemoryConfig(db_path=db_path, background_embedding=True), embedder=_GatedEmbedder(embedder, gate)
    )
    stored = await _add_facts(engine, ["allergy", "car", "music"])
    assert not any(m.embedded for m in stored.values())
    await asyncio.wait_for(engine.close(), timeout=10)

    engine = await open_memory()
    try:
        for name, memory in stored.items():
            assert (await engine.get(memory.id)).embedded, name
            assert await _top_id(engine, FACTS[name][1]) == memory.id, name
    finally:
        await engine.close()


@pytest.mark.sqlite_only  # about <db>.vectors/ files or the SQLite file itself
@pytest.mark.parametrize("failure", ["model_fails_to_load", "model_mismatches_database"])
async def test_background_loading_failure_is_raised_by_wait_until_ready_instead_of_hanging(
    open_memory: Callable[..., Any], db_path: Path, embedder: Any, failure: str
) -> None:
    expected: type[Exception]
    if failure == "model_fails_to_load":
        inner, error, expected = embedder, EmbedderError("model files are missing"), EmbedderError
    else:
        engine = await open_memory()  # the database is built with MiniLM
        await engine.add(FACTS["allergy"][0], user_id="alice")
        await engine.close()
        inner, error, expected = _FakeEmbedder("other-model", 8), None, EmbedderMismatchError
    gate = asyncio.Event()
    engine = await HierarchicalMemory.create(
        MemoryConfig(db_path=db_path, background_embedding=True),
        embedder=_GatedEmbedder(inner, gate, warm_up_error=error),
    )
    try:
        waiting = asyncio.create_task(engine.wait_until_ready())  # a caller already waiting ...
        await asyncio.sleep(0.05)
        gate.set()  # ... when loading fails
        with pytest.raises(expected):
            await asyncio.wait_for(waiting, timeout=10)
        assert not engine.semantic_ready
        car = await engine.add(FACTS["car"][0], user_id="alice")  # full text keeps working
        assert [r.memory.id for r in await engine.recall("Tesla", user_id="alice")] == [car.id]
    finally:
        gate.set()
        await engine.close()
