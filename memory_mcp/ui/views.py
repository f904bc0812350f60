"""What the pages show, shaped from the engine's answers: the tree of a user's positions, the
filters of a listing as a ``MemoryFilter``, a search result's score parts, times for people."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from ..memory import timeframe
from ..memory.config import MemoryConfig
from ..memory.models import Memory, MemoryCategory, ScopeLevel, SearchResult
from ..memory.ports import MemoryFilter, ScopeCount
from ..memory.scoring import factors, score_fusion
from ..memory.timeframe import Span

PAGE_SIZE = 50
TEXT_MATCHES = 500  # a listing filtered by words shows at most the best this many (10 pages)
TREE_POSITIONS = 2000  # positions (session, agent, turn) a user's tree shows at most
STATES = ("current", "superseded", "all")
CATEGORIES = [c.value for c in MemoryCategory]
LEVELS = [s.value for s in ScopeLevel]


@dataclass
class Node:
    """A position of the tree: its own counts and those of everything below it."""

    label: str
    ids: dict[str, str]  # session / agent / turn of this position
    current: int = 0
    total: int = 0
    own_current: int = 0
    own_total: int = 0
    children: dict[str, Node] = field(default_factory=dict)


@dataclass
class Row:
    """One line of the tree as the page writes it: a branch opens a list that ``closes`` lines end."""

    depth: int
    label: str
    query: str  # of the memory list of this position and below
    counts: str
    branch: bool
    closes: int = 0


@dataclass
class Summary:
    """The counts of a user's overview, summed over its positions (as ``MemoryStats`` names them)."""

    current: int = 0
    superseded: int = 0
    expired: int = 0
    total: int = 0
    scope_levels: dict[str, int] = field(default_factory=dict)


def summary(counts: list[ScopeCount]) -> Summary:
    out = Summary()
    for c in counts:
        out.current += c.current
        out.superseded += c.superseded
        out.expired += c.total - c.current - c.superseded
        out.total += c.total
        level = ScopeLevel.of(c.session_id, c.agent_id, c.turn_id).value
        out.scope_levels[level] = out.scope_levels.get(level, 0) + c.current
    return out


def tree(counts: list[ScopeCount]) -> tuple[Node, list[Row]]:
    """Sessions, then agents, then turns, each with the counts of what it holds; and its lines."""
    root = Node("user", {})
    for c in counts:
        node = root
        for name, value in (("session", c.session_id), ("agent", c.agent_id), ("turn", c.turn_id)):
            if value is None:
                continue
            key = f"{name}:{value}"
            if key not in node.children:
                node.children[key] = Node(f"{name} {value}", {**node.ids, name: value})
            node.current += c.current
            node.total += c.total
            node = node.children[key]
        node.current += c.current
        node.total += c.total
        node.own_current += c.current
        node.own_total += c.total
    rows: list[Row] = []

    def walk(node: Node, depth: int) -> None:
        for child in node.children.values():
            here = f" ({child.own_current:,} current here)" if child.children and child.own_total else ""
            rows.append(Row(depth, child.label, urlencode(child.ids),
                            f"{child.current:,} current · {child.total:,} stored{here}", bool(child.children)))
            if child.children:
                walk(child, depth + 1)
                rows[-1].closes += 1

    walk(root, 0)
    return root, rows


@dataclass
class Listing:
    """The filters of the memory list, read from a query string."""

    category: str = ""
    level: str = ""
    session: str = ""
    agent: str = ""
    turn: str = ""
    state: str = "current"
    q: str = ""
    as_of: str = ""  # ISO 8601 (a naive time is UTC): the versions current then
    page: int = 1

    @classmethod
    def of(cls, params: Any) -> Listing:
        def pick(name: str, allowed: list[str] | tuple[str, ...], default: str = "") -> str:
            value = params.get(name, default)
            return value if value in allowed else default

        try:
            page = max(1, min(int(params.get("page", "1")), 10**6))
        except ValueError:
            page = 1
        return cls(
            category=pick("category", CATEGORIES), level=pick("level", LEVELS), session=params.get("session", ""),
            agent=params.get("agent", ""), turn=params.get("turn", ""), state=pick("state", STATES, "current"),
            q=params.get("q", "").strip(), as_of=params.get("as_of", "").strip(), page=page,
        )

    def memory_filter(self, user_id: str) -> MemoryFilter:
        return MemoryFilter(
            user_id=user_id, session_id=self.session or None, agent_id=self.agent or None, turn_id=self.turn or None,
            all_levels=True, categories=[self.category] if self.category else None,
            scope_levels=[self.level] if self.level else None,
            include_superseded=self.state == "all", include_expired=self.state == "all",
            superseded_only=self.state == "superseded", as_of=self.as_of or None,
            limit=PAGE_SIZE + 1, offset=(self.page - 1) * PAGE_SIZE,
        )

    def query(self, user_id: str, **changes: Any) -> str:
        """The query string of this listing with some filters changed (empty ones left out)."""
        values = {"u": user_id, **{k: v for k, v in vars(self).items()}, **changes}
        return urlencode({k: v for k, v in values.items() if v not in ("", None) and not (k == "page" and v == 1)
                          and not (k == "state" and v == "current")})


@dataclass(frozen=True)
class ScoreParts:
    """Why a result ranks where it does: its two matches, then the factors that weigh them."""

    score: float
    relevance: float
    semantic: float | None
    text: float | None
    importance: float  # factor, 0..1
    recency: float  # factor, 0..1
    time: float | None  # factor, 0..1, when the question names a time (hybrid recall)
    # What the conversation stage (and reranking, when on) added to the product of the above, in
    # hybrid recall by score fusion; None where it moved nothing.
    moved: float | None = None


def score_parts(
    result: SearchResult, config: MemoryConfig, now: datetime, named: Span | None = None, hybrid: bool = False
) -> ScoreParts:
    by_importance, by_recency = factors(
        importance=result.memory.importance, age_days=(now - result.memory.valid_from).total_seconds() / 86400,
        importance_weight=config.importance_weight, recency_weight=config.recency_weight,
        half_life_days=config.recency_half_life_days,
    )
    by_time = None if named is None else timeframe.factor(result.memory.valid_from.timestamp(), named)
    moved = None
    if hybrid and config.fusion == "score" and result.similarity is not None:  # None: full text alone answered
        words = {} if result.text_score is None else {0: result.text_score}
        fused = score_fusion({0: result.similarity}, words, config.text_weight)[0]
        moved = result.score - fused * by_importance * by_recency * (1.0 if by_time is None else by_time)
    return ScoreParts(result.score, result.relevance, result.similarity, result.text_score, by_importance, by_recency,
                      by_time, moved if moved is not None and abs(moved) >= 0.0005 else None)


def when(value: datetime | None, seconds: bool = True) -> str:
    """A time as a person reads it, in UTC (the database's zone)."""
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "") + " UTC")


def position(memory: Memory) -> str:
    parts = [f"{name} {value}" for name, value in (("session", memory.session_id), ("agent", memory.agent_id),
                                                   ("turn", memory.turn_id)) if value]
    return ", ".join(parts)


def origin(memory: Memory) -> str:
    """Where a version started, when it was promoted since."""
    if memory.origin_level is None:
        return ""
    ids = [f"{name} {value}" for name, value in (("session", memory.origin_session_id),
                                                 ("agent", memory.origin_agent_id), ("turn", memory.origin_turn_id))
           if value]
    return f"{memory.origin_level.value}" + (f" ({', '.join(ids)})" if ids else "")
