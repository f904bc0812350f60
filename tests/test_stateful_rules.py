"""Stateful property tests: random sequences of calls against a pure-Python model of docs/design.md.

Hypothesis drives the real engine (a fresh SQLite file per sequence, the real usearch index, FTS5,
and the session's MiniLM model, loaded once) through ``SyncHierarchicalMemory`` with random
sequences of ``add``, ``supersede``, ``delete``/``forget`` (one version or ``whole_chain``) and
``clear``, from random positions: 2 users x 2 sessions x 2 agents x 2 turns, that is the user, a
session, an agent, a turn of an agent and a turn with no agent. ``Model`` (plain Python, below)
states the rules, and every answer of the engine is checked against it:

* Visibility: a memory is seen from a position iff it belongs to the same user and each of its
  session/agent/turn ids is absent or the position's. ``get_all`` (``all_levels``) and ``clear``
  select the subtree of a position: the memories whose ids equal each id the position gives.
* Versions: ``supersede`` closes a current version; the new one keeps scope, category and
  importance; superseding a closed version raises ``AlreadySupersededError``, a deleted one
  ``MemoryNotFoundError``. ``get_history`` is the chain, oldest first, with its current flags.
  ``delete`` removes one version and links its neighbours to each other (``whole_chain``: every
  version); ``get`` / ``get_history`` of a deleted id raise ``MemoryNotFoundError``; ``clear``
  deletes every version at and below a position.
* TURN expiry: a write at a turn ends the session's other turns; all their memories expire, every
  version (a turn that has ended has no working memory left, superseded or not), and an expired
  memory is never returned, not even with ``include_superseded``.
* Isolation: as one user, nothing of the other user can be listed, counted, found (semantically or
  by full text), read, superseded or deleted. Both users write the same texts in the same order, so
  that the engine is always tempted to merge or leak them.
* Counts: ``stats(user)`` and ``stats()`` equal the model's.

The invariant, after every step, compares every stored row of each user field by field (scope,
content, category, importance, current and expired state, both supersession links, reinforcement
count, origin) and the stats. Check rules compare ``query`` / ``get_all`` (their order too: newest
first) from a random position (current, and with ``include_superseded``),
``get`` / ``get_history`` of a random id (deleted ones included), what another user may do with it,
and semantic and full-text search for the exact text of a random memory (deleted, superseded and
the other user's included): only what is visible may come back, and the memory itself first when
it is visible. At the end of each sequence, ``query`` and ``get_all`` are checked from every one of
the 38 positions.

``StatefulRules`` keeps duplicates and promotion out on purpose: every text comes from
``DISTINCT_FACTS`` (each user takes them in order, once; ``test_contents_are_far_from_duplicates``
checks that no two are closer than ``MAX_COSINE``, well below ``duplicate_similarity``), and
importance stays below every ``promote_*`` threshold. ``DuplicateRules`` exercises them: two facts,
each in spellings that differ only in case and spacing (the same text to the engine, the same
vector to the uncased MiniLM), importance on both sides of the thresholds, rules that restate a
fact where it lives with high importance, repeat a text from elsewhere, or supersede a memory with
another memory's text (so that the same fact lives at several scopes), and fewer positions, so
that the same fact often meets itself. There the model also states:

* Duplicates: an add whose text (modulo case and whitespace) is current on the position's path, or
  in the subtree where it would land, reinforces the oldest such memory (same id returned, count + 1,
  importance the max) instead of storing a second one; if that memory lives elsewhere, it moves to
  the narrowest position on both paths.
* Promotion by importance: a new memory climbs one level per threshold it clears and records where
  it came from (``origin_*``). A memory that moved up absorbs the same fact current in its new
  subtree: those close, pointing at it (``superseded_by``), and count as reinforcements. An
  absorbed memory is not a version of the absorbing memory's fact: deleting it leaves the absorbing
  memory's history and links alone.

Left out, and why:

* Near-paraphrases (different text, cosine >= ``duplicate_similarity``): whether two sentences
  cross the threshold is a property of the model, not a rule a test can predict; the texts here are
  chosen so that it never happens, and tests/test_lifecycle_rules.py covers paraphrases.
* Promotion by recall (``promotion_recall_count`` distinct positions): it depends on what a hybrid
  recall ranks into its ``top_k``; only ``search`` and ``text_search`` are called, which record no
  recall.
* Time: the TURN TTL (an hour) never elapses, and ``as_of`` / ``valid_from`` are not driven
  (tests/test_temporal.py and tests/test_lifecycle_rules.py cover them).
* Two choices the design leaves open are taken as the engine takes them: superseding a memory whose
  turn has ended is allowed, and the new version gets a fresh TTL; ``clear`` relinks nothing, so a
  version promoted out of a cleared scope keeps ``supersedes`` naming its deleted predecessor.

The scenarios at the end replay, step by step, sequences the machines found (shrunk by hand), so
that what they show fails on every run rather than when the random search happens upon it.

Runtime: about 50 s on this 2-core machine (25 sequences of 40 steps, then 25 of 35; longer when
the machine is shared; it varies with the sequences drawn: 20 to 60 s measured). A failure costs
more: hypothesis may spend up to 5 minutes shrinking it. ``MEMORY_MCP_SOAK=1`` runs 10 times as
many sequences, twice as long.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from conftest import _SharedEmbedder
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from memory_mcp import (
    AlreadySupersededError,
    MemoryCategory,
    MemoryConfig,
    MemoryFilter,
    MemoryNotFoundError,
    SyncHierarchicalMemory,
)
from memory_mcp.adapters.onnx_embedder import OnnxEmbedder

SOAK = os.environ.get("MEMORY_MCP_SOAK") == "1"

# -- the space of positions ---------------------------------------------------------------------------

Pos = tuple[str, str | None, str | None, str | None]  # (user_id, session_id, agent_id, turn_id)
USERS = ("alice", "bob")
OTHER_USER = {"alice": "bob", "bob": "alice"}


def _all_positions() -> list[Pos]:
    found: list[Pos] = []
    for user in USERS:
        found.append((user, None, None, None))
        for session in ("s1", "s2"):
            found.append((user, session, None, None))
            for agent in ("a1", "a2"):
                found.append((user, session, agent, None))
                found += [(user, session, agent, turn) for turn in ("t1", "t2")]
            found += [(user, session, None, turn) for turn in ("t1", "t2")]  # a turn with no agent
    return found


POSITIONS = _all_positions()
positions = st.sampled_from(POSITIONS)
categories = st.sampled_from([c.value for c in MemoryCategory])


def where(pos: Pos) -> dict[str, Any]:
    return {"user_id": pos[0], "session_id": pos[1], "agent_id": pos[2], "turn_id": pos[3]}


def level(pos: Pos) -> str:
    return "turn" if pos[3] else "agent" if pos[2] else "session" if pos[1] else "user"


# -- contents -----------------------------------------------------------------------------------------

DISTINCT_FACTS = [
    "Marta keeps three beehives on the garage roof",
    "The quarterly tax return is due on the fifteenth",
    "Jonas is allergic to peanuts and shellfish",
    "The staging database runs PostgreSQL sixteen",
    "Our cat Pixel only eats salmon kibble",
    "The violin lesson moved to Thursday evenings",
    "Grandma's lasagna recipe uses nutmeg in the bechamel",
    "The office wifi password rotates every Monday",
    "Lena prefers window seats on long flights",
    "The Kubernetes cluster autoscaler caps at forty nodes",
    "Tomatoes in the greenhouse need watering at dawn",
    "The mortgage rate is fixed until 2031",
    "Ravi supports the Chennai cricket franchise",
    "Invoices are archived as PDF in the finance share",
    "The hiking club meets at the Pinewood trailhead",
    "Espresso machine descaling happens every sixty days",
    "The novel draft has reached chapter nineteen",
    "Sofia speaks Portuguese with her grandparents",
    "Unit tests must pass before merging to trunk",
    "The telescope mirror was recoated in March",
    "Bicycle tyres are inflated to four bar",
    "The wedding anniversary falls on September ninth",
    "Chess openings studied lately: the Catalan",
    "The boiler service contract expires in spring",
    "Noah collects vintage Soviet postage stamps",
    "The API rate limit is nine hundred requests per minute",
    "Basil and mint grow on the kitchen windowsill",
    "The car insurance renewal quote came from Allianz",
    "Piano tuning is booked with Mr Okafor",
    "The marathon training plan peaks at thirty kilometres",
    "Dental checkup reminder for the twins in November",
    "The legacy billing service is written in COBOL",
    "Yuki is learning to bake sourdough bread",
    "The lake cabin key hides under the blue flowerpot",
    "Quarterly OKRs focus on customer retention",
    "The dog needs a rabies booster this year",
    "Solar panels produced eleven megawatt hours last year",
    "Aunt Beatrice lives in a lighthouse in Cornwall",
    "Pull requests need two approvals from code owners",
    "The vegetable box arrives every other Friday",
    "Climbing gym membership was paused for winter",
    "The thesis defense committee includes Professor Lindqvist",
    "Kombucha fermentation takes about ten days",
    "The passport expires in eighteen months",
    "Samir composes ambient music with modular synthesizers",
    "The printer on floor three jams with glossy paper",
    "Birdwatching log: a kingfisher by the canal",
    "The startup's runway is fourteen months",
    "Origami cranes decorate the nursery ceiling",
    "The on-call rotation switches every Wednesday noon",
    "Olive oil from the Crete trip is nearly finished",
    "The home router firmware needs an update",
    "Ines volunteers at the animal shelter on Sundays",
    "Kayak rental at the harbour costs twenty euros",
    "The monorepo build uses Bazel remote caching",
    "Great-grandfather emigrated from Sicily in 1912",
    "Ceramic glazes fire at twelve hundred degrees",
    "The electricity meter reading was 48213",
    "Board game night features Terraforming Mars",
    "The sailboat mooring fee is paid annually",
    "Frida's favourite painter is Hilma af Klint",
    "The search service indexes logs with OpenSearch",
    "A leaky faucet in the upstairs bathroom drips",
    "Mushroom foraging season starts after the first rains",
    "The podcast episode about volcanoes airs Tuesday",
    "Vaccination records are stored in the red folder",
    "The robotics team uses ROS on Raspberry Pi boards",
    "Snow tyres must be fitted before December",
    "Oskar's birthday party is at the bowling alley",
    "The accounting firm charges a flat monthly fee",
    "Lavender bushes line the path to the shed",
    "The data warehouse refresh runs at three in the morning",
    "Uncle Tadeusz repairs antique clocks",
    "The guitar strings were replaced with nickel wound",
    "Scuba certification requires a pool session first",
    "The attic insulation was upgraded last autumn",
    "Mei translates Japanese manga into English",
    "The library book about Byzantium is overdue",
    "Firewood is stacked behind the barn",
    "The translation memory tool exports TMX files",
]
MAX_COSINE = 0.85  # DISTINCT_FACTS stay this far apart; duplicate_similarity is 0.92

# DuplicateRules: two facts, each spelled several ways that the engine normalises to the same text.
SPELLINGS = {
    "dark": ["User prefers dark mode in the editor", "user PREFERS dark   mode in the editor",
             "  User prefers dark mode in the EDITOR "],
    "ferry": ["The ferry to the island leaves at seven", "THE FERRY TO THE ISLAND LEAVES AT SEVEN",
              "the ferry  to the island leaves at seven"],
}


def normalised(content: str) -> str:
    """What the engine compares to find an exact duplicate: the text modulo case and whitespace."""
    return " ".join(content.lower().split())


# -- the model ----------------------------------------------------------------------------------------

THRESHOLDS = {"turn": 0.6, "agent": 0.7, "session": 0.85}  # MemoryConfig's promote_* defaults


def visible_from(pos: Pos, row_pos: Pos) -> bool:
    """On the position's path: same user, and each id absent or the position's."""
    pairs = zip(row_pos[1:], pos[1:], strict=True)
    return row_pos[0] == pos[0] and all(mine in (None, theirs) for mine, theirs in pairs)


def in_subtree(pos: Pos, row_pos: Pos) -> bool:
    """Below the position (``all_levels``, ``clear``): each id the position gives is the row's."""
    pairs = zip(pos[1:], row_pos[1:], strict=True)
    return row_pos[0] == pos[0] and all(given is None or given == mine for given, mine in pairs)


