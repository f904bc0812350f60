"""The Embedder contract: unit-length float32 rows, one per text, that place paraphrases together."""

from __future__ import annotations

import numpy as np
import pytest

from memory_mcp.memory.ports import Embedder

# Loading a real model takes up to seconds (once per test session).
pytestmark = pytest.mark.slow

TEXTS = ["The cat sat on the mat.", "A cat was sitting on the rug.", "Quarterly revenue grew by ten percent."]


async def test_the_embedder_is_ready_after_warming_up(any_embedder: Embedder) -> None:
    assert isinstance(any_embedder, Embedder)
    await any_embedder.warm_up()
    assert any_embedder.is_ready
    assert isinstance(any_embedder.model_name, str) and any_embedder.model_name


async def test_each_text_becomes_one_unit_length_float32_row(any_embedder: Embedder) -> None:
    vectors = await any_embedder.embed(TEXTS)
    assert isinstance(vectors, np.ndarray)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), await any_embedder.dimension())
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(len(TEXTS)), abs=1e-5)


async def test_a_paraphrase_is_nearer_than_an_unrelated_sentence(any_embedder: Embedder) -> None:
    cat, paraphrase, unrelated = await any_embedder.embed(TEXTS)
    assert float(cat @ paraphrase) > float(cat @ unrelated) + 0.2


async def test_rows_follow_the_order_of_the_texts_and_do_not_depend_on_the_batch(
    any_embedder: Embedder
) -> None:
    forward = await any_embedder.embed(TEXTS)
    backward = await any_embedder.embed(TEXTS[::-1])
    alone = await any_embedder.embed(TEXTS[1:2])
    np.testing.assert_allclose(backward[::-1], forward, atol=1e-4)
    np.testing.assert_allclose(alone[0], forward[1], atol=1e-4)


async def test_no_texts_give_no_rows(any_embedder: Embedder) -> None:
    vectors = await any_embedder.embed([])
    assert vectors.shape == (0, await any_embedder.dimension())
    assert vectors.dtype == np.float32
