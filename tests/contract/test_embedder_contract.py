"""The Embedder contract: unit-length float32 rows, one per text, that place paraphrases together."""

from __future__ import annotations

import numpy as np
import pytest

from memory_mcp.memory.ports import Embedder, TokenEmbedder

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


# -- token vectors (the local embedders; what reranking compares) -----------------------------


async def test_token_vectors_are_unit_rows_one_per_token_without_the_special_tokens(any_embedder: Embedder) -> None:
    assert isinstance(any_embedder, TokenEmbedder)
    found = await any_embedder.token_vectors(TEXTS + ["cat"])
    assert len(found) == len(TEXTS) + 1
    for tokens in found:
        assert tokens.ids.dtype == np.int64 and tokens.vectors.dtype == np.float32
        assert tokens.vectors.shape == (len(tokens.ids), await any_embedder.dimension())
        assert np.linalg.norm(tokens.vectors, axis=1) == pytest.approx(np.ones(len(tokens.ids)), abs=1e-5)
    assert len(found[-1].ids) == 1  # "cat" is one token of the vocabulary: no [CLS] or [SEP] beside it
    assert found[-1].ids[0] in found[0].ids.tolist()  # the same token in another text
    assert await any_embedder.token_vectors([]) == []


async def test_a_token_vector_depends_on_its_sentence_and_not_on_the_batch(any_embedder: Embedder) -> None:
    assert isinstance(any_embedder, TokenEmbedder)
    river, money, again = await any_embedder.token_vectors(
        ["We sat on the bank of the river.", "I opened an account at the bank.", "We sat on the bank of the river."])
    alone = (await any_embedder.token_vectors(["We sat on the bank of the river."]))[0]
    (bank,) = (await any_embedder.token_vectors(["bank"]))[0].ids.tolist()
    in_river, in_money = river.vectors[river.ids.tolist().index(bank)], money.vectors[money.ids.tolist().index(bank)]
    assert float(in_river @ in_money) < 0.95  # the same word, in another sense, is another vector
    np.testing.assert_allclose(again.vectors, river.vectors, atol=1e-4)
    np.testing.assert_allclose(alone.vectors, river.vectors, atol=1e-4)