def parent(pos: Pos) -> Pos:
    user, session, agent, turn = pos
    if turn is not None:
        return (user, session, agent, None)
    if agent is not None:
        return (user, session, None, None)
    return (user, None, None, None)


def promoted(pos: Pos, importance: float) -> Pos:
    while level(pos) != "user" and importance >= THRESHOLDS[level(pos)]:
        pos = parent(pos)
    return pos


def common(a: Pos, b: Pos) -> Pos:
    """The narrowest position on both paths."""
    ids: list[str | None] = []
    same = True
    for x, y in zip(a[1:], b[1:], strict=True):
        same = same and x == y
        ids.append(x if same else None)
    return (a[0], ids[0], ids[1], ids[2])


@dataclass
class Row:
    id: str
    seq: int  # creation order: query lists newest first, histories oldest first
    pos: Pos
    content: str
    category: str
    importance: float
    chain: list[str]  # the ids of every version of this fact, oldest first (shared by the versions)
    closed: bool = False  # superseded (or absorbed): valid_until is set
    expired: bool = False  # its turn ended
    supersedes: str | None = None
    superseded_by: str | None = None
    reinforcement_count: int = 0
    origin: Pos | None = None  # where it was first stored, once it has moved

    @property
    def live(self) -> bool:
        return not self.closed and not self.expired

    @property
    def user(self) -> str:
        return self.pos[0]

    def projection(self) -> tuple[Any, ...]:
        origin = (None, None, None, None) if self.origin is None else (level(self.origin), *self.origin[1:])
        return (
            self.id, *self.pos, level(self.pos), self.content, self.category, self.importance,
            not self.closed, self.expired, self.supersedes, self.superseded_by, self.reinforcement_count,
            *origin,
        )


