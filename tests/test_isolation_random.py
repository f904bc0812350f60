"""Randomized cross-user isolation: many users whose memories deliberately overlap, every read path
asked from every user, zero leaks allowed.

docs/design.md ("Scopes and visibility"): users are kept apart in storage and indexes, not only in
filters, so no query path can return, count, or rank using another user's memories. This file tries to break that
with a seeded random workload (``SEED``; set ``MEMORY_MCP_ISOLATION_SEED`` to try another one):

* Users whose ids are near each other (``alice``/``Alice``/``ALICE``/``alice ``, ``1``/``01``,
  ``u1``/``u2`` - which look like the ``u<user_key>`` owner tokens of the full-text index - and ids
  holding the SQL ``LIKE`` wildcards ``%`` and ``_``).
* Memories drawn from shared templates with values from small sets, so that many users store the
  identical sentence, many more a near-identical one (cosine well above the 0.92 duplicate
  threshold), the same entity names and entity refs, and the same session/agent/turn ids. Each user
  also stores a codeword no one else has. A leak through ranking, deduplication or a missing
  ``user_key`` condition would show.
* Random positions (user, session, agent, turn), categories, importances (some high enough to be
  promoted at once), supersessions, single and whole-chain deletions, ``clear`` of a session,
  reinforcing re-adds, retries with idempotency keys (the same keys for every user), and the turn
  expiry that a later turn triggers. Everything is mirrored in a small model (``World``) that is
  written from docs/design.md, not from the code, and that says what each user must see and count.

Then, from every user: recall (hybrid, semantic, text; random filters and positions), search,
text_search, query/get_all, get/get_history by every kind of foreign id (must be "not found"),
supersede/delete of foreign ids (must be refused), stats, export_jsonl, and the same through the MCP
layer (tools, resources, the memory_context prompt) on the same database, and from a second engine
opened on the database while it was being written (as a second server process). Every id returned
is checked against its owner; counts are compared with the model. Ranking is compared with a fresh
database holding only that user's memories (same operations, same ``valid_from``): BM25 scores must
be identical to the bit, semantic similarities and hybrid order the same.

The totals (queries run, leaks found) are printed; run with ``-s`` to see them. A larger variant runs
with ``MEMORY_MCP_SOAK=1``.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import numpy as np
import pytest
from support import client_session

from memory_mcp import HierarchicalMemory, MemoryConfig
from memory_mcp.errors import MemoryMCPError, MemoryNotFoundError
from memory_mcp.memory.models import Memory, SearchResult
from memory_mcp.memory.ports import MemoryFilter
from memory_mcp.server import ServerSettings, build_server

SEED = int(os.environ.get("MEMORY_MCP_ISOLATION_SEED", "20250611"))
SOAK = os.environ.get("MEMORY_MCP_SOAK") == "1"

# Ids that differ only by case, whitespace, leading zeros; ids like the FTS5 owner tokens; ids with
# SQL LIKE wildcards and quotes; a non-Latin id.
BASE_USERS = [
    "alice", "Alice", "ALICE", "alice ", "bob", "bob2", "u1", "u2", "1", "01",
    "carol_x", "carol%x", "dave.o'brien", "用户甲", "erin", "frank",
]
USERS = BASE_USERS + ([f"user-{i:03d}" for i in range(24)] if SOAK else [])
OPS_PER_USER = 45 if SOAK else 22
QUERIES_PER_USER = 14 if SOAK else 8
DEFAULT_USER = "nobody-default"  # the MCP server's user when a call names none; stores nothing

SESSIONS = ["s1", "s2", "s3"]
AGENTS = ["planner", "coder"]
TURNS = ["t1", "t2", "t3"]
CATEGORIES = ["preference", "fact", "context", "entity", "decision", "insight"]
LEVELS = ["user", "session", "agent", "turn"]
REFS = ["phoenix", "alvarez", "acme", "kestrel", "mira"]
# Positions reads are made from (session, agent, turn); "s9" is a session nobody wrote to.
READ_POSITIONS: list[tuple[str | None, str | None, str | None]] = [
    (None, None, None), ("s1", None, None), ("s2", "planner", None), ("s1", "coder", "t2"),
    ("s3", None, "t1"), ("s2", None, None), ("s9", None, None),
]
CONFIG: dict[str, Any] = {"promotion_recall_count": 10**6}  # recall must not move memories here
DEDUP_GUARD = 0.88  # one user's contents stay below this cosine (the engine merges at 0.92)

VALUES = {
    "lang": ["Go", "Rust", "Python", "Kotlin"],
    "n": ["40", "45", "50", "60"],
    "day": ["Monday", "Tuesday", "Thursday"],
    "hour": ["9", "10", "14"],
    "food": ["peanuts", "shellfish", "gluten"],
    "city": ["Berlin", "Lisbon", "Osaka"],
    "place": ["river", "old station", "harbour"],
    "db": ["Postgres", "MySQL", "SQLite", "MongoDB"],
    "db2": ["Postgres", "MySQL", "SQLite", "MongoDB"],
    "name": ["Mira", "Jonas", "Priya", "Tomasz"],
    "instrument": ["cello", "piano", "violin"],
    "month": ["March", "June", "October"],
    "drink": ["green tea", "espresso", "oat latte"],
    "color": ["red", "blue", "green"],
    "topic": ["medieval history", "astronomy", "gardening"],
    "language": ["Japanese", "Portuguese", "Finnish"],
    "editor": ["Neovim", "VS Code", "Emacs"],
    "k": ["1", "2", "3", "4", "5"],
    "hours": ["3", "4", "5"],
}
TEMPLATES: list[tuple[str, str]] = [
    ("preference", "Prefers {lang} for backend work on Project Phoenix"),
    ("fact", "The quarterly budget for Project Phoenix is {n} thousand euros"),
    ("context", "Has a standing meeting with Dr. Alvarez every {day} at {hour} o'clock"),
    ("fact", "Is allergic to {food}"),
    ("fact", "Lives in {city} near the {place}"),
    ("decision", "Decided to migrate the Kestrel API from {db} to {db2}"),
    ("entity", "Their manager at Acme Corp is called {name}"),
    ("context", "Training to run the {city} marathon in under {hours} hours"),
    ("preference", "Prefers dark mode in every editor"),
    ("preference", "Uses {editor} with vim keybindings"),
    ("entity", "Their daughter plays the {instrument} in the school orchestra"),
    ("context", "The deadline for Project Phoenix is {month} {n}"),
    ("preference", "Drinks {drink} every morning before work"),
    ("insight", "Meetings after {hour} pm with Acme Corp are rarely productive"),
    ("entity", "Owns a {color} bicycle named {name}"),
    ("preference", "Reads about {topic} every weekend"),
    ("context", "Is learning {language} with a tutor called {name}"),
    ("entity", "Their cat is called {name}"),
    ("fact", "Works remotely from {city} on Fridays"),
    ("fact", "Ticket u{k} for Project Phoenix is assigned to the owner of the Kestrel API"),
    ("decision", "Chose {db} as the database for the Acme Corp dashboard"),
    ("insight", "Dr. Alvarez gives better feedback in writing than in meetings"),
    ("fact", "Their phone number ends in {n}{k}"),
    ("preference", "Likes what every user likes: long walks and strong coffee"),
]
MARKER_TEMPLATE = "The vault codeword is {marker}"
SHARED_QUERIES = [
    "Project Phoenix budget", "meeting with Dr. Alvarez", "who is the manager at Acme Corp",
    "Kestrel API database migration", "what is the user allergic to", "u1", "u3 owner", "owner : u2",
    "the of and", '"phoenix" OR NEAR(kestrel) AND owner', "vault codeword", "用户甲",
    "long walks and strong coffee", "Mira", "Berlin",
]


def _marker(index: int) -> str:
    """A codeword of letters only (one FTS5 token, no stemming surprises), unique per user."""
    letters = "bcdfghjklmnpqrstvwxz"
    return "zq" + letters[index % 20] + letters[(index // 20) % 20] + "vex"


# -- an embedder that embeds each text once ----------------------------------------------------------


class CachingEmbedder:
    """The session's MiniLM, each distinct text embedded once (batched up front where possible).

    Every engine in this file, the MCP server's included, gets this one: the same text always has the
    same vector, so semantic scores of two databases can be compared, and the run stays short."""

    def __init__(self, inner: Any):
        self._inner = inner
        self._cache: dict[str, np.ndarray] = {}

    @property
    def model_name(self) -> str:
        return str(self._inner.model_name)

    @property
    def is_ready(self) -> bool:
        return bool(self._inner.is_ready)

    async def dimension(self) -> int:
        return int(await self._inner.dimension())

    async def warm_up(self) -> None:
        await self._inner.warm_up()

    async def prefill(self, texts: Sequence[str]) -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = await self._inner.embed(missing)
            for text, vector in zip(missing, vectors, strict=True):
                self._cache[text] = np.array(vector, dtype=np.float32)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, await self.dimension()), dtype=np.float32)
        await self.prefill(texts)
        return np.ascontiguousarray(np.stack([self._cache[t] for t in texts]), dtype=np.float32)

    def vector(self, text: str) -> np.ndarray:
        return self._cache[text]

    async def aclose(self) -> None:  # shared: an engine closing must not unload it
        pass


async def open_engine(where: dict[str, Any], embedder: CachingEmbedder, **overrides: Any) -> HierarchicalMemory:
    """An engine on the database ``where`` names (conftest's ``database_for``: SQLite or PostgreSQL)."""
    config = MemoryConfig(**where, **{**CONFIG, **overrides})
    return await HierarchicalMemory.create(config, embedder=embedder)  # type: ignore[arg-type]


# -- the model: what each user has stored, from docs/design.md ----------------------------------------------

Pos = tuple[str | None, str | None, str | None]
THRESHOLDS = {"turn": 0.6, "agent": 0.7, "session": 0.85}  # MemoryConfig's promote_* defaults


def level_of(pos: Pos) -> str:
    session, agent, turn = pos
    if turn is not None:
        return "turn"
    if agent is not None:
        return "agent"
    return "session" if session is not None else "user"


def parent(pos: Pos) -> Pos:
    session, agent, turn = pos
    if turn is not None:
        return (session, agent, None)
    if agent is not None:
        return (session, None, None)
    return (None, None, None)


def promoted(pos: Pos, importance: float) -> Pos:
    """Where a new memory lands: one level up for each threshold its importance clears."""
    while level_of(pos) != "user" and importance >= THRESHOLDS[level_of(pos)]:
        pos = parent(pos)
    return pos


def sees(memory_pos: Pos, pos: Pos, all_levels: bool) -> bool:
    """Visibility from a position (on the path upward), or the subtree below it (all_levels)."""
    for mine, asked in zip(memory_pos, pos, strict=True):
        if all_levels:
            if asked is not None and mine != asked:
                return False
        elif asked is None:
            if mine is not None:
                return False
        elif mine is not None and mine != asked:
            return False
    return True


@dataclass
class Version:
    label: str
    user: str
    content: str
    pos: Pos
    category: str
    importance: float
    refs: tuple[str, ...]
    valid_from: float | None  # None: "now" when written (a supersession's new version)
    chain: int
    seq: int  # creation order: query() lists newest first
    status: str = "current"  # current | superseded | expired | deleted
    reinforced: int = 0
    ended: bool = False  # a superseded version whose turn ended: expired too, still counted as superseded


@dataclass(frozen=True)
class Op:
    kind: str  # add | readd | retry | supersede | delete | delete_chain | clear (label: the session)
    user: str
    label: str  # add: the new version; readd: the one reinforced; supersede/delete: the target
    new_label: str | None = None
    content: str | None = None
    pos: Pos = (None, None, None)
    category: str | None = None
    importance: float | None = None
    refs: tuple[str, ...] | None = None
    valid_from: float | None = None
    # Keys count per user ("key-1", "key-2", ...): every user uses the same ones.
    idempotency_key: str | None = None


class World:
    """The expected state of the database after a sequence of operations."""

    def __init__(self) -> None:
        self.versions: dict[str, Version] = {}
        self.chains: dict[int, list[str]] = {}
        self._seq = 0

    def apply(self, op: Op) -> None:
        self._seq += 1
        if op.kind == "add":
            assert op.content is not None and op.category is not None and op.importance is not None
            self._expire_other_turns(op.user, op.pos)
            chain = self._seq
            self.versions[op.label] = Version(
                op.label, op.user, op.content, promoted(op.pos, op.importance), op.category, op.importance,
                op.refs or (), op.valid_from, chain, self._seq,
            )
            self.chains[chain] = [op.label]
        elif op.kind == "retry":  # an add repeated with its idempotency key: nothing changes
            assert self.versions[op.label].status != "deleted"
        elif op.kind == "readd":
            v = self.versions[op.label]
            self._expire_other_turns(op.user, v.pos)
            assert op.importance is not None
            v.importance = max(v.importance, op.importance)
            v.reinforced += 1
        elif op.kind == "supersede":
            old = self.versions[op.label]
            assert old.status == "current" and op.new_label is not None and op.content is not None
            old.status = "superseded"
            self.versions[op.new_label] = Version(
                op.new_label, op.user, op.content, old.pos, op.category or old.category,
                old.importance if op.importance is None else op.importance,
                old.refs if op.refs is None else op.refs, None, old.chain, self._seq,
            )
            self.chains[old.chain].append(op.new_label)
        elif op.kind == "delete":
            v = self.versions[op.label]
            v.status = "deleted"
            self.chains[v.chain].remove(op.label)
        elif op.kind == "delete_chain":
            v = self.versions[op.label]
            for label in self.chains[v.chain]:
                self.versions[label].status = "deleted"
            self.chains[v.chain] = []
        elif op.kind == "clear":  # every version at and below the user's session op.label
            for v in self.of(op.user):
                if v.pos[0] == op.label:
                    v.status = "deleted"
                    self.chains[v.chain].remove(v.label)
        else:
            raise AssertionError(op.kind)

    def _expire_other_turns(self, user: str, pos: Pos) -> None:
        """A write at a turn of a session ends that session's other turns' TURN memories."""
        session, _, turn = pos
        if session is None or turn is None:
            return
        for v in self.versions.values():
            if v.user == user and v.pos[2] is not None and v.pos[0] == session and v.pos[2] != turn:
                if v.status == "current":
                    v.status = "expired"
                elif v.status == "superseded":  # every version of an ended turn expires
                    v.ended = True

    def of(self, user: str, *statuses: str) -> list[Version]:
        statuses = statuses or ("current", "superseded", "expired")
        return [v for v in self.versions.values() if v.user == user and v.status in statuses]

    def chain_of(self, label: str) -> list[str]:
        return list(self.chains[self.versions[label].chain])

    def visible(
        self, user: str, pos: Pos, *, all_levels: bool = False, include_superseded: bool = False,
        include_expired: bool = False, as_of: float | None = None, categories: Sequence[str] | None = None,
        scope_levels: Sequence[str] | None = None, min_importance: float | None = None,
        entity_refs: Sequence[str] | None = None,
    ) -> list[Version]:
        found = []
        for v in self.of(user):
            if not sees(v.pos, pos, all_levels):
                continue
            if as_of is not None:
                # Every as_of asked here lies before the run: all closing and expiry came later.
                if v.valid_from is None or v.valid_from > as_of:
                    continue
            elif not (v.status == "current" or (include_expired and v.status == "expired")
                      or (include_superseded and v.status == "superseded" and (include_expired or not v.ended))):
                continue
            if categories is not None and v.category not in categories:
                continue
            if scope_levels is not None and level_of(v.pos) not in scope_levels:
                continue
            if min_importance is not None and v.importance < min_importance:
                continue
            if entity_refs and not set(v.refs) & set(entity_refs):
                continue
            found.append(v)
        return sorted(found, key=lambda v: -v.seq)

    def stats(self, user: str) -> dict[str, Any]:
        stored = self.of(user)
        current = [v for v in stored if v.status == "current"]
        return {
            "total": len(stored),
            "current": len(current),
            "superseded": sum(v.status == "superseded" for v in stored),
            "expired": sum(v.status == "expired" for v in stored),
            "categories": dict(Counter(v.category for v in current)),
            "scope_levels": dict(Counter(level_of(v.pos) for v in current)),
        }


# -- the random workload -------------------------------------------------------------------------------


def fill(template: str, rng: random.Random, **fixed: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: fixed.get(m.group(1)) or rng.choice(VALUES[m.group(1)]), template)


def candidate_pool(rng: random.Random) -> list[tuple[int, str]]:
    """Up to three fills of every template: the contents one user may store."""
    pool = []
    for index, (_, template) in enumerate(TEMPLATES):
        fills = list(dict.fromkeys(fill(template, rng) for _ in range(3)))
        pool += [(index, text) for text in fills]
    return pool


def random_position(rng: random.Random) -> Pos:
    r = rng.random()
    session, agent, turn = rng.choice(SESSIONS), rng.choice(AGENTS), rng.choice(TURNS)
    if r < 0.35:
        return (None, None, None)
    if r < 0.6:
        return (session, None, None)
    if r < 0.75:
        return (session, agent, None)
    if r < 0.88:
        return (session, None, turn)
    return (session, agent, turn)


def random_importance(rng: random.Random) -> float:
    r = rng.random()
    if r < 0.15:
        return rng.choice([0.86, 0.9, 0.95])  # promoted to the user at once
    if r < 0.35:
        return rng.choice([0.62, 0.72, 0.8])  # one or two levels up
    return rng.choice([0.1, 0.3, 0.45, 0.5, 0.55])


class Workload:
    """Every user's operations, generated against a scratch World so each one is legal."""

    def __init__(self, rng: random.Random, embedder: CachingEmbedder, base_time: float):
        self.rng = rng
        self.embedder = embedder
        self.base_time = base_time
        self.ops: dict[str, list[Op]] = {}
        self.pools = {user: candidate_pool(rng) for user in USERS}
        self.markers = {user: _marker(i) for i, user in enumerate(USERS)}

    def texts(self) -> list[str]:
        every = [text for pool in self.pools.values() for _, text in pool]
        every += [MARKER_TEMPLATE.format(marker=m) for m in self.markers.values()]
        return list(dict.fromkeys(every))

    def generate(self) -> None:
        scratch = World()
        for user in USERS:
            self.ops[user] = self._user_ops(user, scratch)

    def _user_ops(self, user: str, world: World) -> list[Op]:
        rng = self.rng
        ops: list[Op] = []
        used: list[tuple[str, int]] = []  # (content, chain) of everything this user stored
        used_templates: set[int] = set()
        chain_template: dict[int, int] = {}
        counter = 0

        def label() -> str:
            nonlocal counter
            counter += 1
            return f"{USERS.index(user):03d}-{counter:03d}"

        def far_enough(text: str, chain: int | None) -> bool:
            vector = self.embedder.vector(text)
            return all(
                c == chain or (text != other and float(vector @ self.embedder.vector(other)) < DEDUP_GUARD)
                for other, c in used
            )

        def do(op: Op) -> None:
            world.apply(op)
            ops.append(op)

        def valid_from() -> float:
            return self.base_time - rng.uniform(1.0, 400.0) * 86400

        # First: the user's own codeword, at the user level, referenced by itself.
        marker_text = MARKER_TEMPLATE.format(marker=self.markers[user])
        first = Op("add", user, label(), content=marker_text, pos=(None, None, None), category="fact",
                   importance=0.5, refs=(self.markers[user], "phoenix"), valid_from=valid_from())
        do(first)
        used.append((marker_text, world.versions[first.label].chain))

        for _ in range(OPS_PER_USER - 1):
            current = [v for v in world.of(user, "current")]
            r = rng.random()
            if r < 0.6 or len(current) < 3:
                pool = [(i, t) for i, t in self.pools[user] if i not in used_templates]
                rng.shuffle(pool)
                found = next(((i, t) for i, t in pool if far_enough(t, None)), None)
                if found is None:
                    continue
                index, text = found
                refs = tuple(rng.sample(REFS, rng.choice([0, 0, 1, 2])))
                op = Op("add", user, label(), content=text, pos=random_position(rng),
                        category=TEMPLATES[index][0] if rng.random() < 0.7 else rng.choice(CATEGORIES),
                        importance=random_importance(rng), refs=refs, valid_from=valid_from(),
                        idempotency_key=f"key-{counter}" if rng.random() < 0.5 else None)
                do(op)
                used_templates.add(index)
                chain = world.versions[op.label].chain
                chain_template[chain] = index
                used.append((text, chain))
            elif r < 0.75:
                old = rng.choice(current)
                same = [t for i, t in self.pools[user] if i == chain_template.get(old.chain)]
                others = [(i, t) for i, t in self.pools[user] if i not in used_templates]
                rng.shuffle(others)
                choices = [t for t in same if t != old.content] + [t for _, t in others]
                text = next((t for t in choices if far_enough(t, old.chain)), None)
                if text is None:
                    continue
                for i, t in self.pools[user]:
                    if t == text and i != chain_template.get(old.chain):
                        used_templates.add(i)
                op = Op("supersede", user, old.label, new_label=label(), content=text,
                        category=rng.choice([None, None, rng.choice(CATEGORIES)]),
                        importance=rng.choice([None, None, 0.2, 0.9]),
                        refs=rng.choice([None, None, (), tuple(rng.sample(REFS, 1))]),
                        idempotency_key=f"key-{counter}" if rng.random() < 0.5 else None)
                do(op)
                used.append((text, old.chain))
            elif r < 0.84:
                target = rng.choice(world.of(user))
                if target.label == first.label:
                    continue
                do(Op("delete", user, target.label))
            elif r < 0.88:
                target = rng.choice(world.of(user))
                if target.chain == world.versions[first.label].chain:
                    continue
                do(Op("delete_chain", user, target.label))
            elif r < 0.895:
                do(Op("clear", user, rng.choice(SESSIONS)))
            elif r < 0.93:
                keyed = [op for op in ops if op.kind == "add" and op.idempotency_key
                         and world.versions[op.label].status != "deleted"]
                if keyed:
                    do(replace(rng.choice(keyed), kind="retry"))
            else:
                target = rng.choice(current)
                do(Op("readd", user, target.label, content=target.content, pos=target.pos,
                      importance=rng.choice([0.05, 0.2])))
        return ops

    def interleaved(self) -> list[Op]:
        """All users' operations in one random order, each user's own order kept."""
        queues = {user: list(ops) for user, ops in self.ops.items()}
        order: list[Op] = []
        while queues:
            user = self.rng.choices(list(queues), weights=[len(q) for q in queues.values()])[0]
            order.append(queues[user].pop(0))
            if not queues[user]:
                del queues[user]
        return order


# -- applying operations to an engine ------------------------------------------------------------------


class Applied:
    """One database's ids for the model's labels, and what went wrong while writing."""

    def __init__(self, name: str):
        self.name = name
        self.ids: dict[str, str] = {}
        self.owner: dict[str, str] = {}  # id -> user, every id ever created here (deleted ones too)
        self.problems: list[str] = []


async def apply(engine: HierarchicalMemory, op: Op, world: World, db: Applied) -> None:
    """Apply one operation to the model and to the engine, and compare what the engine returns."""
    def problem(text: str) -> None:
        db.problems.append(f"[{db.name}] {op.kind} {op.label} by {op.user!r}: {text}")

    chain_before = world.chain_of(op.label) if op.kind == "delete_chain" else []
    in_session = [v for v in world.of(op.user) if v.pos[0] == op.label] if op.kind == "clear" else []
    world.apply(op)
    if op.kind == "add":
        v = world.versions[op.label]
        m = await engine.add(
            op.content, op.user, *op.pos, category=op.category, importance=op.importance,
            entity_refs=list(op.refs or ()), metadata={"label": op.label}, valid_from=op.valid_from,
            idempotency_key=op.idempotency_key,
        )
        if m.user_id != op.user or m.id in db.owner:
            problem(f"returned an existing memory {m.id} of {db.owner.get(m.id, m.user_id)!r} "
                    f"(label {m.metadata.get('label')}): merged instead of stored")
        elif (m.session_id, m.agent_id, m.turn_id) != v.pos:
            problem(f"stored at {(m.session_id, m.agent_id, m.turn_id)}, expected {v.pos}")
        db.ids[op.label] = m.id
        db.owner.setdefault(m.id, m.user_id)
    elif op.kind == "retry":
        m = await engine.add(
            op.content, op.user, *op.pos, category=op.category, importance=op.importance,
            entity_refs=list(op.refs or ()), metadata={"label": op.label}, valid_from=op.valid_from,
            idempotency_key=op.idempotency_key,
        )
        if m.id != db.ids[op.label] or m.user_id != op.user:
            problem(f"retry with key {op.idempotency_key!r} returned {m.id} of "
                    f"{db.owner.get(m.id, m.user_id)!r}, expected {db.ids[op.label]}")
    elif op.kind == "readd":
        m = await engine.add(op.content, op.user, *op.pos, importance=op.importance)
        if m.id != db.ids[op.label] or m.user_id != op.user:
            problem(f"returned {m.id} of {m.user_id!r}, expected to reinforce {db.ids[op.label]}")
        elif m.reinforcement_count != world.versions[op.label].reinforced:
            want = world.versions[op.label].reinforced
            problem(f"reinforcement_count {m.reinforcement_count}, expected {want}")
    elif op.kind == "supersede":
        assert op.new_label is not None
        m = await engine.supersede(
            db.ids[op.label], op.content, user_id=op.user, category=op.category, importance=op.importance,
            entity_refs=None if op.refs is None else list(op.refs), metadata={"label": op.new_label},
            idempotency_key=op.idempotency_key,
        )
        if m.user_id != op.user or m.supersedes != db.ids[op.label]:
            problem(f"new version {m.id} of {m.user_id!r} supersedes {m.supersedes}")
        db.ids[op.new_label] = m.id
        db.owner[m.id] = m.user_id
    elif op.kind == "delete":
        n = await engine.delete(db.ids[op.label], user_id=op.user)
        if n != 1:
            problem(f"deleted {n}, expected 1")
    elif op.kind == "delete_chain":
        n = await engine.delete(db.ids[op.label], user_id=op.user, whole_chain=True)
        if n != len(chain_before):
            problem(f"deleted {n}, expected {len(chain_before)}")
    elif op.kind == "clear":
        n = await engine.clear(op.user, op.label)
        if n != len(in_session):
            problem(f"clear({op.user!r}, {op.label!r}) deleted {n}, the user had {len(in_session)} there")


async def apply_all(engine: HierarchicalMemory, ops: Sequence[Op], world: World, db: Applied) -> None:
    """Apply the operations in order; stop at the first one that goes wrong (later ones would fail
    for its sake) and report it."""
    for number, op in enumerate(ops):
        try:
            await apply(engine, op, world, db)
        except MemoryMCPError as exc:
            db.problems.append(f"[{db.name}] operation {number} {op} raised {type(exc).__name__}: {exc}")
        if db.problems:
            break
    assert not db.problems, "\n".join(db.problems)


# -- the checker -----------------------------------------------------------------------------------------


@dataclass
class Tally:
    queries: int = 0  # read calls made by one user on the multi-user database
    foreign_probes: int = 0  # get/history/supersede/delete of another user's id
    ranking_comparisons: int = 0  # result lists compared with the single-user database
    mcp_calls: int = 0
    leaks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # wrong but not a leak (scope, counts, order)

    def leak(self, text: str) -> None:
        self.leaks.append(text)

    def error(self, text: str) -> None:
        self.errors.append(text)


def owned(tally: Tally, db: Applied, user: str, ids: Sequence[str], where: str) -> None:
    """Count one query; every id it returned must be one of the user's own."""
    tally.queries += 1
    for memory_id in ids:
        owner = db.owner.get(memory_id, "<unknown id>")
        if owner != user:
            tally.leak(f"{where}: user {user!r} got {memory_id} owned by {owner!r}")


def results_ids(results: Sequence[SearchResult | Memory]) -> list[str]:
    return [r.memory.id if isinstance(r, SearchResult) else r.id for r in results]


def random_filters(rng: random.Random, as_of_choices: Sequence[float]) -> dict[str, Any]:
    f: dict[str, Any] = {}
    if rng.random() < 0.3:
        f["categories"] = rng.sample(CATEGORIES, rng.randint(1, 3))
    if rng.random() < 0.2:
        f["scope_levels"] = rng.sample(LEVELS, rng.randint(1, 2))
    if rng.random() < 0.25:
        f["min_importance"] = rng.choice([0.3, 0.5, 0.7])
    if rng.random() < 0.2:
        f["entity_refs"] = rng.sample(REFS, rng.randint(1, 2))
    r = rng.random()
    if r < 0.15:
        when = rng.choice(as_of_choices)
        f["as_of"] = rng.choice([when, datetime.fromtimestamp(when, UTC).isoformat()])
    elif r < 0.4:
        f["include_superseded"] = True
    return f


def model_filters(f: dict[str, Any]) -> dict[str, Any]:
    out = dict(f)
    if isinstance(out.get("as_of"), str):
        out["as_of"] = datetime.fromisoformat(out["as_of"]).timestamp()
    return out


def expect_ids(world: World, db: Applied, user: str, pos: Pos, **f: Any) -> list[str]:
    return [db.ids[v.label] for v in world.visible(user, pos, **model_filters(f))]


async def check_library_reads(
    engine: HierarchicalMemory, world: World, db: Applied, wl: Workload, tally: Tally, rng: random.Random,
    as_of_choices: Sequence[float],
) -> None:
    """Every read path of the library, from every user, against the model and the owners."""
    all_users = USERS + ["nobody-at-all"]
    for user in all_users:
        # 1. Exhaustive semantic search (top_k above anything stored) returns exactly the visible set.
        for pos in READ_POSITIONS:
            for include_superseded in (False, True):
                results = await engine.search(
                    "what do I know", user, *pos, top_k=1000, include_superseded=include_superseded
                )
                got = results_ids(results)
                where = f"search(all, {pos}, include_superseded={include_superseded})"
                owned(tally, db, user, got, where)
                want = expect_ids(world, db, user, pos, include_superseded=include_superseded)
                if sorted(got) != sorted(want):
                    extra, missing = sorted(set(got) - set(want))[:3], sorted(set(want) - set(got))[:3]
                    tally.error(f"{where} for {user!r}: got {len(got)}, expected {len(want)} "
                                f"(extra {extra}, missing {missing})")

        # 2. Random queries, positions and filters through every ranked path.
        queries = own_queries(wl, user, rng)
        for query in queries:
            pos = rng.choice(READ_POSITIONS)
            f = random_filters(rng, as_of_choices)
            allowed = set(expect_ids(world, db, user, pos, **f))
            top_k = rng.choice([3, 10, 50])
            calls: list[tuple[str, Callable[[], Any]]] = [
                (f"recall/{mode}", partial(
                    engine.recall, query, user, *pos, top_k=top_k, mode=mode, **f,
                    **({"min_relevance": 0.2} if mode != "text" and rng.random() < 0.3 else {}),
                    **({"token_budget": 40} if rng.random() < 0.2 else {}),
                )) for mode in ("hybrid", "semantic", "text")
            ] + [
                ("search", partial(engine.search, query, user, *pos, top_k=top_k, **f)),
                ("text_search", partial(engine.text_search, query, user, *pos, top_k=top_k, **f)),
            ]
            for name, call in calls:
                results = await call()
                got = results_ids(results)
                where = f"{name}({query!r}, {pos}, {f}, top_k={top_k})"
                owned(tally, db, user, got, where)
                for r in results:
                    if r.memory.user_id != user:
                        tally.leak(f"{where}: memory.user_id {r.memory.user_id!r} returned to {user!r}")
                if not set(got) <= allowed:
                    tally.error(f"{where} for {user!r}: returned what the position/filter does not allow: "
                                f"{sorted(set(got) - allowed)[:3]}")

        # 3. query()/get_all(): exact sets, newest first, pages included.
        for _ in range(6):
            pos = rng.choice(READ_POSITIONS)
            all_levels = rng.random() < 0.6
            f = random_filters(rng, as_of_choices)
            include_expired = rng.random() < 0.3 and "as_of" not in f
            want = expect_ids(world, db, user, pos, all_levels=all_levels, include_expired=include_expired,
                              **f)
            flt = dict(user_id=user, session_id=pos[0], agent_id=pos[1], turn_id=pos[2],
                       all_levels=all_levels, include_expired=include_expired, **f)
            got = results_ids(await engine.query(MemoryFilter(**flt)))
            where = f"query({flt})"
            owned(tally, db, user, got, where)
            if got != want:
                tally.error(f"{where}: {len(got)} memories, expected {len(want)} (order newest first)")
            paged: list[str] = []
            size = rng.choice([2, 5])
            for offset in range(0, len(want) + size, size):
                page = results_ids(await engine.query(MemoryFilter(**flt, limit=size, offset=offset)))
                owned(tally, db, user, page, where + f" page {offset}")
                paged += page
            if paged != want:
                tally.error(f"{where} paged by {size}: {len(paged)} memories, expected {len(want)}")
        for pos in [(None, None, None), ("s1", None, None), ("s2", "planner", None)]:
            for include_superseded in (False, True):
                got = results_ids(await engine.get_all(user, *pos, include_superseded=include_superseded))
                want = expect_ids(world, db, user, pos, all_levels=True,
                                  include_superseded=include_superseded)
                owned(tally, db, user, got, f"get_all({pos})")
                if got != want:
                    tally.error(f"get_all({user!r}, {pos}, include_superseded={include_superseded}): "
                                f"{len(got)} memories, expected {len(want)}")

        # 4. Stats, counted independently by the model.
        stats = (await engine.stats(user)).model_dump()
        tally.queries += 1
        want_stats = world.stats(user) | {"users": 0 if user == "nobody-at-all" else 1}
        if stats != want_stats:
            # More than the user stored is a leak; any other difference is a counting error.
            more = any(stats[k] > want_stats[k] for k in ("total", "current", "superseded", "expired"))
            report = tally.leak if more else tally.error
            report(f"stats({user!r}) = {stats}, the user stored {want_stats}")

        # 5. Export of one user: every stored version of that user, no one else's.
        out = io.StringIO()
        count = await engine.export_jsonl(out, user_id=user)
        records = [json.loads(line) for line in out.getvalue().splitlines()]
        owned(tally, db, user, [r["id"] for r in records], "export_jsonl")
        for r in records:
            if r["user_id"] != user:
                tally.leak(f"export_jsonl(user_id={user!r}) wrote a record of {r['user_id']!r}")
        want = sorted(db.ids[v.label] for v in world.of(user))
        if count != len(records) or sorted(r["id"] for r in records) != want:
            tally.error(f"export_jsonl(user_id={user!r}): {count} records, expected {len(want)}")


def own_queries(wl: Workload, user: str, rng: random.Random) -> list[str]:
    """This user's queries: its codeword, two other users' codewords, shared words, and the exact
    sentences other users stored (which this user may or may not also have)."""
    others = [u for u in USERS if u != user]
    picked = [wl.markers.get(user, "vault")]
    picked += [wl.markers[u] for u in rng.sample(others, 2)]
    picked += rng.sample(SHARED_QUERIES, QUERIES_PER_USER - 5)
    foreign = [op.content for u in rng.sample(others, 2) for op in wl.ops[u] if op.content][:2]
    return picked + foreign


async def check_foreign_ids(
    engine: HierarchicalMemory, world: World, db: Applied, tally: Tally, rng: random.Random
) -> None:
    """get/get_history/supersede/delete by another user's ids: not found, whatever the id's state."""
    by_status: dict[str, list[Version]] = defaultdict(list)
    for v in world.versions.values():
        by_status[v.status].append(v)
    for user in USERS + ["nobody-at-all"]:
        # Own ids (every state but deleted) are readable, and their history is the model's chain.
        for v in rng.sample(world.of(user), min(4, len(world.of(user)))):
            try:
                got = await engine.get(db.ids[v.label], user_id=user)
                history = [m.id for m in await engine.get_history(db.ids[v.label], user_id=user)]
            except MemoryNotFoundError:
                tally.error(f"{v.label} ({v.status}) is gone for its owner {user!r}")
                continue
            owned(tally, db, user, [got.id, *history], "get/get_history(own)")
            want = [db.ids[label] for label in world.chain_of(v.label)]
            if history != want:
                tally.error(f"get_history({v.label}) for {user!r}: {history}, expected {want}")
        foreign = [v for status in ("current", "superseded", "expired", "deleted") for v in
                   rng.sample([x for x in by_status[status] if x.user != user],
                              min(3, len([x for x in by_status[status] if x.user != user])))]
        for v in foreign:
            memory_id = db.ids[v.label]
            if v.status != "deleted":  # cache it: the cached path must check the owner too
                try:
                    await engine.get(memory_id, user_id=v.user)
                except MemoryNotFoundError:
                    tally.error(f"{v.label} of {v.user!r} ({v.status}) is gone for its owner")
            for name, call in [
                ("get", partial(engine.get, memory_id, user_id=user)),
                ("get_history", partial(engine.get_history, memory_id, user_id=user)),
                ("supersede", partial(engine.supersede, memory_id, "hijacked by another user", user_id=user)),
                ("delete", partial(engine.delete, memory_id, user_id=user)),
                ("delete whole chain", partial(engine.delete, memory_id, user_id=user, whole_chain=True)),
            ]:
                tally.foreign_probes += 1
                tally.queries += name.startswith("get")
                try:
                    got = await call()
                except MemoryNotFoundError:
                    continue
                except MemoryMCPError as exc:  # any other answer tells the caller the id exists
                    tally.leak(f"{name}({v.label} of {v.user!r}, {v.status}) by {user!r} raised "
                               f"{type(exc).__name__} instead of not-found: {exc}")
                    continue
                tally.leak(f"{name}({v.label} of {v.user!r}, {v.status}) by {user!r} "
                           f"returned {str(got)[:200]}")
        # A deleted id is gone for its owner too.
        for v in [x for x in by_status["deleted"] if x.user == user][:2]:
            tally.foreign_probes += 1
            try:
                await engine.get(db.ids[v.label], user_id=user)
                tally.error(f"deleted {v.label} is still readable by its owner {user!r}")
            except MemoryNotFoundError:
                pass


def _ranked(results: Sequence[SearchResult], attr: str) -> list[tuple[str, float]]:
    return [(r.memory.metadata.get("label", "?"), getattr(r, attr)) for r in results]


async def compare_ranking(
    main: HierarchicalMemory, fresh: HierarchicalMemory, user: str, queries: Sequence[str], tally: Tally,
    db: Applied,
) -> None:
    """The same queries on the shared database and on one holding only this user's memories."""
    cases: list[tuple[Pos, dict[str, Any]]] = [
        ((None, None, None), {}),
        (("s1", "coder", "t2"), {}),
        (("s2", None, None), {"include_superseded": True}),
        ((None, None, None), {"categories": ["fact", "entity", "preference"]}),
    ]
    for query in queries:
        for pos, f in cases:
            where = f"{query!r} from {pos} {f}"
            # BM25: exactly the same scores, in exactly the same order.
            for name, mode in [("text_search", None), ("recall/text", "text")]:
                if mode is None:
                    a = await main.text_search(query, user, *pos, top_k=1000, **f)
                    b = await fresh.text_search(query, user, *pos, top_k=1000, **f)
                else:
                    a = await main.recall(query, user, *pos, top_k=1000, mode=mode, **f)
                    b = await fresh.recall(query, user, *pos, top_k=1000, mode=mode, **f)
                owned(tally, db, user, results_ids(a), name)
                tally.ranking_comparisons += 1
                if _ranked(a, "text_score") != _ranked(b, "text_score"):
                    tally.leak(f"{name} {where} for {user!r}: BM25 differs with other users present:\n"
                               f"   shared db {_ranked(a, 'text_score')}\n"
                               f"   alone     {_ranked(b, 'text_score')}")
            # Semantic: the same memories in the same order, the same similarities.
            a = await main.search(query, user, *pos, top_k=1000, **f)
            b = await fresh.search(query, user, *pos, top_k=1000, **f)
            owned(tally, db, user, results_ids(a), "search")
            tally.ranking_comparisons += 1
            sa, sb = _ranked(a, "similarity"), _ranked(b, "similarity")
            if [x for x, _ in sa] != [x for x, _ in sb] or any(
                    abs(x - y) > 1e-5 for (_, x), (_, y) in zip(sa, sb, strict=True)):
                tally.leak(f"search {where} for {user!r}: semantic ranking differs:\n   {sa}\n   {sb}")
            # Hybrid: the same order, up to near-ties that the seconds between the runs may swap
            # (recency decays with the age of a version written 'now': the single-user database is
            # written up to a minute after the shared one, which moves a score by up to ~1e-6 of
            # itself; another user's memories in the statistics would move it by far more).
            a = await main.recall(query, user, *pos, top_k=1000, **f)
            b = await fresh.recall(query, user, *pos, top_k=1000, **f)
            owned(tally, db, user, results_ids(a), "recall/hybrid")
            tally.ranking_comparisons += 1
            ha, hb = dict(_ranked(a, "score")), dict(_ranked(b, "score"))
            order_a, order_b = [x for x, _ in _ranked(a, "score")], [x for x, _ in _ranked(b, "score")]
            tolerance = 1e-5
            close = set(ha) == set(hb) and all(abs(ha[k] - hb[k]) <= tolerance for k in ha)
            misordered = close and order_a != order_b and any(
                ha[order_b[i]] < ha[order_b[i + 1]] - tolerance for i in range(len(order_b) - 1))
            if not close or misordered:
                tally.leak(f"recall {where} for {user!r}: hybrid ranking differs:\n   {_ranked(a, 'score')}\n"
                           f"   {_ranked(b, 'score')}")


# -- MCP layer -------------------------------------------------------------------------------------------


def _hits(result: Any, tally: Tally | None = None) -> list[str]:
    if result.is_error:
        text = " ".join(getattr(block, "text", "") for block in result.content)
        if tally is None:
            raise AssertionError(f"tool failed: {text}")
        tally.error(f"tool call failed: {text}")
        return []
    structured = result.structured_content
    items = structured.get("results", structured.get("memories", structured.get("versions", [])))
    return [item["id"] for item in items]


def _resource_json(result: Any) -> Any:
    (content,) = result.contents
    return json.loads(content.text)


def _context_ids(text: str) -> list[str]:
    if "<memories>" not in text:
        return []
    body = text.split("<memories>\n", 1)[1].split("\n</memories>", 1)[0]
    return [json.loads(line)["id"] for line in body.splitlines()]


async def check_mcp(
    client: Any, world: World, db: Applied, wl: Workload, tally: Tally, rng: random.Random
) -> None:
    async def call(name: str, **args: Any) -> Any:
        tally.mcp_calls += 1
        return await client.call_tool(name, args)

    # The server's default user stores nothing: it must see nothing of anyone.
    for name, args in [
        ("recall", {"query": "Project Phoenix budget"}),
        ("recall", {"query": "vault codeword", "mode": "text"}),
        ("recall", {"query": "Acme Corp", "mode": "hybrid"}),
        ("list_memories", {"include_superseded": True}),
    ]:
        got = _hits(await call(name, **args), tally)
        owned(tally, db, DEFAULT_USER, got, f"mcp {name} without user_id")
    stats = _resource_json(await client.read_resource("memory://stats"))
    tally.queries += 1
    if stats["total"] != 0:
        tally.leak(f"memory://stats (default user {DEFAULT_USER!r}): {stats}")
    prompt = await client.get_prompt("memory_context", {"query": "vault codeword Project Phoenix"})
    owned(tally, db, DEFAULT_USER, _context_ids(prompt.messages[0].content.text),
          "memory_context without user_id")

    for user in USERS:
        # Counts.
        stats = _resource_json(await client.read_resource(f"memory://users/{user}/stats"))
        tally.queries += 1
        want = world.stats(user) | {"users": 1}
        if {k: stats.get(k, {}) for k in want} != want:
            tally.error(f"memory://users/{user}/stats = {stats}, expected {want}")
        # Listings: exact sets, pages included.
        listings: list[dict[str, Any]] = [
            {}, {"include_superseded": True}, {"session_id": "s1"},
            {"session_id": "s2", "agent_id": "planner"},
        ]
        for args in listings:
            got = _hits(await call("list_memories", user_id=user, limit=500, **args), tally)
            pos = (args.get("session_id"), args.get("agent_id"), None)
            owned(tally, db, user, got, f"mcp list_memories {args}")
            want_ids = expect_ids(world, db, user, pos, all_levels=True,
                                  include_superseded=bool(args.get("include_superseded")))
            if got != want_ids:
                tally.error(f"mcp list_memories({user!r}, {args}): {len(got)} listed, "
                            f"expected {len(want_ids)}")
        paged, offset = [], 0
        while offset is not None:
            page = await call("list_memories", user_id=user, limit=4, offset=offset)
            listed = _hits(page, tally)
            owned(tally, db, user, listed, "mcp list_memories page")
            paged += listed
            offset = (page.structured_content or {}).get("next_offset")
        if paged != expect_ids(world, db, user, (None, None, None), all_levels=True):
            tally.error(f"mcp list_memories({user!r}) paged by 4 differs from the model")
        # Ranked reads from random positions.
        for query in rng.sample(own_queries(wl, user, rng), 4):
            pos = (*rng.choice(READ_POSITIONS)[:2], None)  # recall over MCP takes no turn_id
            ids = dict(zip(("session_id", "agent_id", "turn_id"), pos, strict=True))
            ids = {k: v for k, v in ids.items() if v is not None}
            allowed = set(expect_ids(world, db, user, pos)) | set(
                expect_ids(world, db, user, pos, include_superseded=True))
            for mode in ("hybrid", "semantic", "text"):
                result = await call("recall", query=query, user_id=user, mode=mode, top_k=20, **ids)
                got = _hits(result, tally)
                owned(tally, db, user, got, f"mcp recall/{mode} {query!r} {pos}")
                if not set(got) <= allowed:
                    tally.error(f"mcp recall/{mode} {query!r} {pos} for {user!r}: "
                                f"out of scope {set(got) - allowed}")
                got = _hits(await call("recall", query=query, user_id=user, mode=mode, top_k=20,
                                       include_superseded=True, **ids), tally)
                owned(tally, db, user, got, f"mcp recall/{mode} with superseded {query!r} {pos}")
            prompt = await client.get_prompt("memory_context", {
                "query": query, "user_id": user, "session_id": pos[0] or "", "top_k": "10"})
            tally.mcp_calls += 1
            got = _context_ids(prompt.messages[0].content.text)
            owned(tally, db, user, got, f"memory_context {query!r}")
        # History: own ids give the model's chain; foreign ids are errors, and so are writes to them.
        mine = world.of(user)
        for v in rng.sample(mine, min(2, len(mine))):
            got = _hits(await call("history", memory_id=db.ids[v.label], user_id=user), tally)
            owned(tally, db, user, got, "mcp history(own)")
            if got != [db.ids[label] for label in world.chain_of(v.label)]:
                tally.error(f"mcp history({v.label}) for {user!r} differs from the model")
        others = [v for v in world.versions.values() if v.user != user]
        for v in rng.sample(others, 3):
            for name, args in [("history", {}), ("forget", {}), ("supersede", {"new_content": "hijacked"})]:
                result = await call(name, memory_id=db.ids[v.label], user_id=user, **args)
                tally.foreign_probes += 1
                tally.queries += name == "history"
                if not result.is_error:
                    tally.leak(f"mcp {name}({v.label} of {v.user!r}) by {user!r} succeeded: "
                               f"{result.structured_content}")
        # The user's resource, URI-encoded.
        uri = f"memory://users/{quote(user, safe='')}/memories?limit=500"
        listed = [m["id"] for m in _resource_json(await client.read_resource(uri))["memories"]]
        tally.mcp_calls += 1
        owned(tally, db, user, listed, f"resource {uri}")
        if listed != expect_ids(world, db, user, (None, None, None), all_levels=True):
            tally.error(f"resource {uri}: {len(listed)} memories, expected "
                        f"{len(expect_ids(world, db, user, (None, None, None), all_levels=True))}")


# -- the tests -------------------------------------------------------------------------------------------


async def test_random_workload_leaks_nothing_across_users(
    tmp_path: Path, embedder: Any, monkeypatch: pytest.MonkeyPatch, database_for: Callable[..., Any]
) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    cache = CachingEmbedder(embedder)
    base_time = time.time()
    wl = Workload(rng, cache, base_time)
    await cache.prefill(wl.texts() + SHARED_QUERIES + ["what do I know", "warm up"])
    wl.generate()
    order = wl.interleaved()

    # The shared database: every user's operations, interleaved.
    world = World()
    main_db = Applied("shared")
    main = await open_engine(await database_for(tmp_path / "shared.db"), cache)
    # A second engine on the same database, as a second server process would be: its per-user vector
    # indexes and caches catch up from the change log, which must not mix users either.
    observer = await open_engine(await database_for(tmp_path / "shared.db"), cache)
    tally = Tally()
    try:
        half = len(order) // 2
        await apply_all(main, order[:half], world, main_db)
        for user in USERS:  # load the observer's partitions and cache while half is written
            for m in await observer.search("what do I know", user, top_k=1000):
                await observer.get(m.id, user_id=user)
        await apply_all(main, order[half:], world, main_db)
        for user in USERS + ["nobody-at-all"]:
            for pos in READ_POSITIONS[:4]:
                got = results_ids(await observer.search("what do I know", user, *pos, top_k=1000))
                owned(tally, main_db, user, got, f"second engine search({pos})")
                if sorted(got) != sorted(expect_ids(world, main_db, user, pos)):
                    tally.error(f"second engine: search({user!r}, {pos}) differs from the model")
            got = results_ids(await observer.text_search(wl.markers.get(user, "vault"), user, top_k=100))
            owned(tally, main_db, user, got, "second engine text_search(codeword)")
            for v in world.of(user)[:5]:
                if (await observer.get(main_db.ids[v.label], user_id=user)).user_id != user:
                    tally.leak(f"second engine get({v.label}) returned another user's memory")
        # Deduplication never crossed users: identical sentences stored by several users are several
        # memories, one per user (the model stores each add as a new memory; apply() checked each id).
        by_text: dict[str, set[str]] = defaultdict(set)
        for v in world.versions.values():
            if v.status != "deleted":
                by_text[v.content].add(v.user)
        shared_texts = {t: us for t, us in by_text.items() if len(us) > 1}
        assert len(shared_texts) >= 5, "the workload must make users store identical sentences"
        # ... and near-identical ones (different words, cosine at or above the 0.92 duplicate threshold).
        texts = list(by_text)
        vectors = np.stack([cache.vector(t) for t in texts])
        near_pairs = sum(
            1 for i, j in zip(*np.nonzero(np.triu(vectors @ vectors.T >= 0.92, k=1)), strict=True)
            if by_text[texts[i]] != by_text[texts[j]] or len(by_text[texts[i]]) > 1
        )
        assert near_pairs >= 10, "the workload must make users store near-identical sentences"

        as_of_choices = [base_time - days * 86400 for days in (30, 120, 250, 390)]
        await check_library_reads(main, world, main_db, wl, tally, rng, as_of_choices)
        await check_foreign_ids(main, world, main_db, tally, rng)

        # The whole database: counts add up, indexes agree.
        total = await main.stats()
        want_total = sum(world.stats(u)["total"] for u in USERS)
        if total.total != want_total or total.users != sum(1 for u in USERS if world.of(u)):
            tally.error(f"stats() = {total}, expected total {want_total}")
        assert await main.check() == {"links": [], "text_index": [], "vector_index": []}

        # Ranking: each user on the shared database versus alone.
        for user in USERS:
            alone_db = Applied(f"alone:{user}")
            alone_world = World()
            fresh = await open_engine(await database_for(tmp_path / f"alone-{USERS.index(user)}.db"), cache)
            try:
                await apply_all(fresh, wl.ops[user], alone_world, alone_db)
                queries = own_queries(wl, user, random.Random(USERS.index(user)))
                await compare_ranking(main, fresh, user, queries, tally, main_db)
                alone_stats = (await fresh.stats(user)).model_dump()
                if (await main.stats(user)).model_dump() != alone_stats:
                    tally.leak(f"stats({user!r}) differ with other users present: {alone_stats}")
            finally:
                await fresh.close()
    finally:
        await observer.close()
        await main.close()
    library_queries = tally.queries

    # The MCP layer over the same database, in-process, with the same (cached) embedder.
    original = HierarchicalMemory.create.__func__  # type: ignore[attr-defined]

    async def create(cls: type[HierarchicalMemory], config: Any = None, **kwargs: Any) -> HierarchicalMemory:
        kwargs.setdefault("embedder", cache)
        return await original(cls, config, **kwargs)

    monkeypatch.setattr(HierarchicalMemory, "create", classmethod(create))
    settings = ServerSettings(**await database_for(tmp_path / "shared.db"), user_id=DEFAULT_USER, **CONFIG)
    async with client_session(build_server(settings)) as client:
        deadline = time.monotonic() + 120
        while not (await client.call_tool("recall", {"query": "warm up"})).structured_content[
                "semantic_ready"]:
            assert time.monotonic() < deadline, "the server's engine never became semantic-ready"
            await anyio.sleep(0.05)
        await check_mcp(client, world, main_db, wl, tally, rng)

    # Nothing the refused writes attempted changed anything.
    async with await open_engine(await database_for(tmp_path / "shared.db"), cache) as after:
        for user in USERS:
            if (await after.stats(user)).model_dump() != world.stats(user) | {"users": 1}:
                tally.error(f"stats({user!r}) changed after the MCP phase")
        assert await after.check() == {"links": [], "text_index": [], "vector_index": []}

    versions = [v for v in world.versions.values()]
    status = Counter(v.status for v in versions)
    elapsed = time.monotonic() - started
    print(
        f"\n[isolation] seed={SEED} soak={SOAK}: {len(USERS)} users, {len(order)} operations, "
        f"{len(versions) - status['deleted']} memory versions stored ({status['current']} current, "
        f"{status['superseded']} superseded, {status['expired']} expired; {status['deleted']} deleted), "
        f"{len(shared_texts)} sentences stored verbatim by several users, {near_pairs} pairs of "
        f"near-identical sentences (cosine >= 0.92) held by different users; "
        f"{tally.queries} cross-user read queries ({library_queries} library, "
        f"{tally.queries - library_queries} MCP; "
        f"{tally.mcp_calls} MCP calls in all), {tally.foreign_probes} foreign-id probes, "
        f"{tally.ranking_comparisons} ranking comparisons against single-user databases; "
        f"leaks found: {len(tally.leaks)}; other errors: {len(tally.errors)}; {elapsed:.1f}s"
    )
    assert not tally.leaks, f"{len(tally.leaks)} leaks:\n" + "\n".join(tally.leaks[:30])
    assert not tally.errors, f"{len(tally.errors)} errors:\n" + "\n".join(tally.errors[:30])


async def test_identical_sentences_are_never_merged_or_absorbed_across_users(
    tmp_path: Path, embedder: Any, database_for: Callable[..., Any]
) -> None:
    """Deduplication and absorption act within one user only.

    Positive controls first show that each mechanism fires within a user (a re-add reinforces, a
    promotion by use absorbs the same fact below it); the same sentences held by other users must be
    left alone: one memory per user, never reinforced, closed or moved by someone else's writes."""
    cache = CachingEmbedder(embedder)
    same = "Prefers dark mode in every editor"
    # Near-identical and naming the same numbers and names, so within one user they are one fact.
    near = ["The quarterly budget for Project Phoenix is forty thousand euros",
            "The quarterly budget of Project Phoenix is forty thousand euros"]
    moved = "Keeps the Kestrel API runbook in the team wiki"
    await cache.prefill([same, moved, *near])
    assert float(cache.vector(near[0]) @ cache.vector(near[1])) >= 0.92, "near-identical probe too far apart"
    users = ["alice", "Alice", "alice ", "u1", "1", "carol%x"]
    async with await open_engine(await database_for(tmp_path / "dedup.db"), cache, promotion_recall_count=3) as mem:
        first = {u: await mem.add(same, u) for u in users}
        promoted_near = {u: await mem.add(near[i % 2], u, "s1", importance=0.9) for i, u in enumerate(users)}
        for stored in (first, promoted_near):
            assert len({m.id for m in stored.values()}) == len(users), (
                "a user's add returned another's memory")
            assert all(m.user_id == u and m.reinforcement_count == 0 for u, m in stored.items())
        assert all(m.scope_level.value == "user" for m in promoted_near.values())

        # Control: within one user the same sentence (and a near-identical one) reinforce.
        again = await mem.add(same, "alice", "s2")
        assert again.id == first["alice"].id and again.reinforcement_count == 1
        near_again = await mem.add(near[1], "alice")
        assert near_again.id == promoted_near["alice"].id and near_again.reinforcement_count == 1
        for u in users[1:]:
            for m in (first[u], promoted_near[u]):
                now = await mem.get(m.id, user_id=u)
                assert now.reinforcement_count == 0 and now.is_current, (
                    f"{u!r}'s memory changed by alice's re-add")

        # Promotion by use: alice's AGENT copy, recalled from three positions, moves up to its session and
        # absorbs alice's other copy in that session. bob's copies in the same places stay as they were.
        a_planner = await mem.add(moved, "alice", "s2", "planner")
        a_coder = await mem.add(moved, "alice", "s2", "coder")
        b_planner = await mem.add(moved, "bob", "s2", "planner")
        b_coder = await mem.add(moved, "bob", "s2", "coder")
        assert len({a_planner.id, a_coder.id, b_planner.id, b_coder.id}) == 4
        for turn in (None, "t1", "t2"):
            found = await mem.recall(moved, "alice", "s2", "planner", turn, top_k=3)
            assert a_planner.id in [r.memory.id for r in found]
            assert all(r.memory.user_id == "alice" for r in found)
        up = await mem.get(a_planner.id, user_id="alice")
        assert (up.session_id, up.agent_id) == ("s2", None), "control: promotion by use did not happen"
        absorbed = await mem.get(a_coder.id, user_id="alice")
        assert absorbed.superseded_by == a_planner.id, "control: no absorption"
        for m in (b_planner, b_coder):
            now = await mem.get(m.id, user_id="bob")
            assert now.is_current and now.superseded_by is None and (now.session_id, now.agent_id) == (
                m.session_id, m.agent_id), f"bob's memory was absorbed or moved by alice's promotion: {now}"
        for u in users:
            want = {same, near[users.index(u) % 2]} | ({moved} if u == "alice" else set())
            assert {m.content for m in await mem.get_all(u)} == want
        assert {m.id for m in await mem.get_all("bob")} == {b_planner.id, b_coder.id}
        assert await mem.check() == {"links": [], "text_index": [], "vector_index": []}


async def test_a_users_scores_do_not_move_when_other_users_write(
    tmp_path: Path, embedder: Any, database_for: Callable[..., Any]
) -> None:
    """BM25 (and semantic similarity) of one user are computed from that user's memories alone: after
    many other users store, supersede and delete memories full of the same words, every score of the
    first user is bit-for-bit what it was."""
    rng = random.Random(SEED + 1)
    cache = CachingEmbedder(embedder)
    mine = [
        "Prefers Go for backend work on Project Phoenix",
        "Has a standing meeting with Dr. Alvarez every Monday",
        "The deadline for Project Phoenix is June 45",
        "Decided to migrate the Kestrel API from MySQL to Postgres",
        "Their manager at Acme Corp is called Priya",
        "Reads about astronomy every weekend",
    ]
    crowd = list(dict.fromkeys(fill(t, rng) for _ in range(6) for _, t in TEMPLATES))
    queries = [
        "Project Phoenix", "Phoenix backend Go", "Dr. Alvarez meeting Monday", "Kestrel Postgres migration",
        "Acme Corp manager", "astronomy", "deadline June", "u1 owner", "the of and",
    ]
    await cache.prefill(mine + crowd + [c + " again" for c in crowd] + queries)
    base = time.time()
    async with await open_engine(await database_for(tmp_path / "scores.db"), cache) as mem:
        for i, text in enumerate(mine):
            refs = ["phoenix"] if i % 2 else None
            await mem.add(text, "alice", valid_from=base - (i + 1) * 86400, entity_refs=refs)

        async def snapshot() -> list[Any]:
            shot: list[Any] = []
            for q in queries:
                shot.append([(r.id, r.text_score) for r in await mem.text_search(q, "alice", top_k=100)])
                shot.append([(r.id, r.similarity) for r in await mem.search(q, "alice", top_k=100)])
                shot.append([r.id for r in await mem.recall(q, "alice", top_k=100, mode="text")])
            return shot

        before = await snapshot()
        assert any(before[0]), "the probe queries must find alice's memories"
        for n in range(30):
            user = f"crowd-{n:02d}"
            stored = []
            for text in rng.sample(crowd, 8):
                stored.append(await mem.add(text, user, rng.choice([None, "s1"]), entity_refs=["phoenix"]))
            await mem.supersede(stored[0].id, stored[2].content + " again", user_id=user)
            await mem.delete(stored[1].id, user_id=user)
        assert (await mem.stats()).total > 200
        after = await snapshot()
        assert after == before, "alice's ranking moved when other users wrote"
