"""The retrieval metrics ``bench/locomo_eval.py`` reports, on rankings worked out by hand."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from locomo_data import RecallTally, ranking_metrics  # noqa: E402


def test_all_at_k_needs_every_evidence_turn_and_counts_sessions_once() -> None:
    ranked = [["D1:1"], ["D2:4"], ["D1:7"], ["D3:2"], ["D2:9"], ["D1:3"]]
    got = ranking_metrics(ranked, {"D1:7", "D1:3"})
    assert got["turn_all@5"] == 0.0  # D1:3 is 6th
    assert got["turn_all@10"] == 1.0
    # Sessions in order of first appearance: D1, D2, D3; both evidence turns are in D1.
    assert got["session_all@1"] == 1.0


def test_ndcg_follows_longmemeval_discounts() -> None:
    # Evidence at ranks 2 and 4 of two wanted: DCG = 1 + 1/log2(4); ideal = 1 + 1 (ranks 1 and 2).
    ranked = [["D1:1"], ["D1:2"], ["D2:1"], ["D2:2"]]
    got = ranking_metrics(ranked, {"D1:2", "D2:2"})
    assert got["turn_ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / 2)
    # Sessions D1, D2 both hold evidence and come first: a perfect session ranking.
    assert got["session_ndcg@10"] == pytest.approx(1.0)
    assert ranking_metrics([["D9:9"]], {"D1:1"})["turn_ndcg@10"] == 0.0


def test_a_merged_result_counts_as_each_of_its_turns() -> None:
    got = ranking_metrics([["D1:1", "D1:2"]], {"D1:1", "D1:2"})
    assert got["turn_all@1"] == 1.0
    # For NDCG it is one relevant result where the ideal ranking has two.
    assert got["turn_ndcg@10"] == pytest.approx(0.5)


def test_the_tally_averages_per_category_and_overall() -> None:
    tally = RecallTally()
    assert tally.add(1, [["D1:1"], ["D1:2"]], {"D1:2"}) == 2
    assert tally.add(2, [["D1:5"]], {"D4:4"}) is None
    assert tally.recall_at("all", 1) == 0.0 and tally.recall_at("all", 5) == 0.5
    assert tally.mean(1, "turn_all@5") == 1.0 and tally.mean(2, "turn_all@5") == 0.0
    # NDCG: 1 for the first question (its one evidence turn at rank 2 counts in full), 0 for the other.
    assert tally.mean("all", "turn_ndcg@10") == pytest.approx(0.5)