FIELDS = (
    "id", "user_id", "session_id", "agent_id", "turn_id", "scope_level", "content", "category", "importance",
    "is_current", "is_expired", "supersedes", "superseded_by", "reinforcement_count", "origin_level",
    "origin_session_id", "origin_agent_id", "origin_turn_id",
)


def engine_projection(m: Any) -> tuple[Any, ...]:
    return (
        m.id, m.user_id, m.session_id, m.agent_id, m.turn_id, m.scope_level.value, m.content,
        m.category.value, m.importance, m.is_current, m.is_expired(), m.supersedes, m.superseded_by,
        m.reinforcement_count, m.origin_level.value if m.origin_level else None, m.origin_session_id,
        m.origin_agent_id, m.origin_turn_id,
    )


def differences(engine: list[tuple[Any, ...]], model: list[tuple[Any, ...]]) -> str:
    """Where the engine's memories differ from the model's, field by field, readably."""
    got, want = {t[0]: t for t in engine}, {t[0]: t for t in model}
    lines = [f"missing: {i} {want[i][6]!r} at {want[i][1:5]}" for i in want.keys() - got.keys()]
    lines += [f"unexpected: {i} {got[i][6]!r} at {got[i][1:5]}" for i in got.keys() - want.keys()]
    for i in want.keys() & got.keys():
        lines += [
            f"{i} {want[i][6]!r}: {name} is {a!r}, the model says {b!r}"
            for name, a, b in zip(FIELDS, got[i], want[i], strict=True) if a != b
        ]
    return "\n".join(lines) or "the same memories, in another order"


