"""LoCoMo-format data, read in place (the data set is CC BY-NC: never copy it into the project).

Shared by ``locomo_eval.py`` (memory_mcp) and the peers' runners under ``bench/peers/``, so every
system is asked the same questions about the same turns. Needs nothing beyond the standard library.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KS = (1, 5, 10)
CATEGORIES = (1, 2, 3, 4)  # 5 is adversarial: no answer in the conversation
# The LongMemEval metrics reported beside R@k (see ranking_metrics).
METRICS = ("turn_all@5", "turn_all@10", "turn_ndcg@10", "session_all@5", "session_all@10", "session_ndcg@10")
CATEGORY_NAMES = {2: "temporal"}  # the only numbering every source agrees on
_SESSION = re.compile(r"session_(\d+)")
_DATE = re.compile(
    r"(?P<h>\d{1,2}):(?P<m>\d{2})\s*(?P<ampm>[ap]\.?m\.?)\s+on\s+(?P<d>\d{1,2})\s+(?P<mon>[A-Za-z]+),?\s+(?P<y>\d{4})",
    re.IGNORECASE,
)
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_DIA = re.compile(r"D:?(\d+):(\d+)")


def parse_locomo_time(text: str) -> datetime:
    """'1:56 pm on 8 May, 2023' -> 2023-05-08 13:56 UTC."""
    found = _DATE.search(text)
    if found is None:
        raise ValueError(f"unrecognised LoCoMo date {text!r}")
    hour = int(found["h"]) % 12 + (12 if found["ampm"].lower().startswith("p") else 0)
    month = _MONTHS[found["mon"][:3].lower()]
    return datetime(int(found["y"]), month, int(found["d"]), hour, int(found["m"]), tzinfo=UTC)


def evidence_ids(evidence: list[str]) -> set[str]:
    """Evidence dia_ids, tolerating the file's few malformed ones ('D8:6; D9:17', 'D:11:26')."""
    return {f"D{s}:{t}" for item in evidence for s, t in _DIA.findall(str(item))}


@dataclass
class Turn:
    dia_id: str
    session: int
    when: datetime  # the session's date and time
    text: str  # "Speaker: what was said", as stored


@dataclass
class Conversation:
    user_id: str
    turns: list[Turn]
    questions: list[dict[str, Any]]  # question, category, evidence (set of dia_ids)


def load(
    path: Path, limit: int | None = None, captions: bool = False
) -> tuple[list[Conversation], dict[str, int]]:
    """The conversations (the first ``limit``), and how many questions were skipped and why."""
    samples = json.loads(path.read_text(encoding="utf-8"))
    conversations, skipped = [], {"no_evidence": 0, "adversarial_or_other": 0}
    for sample in samples[:limit]:
        conv = sample["conversation"]
        turns = []
        sessions = sorted((int(m[1]), key) for key in conv if (m := _SESSION.fullmatch(key)))
        for number, key in sessions:
            when = parse_locomo_time(conv[f"{key}_date_time"])
            for turn in conv[key]:
                text = turn["text"]
                if captions and turn.get("blip_caption"):
                    text = f"{text} [shares {turn['blip_caption']}]"
                turns.append(Turn(turn["dia_id"], number, when, f"{turn['speaker']}: {text}"))
        dia_ids = {t.dia_id for t in turns}
        questions = []
        for qa in sample["qa"]:
            if qa.get("category") not in CATEGORIES:
                skipped["adversarial_or_other"] += 1
                continue
            wanted = evidence_ids(qa.get("evidence", [])) & dia_ids
            if not wanted:
                skipped["no_evidence"] += 1
                continue
            questions.append({"question": qa["question"], "category": qa["category"], "evidence": wanted})
        conversations.append(Conversation(f"locomo-{sample['sample_id']}", turns, questions))
    return conversations, skipped


def first_hit(ranked_dia_ids: list[list[str]], evidence: set[str]) -> int | None:
    """The rank (from 1) of the first result holding an evidence turn, None if none does."""
    return next((i for i, ids in enumerate(ranked_dia_ids, 1) if set(ids) & evidence), None)


def session_of(dia_id: str) -> str:
    """The session a turn belongs to: 'D3:14' -> 'D3'."""
    return dia_id.partition(":")[0]


def _dcg(gains: list[int]) -> float:
    # As LongMemEval computes it: rank 1 counts in full, rank i > 1 by 1 / log2(i).
    return sum(g if i < 2 else g / math.log2(i) for i, g in enumerate(gains, 1))


def ranking_metrics(ranked_dia_ids: list[list[str]], evidence: set[str], k: int = 10) -> dict[str, float]:
    """The retrieval metrics the LongMemEval authors report, at turn and at session level, for one
    question: ``all@k`` (every evidence item among the first k), ``ndcg@k`` (binary gains; the
    ideal ranking puts every evidence item first). At turn level the ranking is the results (one
    that holds several turns, a merged memory, holds each of them); at session level it is the
    sessions of the results in order of first appearance."""
    out: dict[str, float] = {}
    sessions: list[str] = list(dict.fromkeys(session_of(d) for ids in ranked_dia_ids for d in ids))
    for level, order, wanted in (
        ("turn", [set(ids) for ids in ranked_dia_ids], evidence),
        ("session", [{s} for s in sessions], {session_of(d) for d in evidence}),
    ):
        gains = [int(bool(items & wanted)) for items in order]
        ideal = _dcg([1] * min(len(wanted), k))
        for at in KS:
            out[f"{level}_all@{at}"] = float(wanted <= set().union(*order[:at]))
        out[f"{level}_ndcg@{k}"] = min(_dcg(gains[:k]) / ideal, 1.0) if ideal else 0.0
    return out


class RecallTally:
    """How many questions had an evidence turn among the first k results, overall and per category,
    with the LongMemEval metrics (:func:`ranking_metrics`) summed the same way."""

    def __init__(self) -> None:
        self.hits: dict[int | str, dict[int, int]] = defaultdict(lambda: dict.fromkeys(KS, 0))
        self.counts: dict[int | str, int] = defaultdict(int)
        self.sums: dict[int | str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.latencies: list[float] = []  # seconds, one per question

    def add(self, category: int, ranked_dia_ids: list[list[str]], evidence: set[str]) -> int | None:
        """Count one question's ranking (each result's dia_ids, best first); its first hit's rank."""
        rank = first_hit(ranked_dia_ids, evidence)
        metrics = ranking_metrics(ranked_dia_ids, evidence)
        for group in ("all", category):
            self.counts[group] += 1
            for k in KS:
                if rank is not None and rank <= k:
                    self.hits[group][k] += 1
            for name, value in metrics.items():
                self.sums[group][name] += value
        return rank

    def recall_at(self, group: int | str, k: int) -> float:
        return self.hits[group][k] / self.counts[group] if self.counts[group] else float("nan")

    def mean(self, group: int | str, metric: str) -> float:
        """The mean of a :func:`ranking_metrics` metric over the group's questions."""
        return self.sums[group][metric] / self.counts[group] if self.counts[group] else float("nan")