@dataclass
class Model:
    rows: dict[str, Row] = field(default_factory=dict)
    contents: dict[str, str] = field(default_factory=dict)  # every id ever returned -> its content
    owners: dict[str, str] = field(default_factory=dict)  # every id ever returned -> its user
    users: set[str] = field(default_factory=set)  # users the engine has a record of
    seq: itertools.count[int] = field(default_factory=itertools.count)

    # -- reading

    def of(self, user: str) -> list[Row]:
        return sorted((r for r in self.rows.values() if r.user == user), key=lambda r: -r.seq)

    def visible(self, pos: Pos, *, include_superseded: bool = False) -> list[str]:
        return [
            r.id for r in self.of(pos[0])
            if visible_from(pos, r.pos) and not r.expired and (include_superseded or not r.closed)
        ]

    def subtree(self, pos: Pos, *, include_superseded: bool = False) -> list[str]:
        return [
            r.id for r in self.of(pos[0])
            if in_subtree(pos, r.pos) and not r.expired and (include_superseded or not r.closed)
        ]

    def history(self, memory_id: str) -> list[tuple[str, bool]]:
        return [(i, not self.rows[i].closed) for i in self.rows[memory_id].chain]

    def stats(self, user: str | None) -> dict[str, Any]:
        rows = [r for r in self.rows.values() if user is None or r.user == user]
        live = [r for r in rows if not r.closed and not r.expired]
        superseded = sum(r.closed for r in rows)
        expired = sum(not r.closed and r.expired for r in rows)
        users = len({r.user for r in rows}) if user is None else int(user in self.users)
        return {
            "total": len(rows), "current": len(rows) - superseded - expired, "superseded": superseded,
            "expired": expired, "categories": dict(Counter(r.category for r in live)),
            "scope_levels": dict(Counter(level(r.pos) for r in live)), "users": users,
        }

    # -- writing

    def _new(
        self, memory_id: str, pos: Pos, content: str, category: str, importance: float, **extra: Any
    ) -> Row:
        assert memory_id not in self.contents, f"the engine reused the id {memory_id} for a new memory"
        row = Row(memory_id, next(self.seq), pos, content, category, importance, chain=[memory_id], **extra)
        self.rows[memory_id] = row
        self.contents[memory_id] = content
        self.owners[memory_id] = pos[0]
        return row

    def end_other_turns(self, pos: Pos) -> None:
        """A write at a turn ends the session's other turns: all their memories expire."""
        user, session, _, turn = pos
        for r in self.rows.values():
            if r.user == user and r.pos[1] == session and r.pos[3] is not None and r.pos[3] != turn:
                r.expired = True

    def duplicate_of(self, pos: Pos, target: Pos, content: str) -> Row | None:
        """The oldest current memory with the same text on the path, or in the subtree of the target."""
        same = [
            r for r in self.rows.values()
            if r.live and r.user == pos[0] and normalised(r.content) == normalised(content)
            and (visible_from(pos, r.pos) or in_subtree(target, r.pos))
        ]
        return min(same, key=lambda r: r.seq) if same else None

    def absorb(self, keep: Row) -> None:
        """The same fact current below where ``keep`` now lives closes, pointing at it."""
        for r in self.rows.values():
            if (r is not keep and r.live and in_subtree(keep.pos, r.pos)
                    and normalised(r.content) == normalised(keep.content)):
                r.closed, r.superseded_by = True, keep.id
                keep.reinforcement_count += 1

    def add(self, pos: Pos, content: str, category: str, importance: float, returned_id: str) -> Row:
        """Apply an add whose engine call returned ``returned_id``; returns the expected memory."""
        content = content.strip()
        self.users.add(pos[0])
        if pos[3] is not None:
            self.end_other_turns(pos)
        target = promoted(pos, importance)
        existing = self.duplicate_of(pos, target, content)
        if existing is not None:
            assert returned_id == existing.id, "an add of a current fact did not reinforce it"
            existing.reinforcement_count += 1
            existing.importance = max(existing.importance, importance)
            broader = common(existing.pos, target)
            if broader != existing.pos:
                existing.origin = existing.origin or existing.pos
                existing.pos = broader
            self.absorb(existing)
            return existing
        row = self._new(returned_id, target, content, category, importance,
                        origin=pos if target != pos else None)
        if target != pos:
            self.absorb(row)
        return row

    def supersede(self, old_id: str, content: str, new_id: str) -> Row:
        old = self.rows[old_id]
        new = self._new(new_id, old.pos, content.strip(), old.category, old.importance,
                        supersedes=old.id, origin=old.origin)
        old.chain.append(new_id)
        new.chain = old.chain
        old.closed, old.superseded_by = True, new_id
        return new

    def delete(self, memory_id: str, whole_chain: bool) -> int:
        row = self.rows[memory_id]
        if whole_chain:
            gone = [i for i in row.chain if i in self.rows]
            for i in gone:
                del self.rows[i]
            row.chain.clear()
            return len(gone)
        before, after = row.supersedes, row.superseded_by
        if before in self.rows:
            self.rows[before].superseded_by = after
        if after in self.rows and after in row.chain:  # a later version (not a memory that absorbed it)
            self.rows[after].supersedes = before
        row.chain.remove(memory_id)
        del self.rows[memory_id]
        return 1

    def clear(self, pos: Pos) -> int:
        gone = [r for r in self.rows.values() if in_subtree(pos, r.pos)]
        for r in gone:
            r.chain.remove(r.id)
            del self.rows[r.id]
        return len(gone)


# -- the engine, one fresh database per example ---------------------------------------------------------


def step(f: Any) -> Any:
    """Mark the machine as inside ``f`` until it returns, so that teardown knows whether a step failed
    (hypothesis calls teardown in a ``finally``: a failing sweep there would hide the first failure)."""

    @functools.wraps(f)
    def run(self: Rules, *args: Any, **kwargs: Any) -> Any:
        self.in_step = f.__name__
        result = f(self, *args, **kwargs)
        self.in_step = None
        return result

    return run


def ids(memories: list[Any]) -> list[str]:
    return [m.id for m in memories]


def raises(exc: type[BaseException], call: Any, *args: Any, **kwargs: Any) -> None:
    try:
        result = call(*args, **kwargs)
    except exc:
        return
    raise AssertionError(f"{call.__name__}{args} {kwargs} returned {result!r}, not {exc.__name__}")


class Rules(RuleBasedStateMachine):
    """What both machines share: the engine, the model, deletes, clears and every check."""

    embedder: ClassVar[OnnxEmbedder]
    workdir: ClassVar[Path]

    memories = Bundle("memories")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(dir=self.workdir))
        self.engine = SyncHierarchicalMemory(
            MemoryConfig(db_path=self.dir / "memory.db"), embedder=_SharedEmbedder(self.embedder)
        )
        self.model = Model()
        self.in_step: str | None = None  # the step that is running, or that failed

    def teardown(self) -> None:
        try:
            if self.in_step is None:  # every step passed: one sweep over every position at the end
                for pos in POSITIONS:
                    self.check_position(pos, include_superseded=False)
        finally:
            self.engine.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def same(engine: list[Any], model: list[Row], what: str) -> None:
        got, want = [engine_projection(m) for m in engine], [r.projection() for r in model]
        assert got == want, f"{what}:\n{differences(got, want)}"

    # -- writes shared by both machines

    @rule(target=memories, memory_id=memories, content=st.data())
    @step
    def supersede(self, memory_id: str, content: st.DataObject) -> Any:
        text = self.supersede_content(content, self.model.owners[memory_id])
        if text is None:
            return multiple()
        return self.replace(memory_id, text)

    def replace(self, memory_id: str, text: str) -> Any:
        row = self.model.rows.get(memory_id)
        if row is None:
            raises(MemoryNotFoundError, self.engine.supersede, memory_id, text)
            return multiple()
        if row.closed:
            raises(AlreadySupersededError, self.engine.supersede, memory_id, text)
            return multiple()
        got = self.engine.supersede(memory_id, text, user_id=row.user)
        expected = self.model.supersede(memory_id, text, got.id)
        self.same([got], [expected], "what supersede returned")
        return got.id

    @rule(memory_id=memories, whole_chain=st.booleans())
    @step
    def delete(self, memory_id: str, whole_chain: bool) -> None:
        if memory_id not in self.model.rows:
            raises(MemoryNotFoundError, self.engine.delete, memory_id, whole_chain=whole_chain)
            return
        expected = self.model.delete(memory_id, whole_chain)
        assert self.engine.forget(memory_id, whole_chain=whole_chain) == expected

    @rule(data=st.data())
    @precondition(lambda self: any(r.closed for r in self.model.rows.values()))
    @step
    def delete_a_closed_version(self, data: st.DataObject) -> None:
        """Forget a superseded (or absorbed) version: its neighbours are linked to each other."""
        closed = [r.id for r in sorted(self.model.rows.values(), key=lambda r: r.seq) if r.closed]
        memory_id = data.draw(st.sampled_from(closed), label="closed version")
        expected = self.model.delete(memory_id, whole_chain=False)
        assert self.engine.forget(memory_id, user_id=self.model.owners[memory_id]) == expected

    @precondition(lambda self: len(self.model.rows) >= 4)  # clearing less would mostly start over
    @rule(pos=positions)
    @step
    def clear(self, pos: Pos) -> None:
        assert self.engine.clear(**where(pos)) == self.model.clear(pos)

    def supersede_content(self, data: st.DataObject, user: str) -> str | None:
        raise NotImplementedError

    # -- checks

    @rule(pos=positions)
    @step
    def check_position(self, pos: Pos, include_superseded: bool = True) -> None:
        """query and get_all from a position: what is visible, in order (newest first)."""
        m, e = self.model, self.engine
        assert ids(e.query(MemoryFilter(**where(pos)))) == m.visible(pos), f"query from {pos}"
        assert ids(e.get_all(**where(pos))) == m.subtree(pos), f"get_all at {pos}"
        if include_superseded:
            assert ids(e.query(MemoryFilter(**where(pos), include_superseded=True))) == m.visible(
                pos, include_superseded=True
            ), f"query from {pos} with include_superseded"
            assert ids(e.get_all(**where(pos), include_superseded=True)) == m.subtree(
                pos, include_superseded=True
            ), f"get_all at {pos} with include_superseded"

    @rule(memory_id=memories)
    @step
    def check_get_and_history(self, memory_id: str) -> None:
        row = self.model.rows.get(memory_id)
        owner = self.model.owners[memory_id]
        if row is None:
            raises(MemoryNotFoundError, self.engine.get, memory_id)
            raises(MemoryNotFoundError, self.engine.get, memory_id, user_id=owner)
            raises(MemoryNotFoundError, self.engine.get_history, memory_id)
            return
        self.same([self.engine.get(memory_id, user_id=owner)], [row], "get")
        history = self.engine.get_history(memory_id, user_id=owner)
        assert [(h.id, h.is_current) for h in history] == self.model.history(memory_id), (
            f"history of {memory_id}"
        )

    @rule(memory_id=memories)
    @step
    def check_another_user_cannot_touch_it(self, memory_id: str) -> None:
        other = OTHER_USER[self.model.owners[memory_id]]
        raises(MemoryNotFoundError, self.engine.get, memory_id, user_id=other)
        raises(MemoryNotFoundError, self.engine.get_history, memory_id, user_id=other)
        raises(MemoryNotFoundError, self.engine.supersede, memory_id, "Not theirs to change", user_id=other)
        raises(MemoryNotFoundError, self.engine.delete, memory_id, user_id=other)
        raises(MemoryNotFoundError, self.engine.delete, memory_id, user_id=other, whole_chain=True)

    @rule(memory_id=memories, pos=positions)
    @step
    def check_search_for_its_text(self, memory_id: str, pos: Pos) -> None:
        """Both indexes: only what is visible from the position comes back, the memory itself first."""
        content = self.model.contents[memory_id]
        allowed = set(self.model.visible(pos))
        row = self.model.rows.get(memory_id)
        shown = row is not None and row.id in allowed
        semantic = self.engine.search(content, **where(pos), top_k=10)
        assert {r.id for r in semantic} <= allowed, f"semantic search from {pos} returned what it may not see"
        text = self.engine.text_search(content, **where(pos), top_k=10)
        assert {r.id for r in text} <= allowed, f"text search from {pos} returned what it may not see"
        if shown:
            # The text itself has cosine 1 with it (and with its other spellings), < MAX_COSINE with the rest.
            assert semantic and normalised(semantic[0].content) == normalised(content), (
                f"semantic search from {pos} did not find {memory_id} first"
            )
            assert memory_id in {r.id for r in text}, f"text search from {pos} did not find {memory_id}"

    @invariant()
    @step
    def every_row_and_count_matches(self) -> None:
        m, e = self.model, self.engine
        for user in USERS:
            stored = e.query(MemoryFilter(
                user_id=user, all_levels=True, include_superseded=True, include_expired=True,
            ))
            self.same(stored, m.of(user), f"every memory of {user}")
            assert e.stats(user).model_dump() == m.stats(user), f"stats({user})"
        assert e.stats().model_dump() == m.stats(None), "stats()"


class StatefulRules(Rules):
    """Distinct facts only, importance below every promotion threshold: visibility, versions, expiry,
    deletion, clearing and isolation, with no duplicate and no promotion in play."""

    def __init__(self) -> None:
        super().__init__()
        self.next_fact = dict.fromkeys(USERS, 0)  # each user takes DISTINCT_FACTS in order, once

    def take_fact(self, user: str) -> str | None:
        if self.next_fact[user] == len(DISTINCT_FACTS):
            return None
        self.next_fact[user] += 1
        return DISTINCT_FACTS[self.next_fact[user] - 1]

    def supersede_content(self, data: st.DataObject, user: str) -> str | None:
        return self.take_fact(user)

    @rule(
        target=Rules.memories, pos=positions, category=categories,
        importance=st.sampled_from([0.0, 0.2, 0.4, 0.55]),
    )
    @step
    def add(self, pos: Pos, category: str, importance: float) -> Any:
        content = self.take_fact(pos[0])
        if content is None:
            return multiple()
        got = self.engine.add(content, **where(pos), category=category, importance=importance)
        expected = self.model.add(pos, content, category, importance, got.id)
        self.same([got], [expected], "what add returned")
        return got.id


class DuplicateRules(Rules):
    """Two facts in several spellings, any importance: exact duplicates, reinforcement, promotion
    by importance and absorption, on top of everything ``Rules`` checks. Writes come from fewer
    positions (most of them alice's), so that the same fact often meets itself at another scope."""

    facts = st.sampled_from([text for spellings in SPELLINGS.values() for text in spellings])
    places = st.sampled_from([
        ("alice", None, None, None), ("alice", "s1", None, None), ("alice", "s1", "a1", None),
        ("alice", "s1", "a1", "t1"), ("alice", "s1", "a1", "t2"), ("alice", "s1", "a2", None),
        ("alice", "s1", None, "t1"), ("alice", "s2", None, None), ("bob", "s1", None, None),
    ])
    importances = st.sampled_from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85])  # mostly below the thresholds

    def supersede_content(self, data: st.DataObject, user: str) -> str | None:
        return data.draw(self.facts, label="new_content")

    def remember(
        self, pos: Pos, content: str, category: str, importance: float, *, check_returned: bool = True
    ) -> str:
        got = self.engine.add(content, **where(pos), category=category, importance=importance)
        expected = self.model.add(pos, content, category, importance, got.id)
        if check_returned:
            self.same([got], [expected], "what add returned")
        return got.id

    @rule(
        target=Rules.memories, pos=places, content=facts, category=categories, importance=importances,
    )
    @step
    def add(self, pos: Pos, content: str, category: str, importance: float) -> str:
        return self.remember(pos, content, category, importance)

    @rule(target=Rules.memories, memory_id=Rules.memories, pos=places, importance=importances)
    @step
    def repeat_elsewhere(self, memory_id: str, pos: Pos, importance: float) -> str:
        """Say the text of a stored (or once stored) memory again, from anywhere."""
        return self.remember(pos, self.model.contents[memory_id], "fact", importance)

    @rule(target=Rules.memories, memory_id=Rules.memories, text_of=Rules.memories)
    @step
    def supersede_with_the_text_of(self, memory_id: str, text_of: str) -> Any:
        """A new version that says what another memory says: the same fact in two places."""
        return self.replace(memory_id, self.model.contents[text_of])

    @rule(target=Rules.memories, memory_id=Rules.memories, importance=st.sampled_from([0.65, 0.75, 0.9]))
    @step
    def restate_as_important(self, memory_id: str, importance: float) -> Any:
        """Say a stored fact again, where it is, with an importance that lifts it: it moves up and
        absorbs the same fact below its new place."""
        row = self.model.rows.get(memory_id)
        if row is None:
            return multiple()
        return self.remember(row.pos, row.content, row.category, importance)


# -- the tests ------------------------------------------------------------------------------------------


def _settings(examples: int, steps: int) -> settings:
    return settings(
        max_examples=examples * (10 if SOAK else 1), stateful_step_count=steps * (2 if SOAK else 1),
        deadline=None, database=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture
def machines(embedder: OnnxEmbedder, tmp_path: Path) -> type[Rules]:
    Rules.embedder = embedder
    Rules.workdir = tmp_path
    return Rules


def test_contents_are_far_from_duplicates(embedder: OnnxEmbedder) -> None:
    """The premise of StatefulRules: no two DISTINCT_FACTS are near-duplicates; and of
    DuplicateRules: the spellings of a fact are the same text for the engine, the facts are not."""
    import asyncio

    facts = list(DISTINCT_FACTS)
    assert len({normalised(f) for f in facts}) == len(facts)
    vectors = asyncio.run(embedder.embed(facts))
    cosines = vectors @ vectors.T
    np.fill_diagonal(cosines, -1)
    worst = np.unravel_index(int(np.argmax(cosines)), cosines.shape)
    assert cosines.max() < MAX_COSINE, (facts[worst[0]], facts[worst[1]], float(cosines.max()))

    firsts = [spellings[0] for spellings in SPELLINGS.values()]
    vectors = asyncio.run(embedder.embed(firsts))
    cosines = vectors @ vectors.T
    np.fill_diagonal(cosines, -1)
    assert cosines.max() < MAX_COSINE
    for spellings in SPELLINGS.values():
        assert len({normalised(s) for s in spellings}) == 1


def test_random_writes_follow_the_rules(machines: type[Rules]) -> None:
    run_state_machine_as_test(StatefulRules, settings=_settings(examples=25, steps=40))


def test_random_duplicates_and_promotions_follow_the_rules(machines: type[Rules]) -> None:
    run_state_machine_as_test(DuplicateRules, settings=_settings(examples=25, steps=35))


# -- what the machines found, replayed step by step ------------------------------------------------------
#
# Each scenario below is a failing sequence one of the machines found, shrunk by hand. It drives the
# same rules and the same checks (the invariant after every step), so that the failure shows in
# every run, not only when the random search happens upon it.


class Replay:
    """Call a machine's rules by name, checking the invariant after each, as hypothesis does."""

    def __init__(self, machine: Rules):
        self.machine = machine
        machine.every_row_and_count_matches()

    def __getattr__(self, name: str) -> Any:
        rule_function = getattr(self.machine, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = rule_function(*args, **kwargs)
            self.machine.every_row_and_count_matches()
            return result

        return call


@contextmanager
def replaying(machine_class: type[Rules]) -> Iterator[Replay]:
    machine = machine_class()
    try:
        yield Replay(machine)
    finally:
        machine.teardown()


ALICE_S1 = ("alice", "s1", None, None)
DARK, FERRY = SPELLINGS["dark"], SPELLINGS["ferry"]


def test_the_end_of_a_turn_expires_every_version_of_its_memories(machines: type[Rules]) -> None:
    """A later turn of the session ends turn t1: its current memory expires, and so must the version
    it superseded. The engine expires only current versions (``valid_until IS NULL`` in
    ``_expire_other_turns``), so the old version stays unexpired: ``include_superseded`` queries from
    the ended turn list it while hiding its successor, and ``Memory.is_expired()`` is False."""
    with replaying(StatefulRules) as m:
        first = m.add(pos=("alice", "s1", "a1", "t1"), category="fact", importance=0.2)
        m.supersede(memory_id=first, content=None)
        m.add(pos=("alice", "s1", "a2", "t2"), category="fact", importance=0.2)
        m.check_position(pos=("alice", "s1", "a1", "t1"))


def test_an_add_that_absorbs_returns_the_memory_as_stored(machines: type[Rules]) -> None:
    """Restating a fact from the user level moves its oldest copy up and absorbs the copy in another
    session; the absorption counts as a reinforcement (stored ``reinforcement_count`` 2), but the
    Memory that ``add`` returns was read before the absorption and says 1."""
    with replaying(DuplicateRules) as m:
        m.add(pos=("alice", "s1", "a1", None), content=FERRY[0], category="fact", importance=0.1)
        m.add(pos=("alice", "s2", None, None), content=FERRY[1], category="fact", importance=0.1)
        m.add(pos=("alice", None, None, None), content=FERRY[2], category="fact", importance=0.1)


def test_forgetting_an_absorbed_memory_leaves_the_absorbing_memorys_history_alone(
    machines: type[Rules],
) -> None:
    """``first`` is superseded by ``current`` (a chain of two in s1); a copy of ``current``'s text in
    s2 is absorbed when ``current`` is promoted to the user (``superseded_by`` = ``current``). Forgetting
    that copy must not touch ``current``; the engine's ``delete`` takes ``superseded_by`` for a later
    version of the same chain, sets ``current.supersedes`` to the copy's (None) and re-roots
    ``current``'s chain at ``current``: ``get_history(current)`` loses ``first``."""
    with replaying(DuplicateRules) as m:
        first = m.add(pos=ALICE_S1, content=FERRY[0], category="fact", importance=0.1)
        current = m.replace(first, DARK[0])
        copy = m.add(pos=("alice", "s2", None, None), content=DARK[1], category="fact", importance=0.1)
        # current moves to the user level and absorbs copy (what this add returns is the previous test's
        # subject; the invariant still checks every stored row after it)
        m.remember(ALICE_S1, DARK[2], "fact", 0.9, check_returned=False)
        m.delete(memory_id=copy, whole_chain=False)
        m.check_get_and_history(memory_id=current)
