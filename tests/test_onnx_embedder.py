"""The default local embedder: all-MiniLM-L6-v2 on ONNX Runtime, checked against its pinned file,
agreeing with the sentence-transformers runtime of the same model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memory_mcp import EmbedderError, HierarchicalMemory, MemoryConfig
from memory_mcp.adapters import onnx_embedder, onnx_quantize
from memory_mcp.adapters.onnx_embedder import DIMENSION, OnnxEmbedder

TEXTS = [
    "Prefers dark mode in every editor",
    "Caroline: I went to the support group yesterday and it was so powerful.",
    "Chocolate and vanilla swirl.",
    "x",
    "日本語のテキストです",
    "word " * 600,  # longer than the model's 256 tokens: cut, as sentence-transformers cuts it
]


async def test_vectors_are_unit_length_float32_rows_of_the_model_dimension(embedder: OnnxEmbedder) -> None:
    vectors = await embedder.embed(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), DIMENSION)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (await embedder.embed([])).shape == (0, DIMENSION)


async def test_a_batch_gives_each_text_the_vector_it_gets_alone(embedder: OnnxEmbedder) -> None:
    """Batches are grouped by length and padded: neither may change a text's vector."""
    together = await embedder.embed(TEXTS)
    for text, vector in zip(TEXTS, together, strict=True):
        alone = (await embedder.embed([text]))[0]
        assert float(alone @ vector) > 0.9999


async def test_a_paraphrase_is_nearer_than_an_unrelated_sentence(embedder: OnnxEmbedder) -> None:
    a, b, c = await embedder.embed(["The user is allergic to peanuts", "Peanuts give the user an allergic reaction",
                                    "The train to Berlin leaves at noon"])
    assert float(a @ b) > float(a @ c) + 0.3


@pytest.mark.parametrize("which", [0, 1], ids=["model", "tokenizer"])
async def test_a_model_file_with_another_digest_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, which: int
) -> None:
    fake = tmp_path / "file"
    fake.write_bytes(b"not the model")
    files = list(onnx_embedder.packaged_files())
    files[which] = fake
    monkeypatch.setattr(onnx_embedder, "packaged_files", lambda: tuple(files))
    with pytest.raises(EmbedderError, match="is not the expected model file"):
        await OnnxEmbedder().warm_up()


async def test_a_model_loaded_early_is_the_one_the_embedder_uses(embedder: OnnxEmbedder) -> None:
    """load_early (the server calls it before importing the SDK) hands its session to the first
    embedder of the same thread count, which then embeds as any other."""
    onnx_embedder.load_early(threads=1)
    early = onnx_embedder._early[1].result(timeout=60)
    loaded = OnnxEmbedder(threads=1)
    await loaded.warm_up()
    assert loaded._model.value is early and 1 not in onnx_embedder._early
    assert np.allclose(await loaded.embed(TEXTS), await embedder.embed(TEXTS), atol=1e-4)


async def test_an_early_load_that_failed_is_tried_again_and_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = onnx_embedder.packaged_files()
    monkeypatch.setattr(onnx_embedder, "packaged_files", lambda: (tmp_path / "gone.onnx", real[1]))
    onnx_embedder.load_early(threads=1)
    with pytest.raises(EmbedderError, match="packaged model files are missing"):
        onnx_embedder._early[1].result(timeout=60)
    with pytest.raises(EmbedderError, match="packaged model files are missing"):
        await OnnxEmbedder(threads=1).warm_up()
    monkeypatch.setattr(onnx_embedder, "packaged_files", lambda: real)
    onnx_embedder.load_early(threads=1)  # nothing left over from the failed load: this one loads
    embedder = OnnxEmbedder(threads=1)
    await embedder.warm_up()
    assert (await embedder.embed(["works again"])).shape == (1, DIMENSION)


def test_the_local_backend_refuses_a_model_it_does_not_run(tmp_path: Path) -> None:
    config = MemoryConfig(db_path=tmp_path / "m.db", embedder_model="some/other-model")
    with pytest.raises(EmbedderError, match="sentence-transformers"):
        from memory_mcp.compose import make_embedder

        make_embedder(config)


def test_importing_usearch_and_then_the_package_does_not_crash() -> None:
    """ONNX Runtime crashes when imported after usearch's compiled module; the package imports it
    first. A program that imported usearch itself before memory_mcp would still crash, so this
    checks the order the package controls: the engine's own imports, then a model load."""
    script = (
        "import asyncio, tempfile, pathlib\n"
        "from memory_mcp import HierarchicalMemory, MemoryConfig\n"
        "async def main():\n"
        "    with tempfile.TemporaryDirectory() as t:\n"
        "        async with await HierarchicalMemory.create(MemoryConfig(db_path=pathlib.Path(t) / 'm.db')) as m:\n"
        "            await m.add('Prefers tea', user_id='u')\n"
        "            print(len(await m.recall('tea', user_id='u')))\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "1"


async def test_the_default_config_opens_with_the_onnx_runtime(tmp_path: Path) -> None:
    async with await HierarchicalMemory.create(MemoryConfig(db_path=tmp_path / "m.db")) as memory:
        assert isinstance(memory.embedder, OnnxEmbedder)
        assert memory.semantic_ready


@pytest.fixture
def derived(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, Path]:
    """The packaged model and the int8 model derived from it into an empty cache of its own."""
    monkeypatch.setenv("MEMORY_MCP_CACHE_DIR", str(tmp_path / "cache"))
    source = onnx_embedder.packaged_files()[0]
    return source, onnx_quantize.quantized_model(source, onnx_embedder.MODEL_SHA256)


async def test_the_int8_model_is_made_once_kept_and_made_again_when_damaged(
    derived: tuple[Path, Path], tmp_path: Path
) -> None:
    source, made = derived
    digest = made.with_suffix(".sha256")
    first = onnx_quantize.sha256_of(made)
    assert made.parent == tmp_path / "cache" and first == digest.read_text().strip()
    assert made.stat().st_size < source.stat().st_size * 1.5  # int8 weights, not the float copy (4x)
    stamp = made.stat().st_mtime_ns
    assert onnx_quantize.quantized_model(source, onnx_embedder.MODEL_SHA256) == made
    assert made.stat().st_mtime_ns == stamp  # kept, not made again
    with open(made, "r+b") as f:  # damaged in the cache: its digest no longer matches
        f.seek(1000)
        f.write(b"\0" * 64)
    assert onnx_quantize.quantized_model(source, onnx_embedder.MODEL_SHA256) == made
    assert onnx_quantize.sha256_of(made) == first  # made again, byte for byte
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([made.name, digest.name])


async def test_what_a_killed_derivation_left_is_removed_by_the_next(derived: tuple[Path, Path]) -> None:
    source, made = derived
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = made.parent / f".{made.stem}-{gone.stdout.strip()}-x1"  # its process has ended
    alive = made.parent / f".{made.stem}-{os.getpid()}-x2"  # a derivation still running
    for work in (left, alive):
        work.mkdir()
        (work / "float.onnx").write_bytes(b"half written")
    made.unlink()
    onnx_quantize.quantized_model(source, onnx_embedder.MODEL_SHA256)
    assert not left.exists() and alive.exists()


async def test_without_a_usable_cache_the_packaged_model_runs_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, embedder: OnnxEmbedder
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("MEMORY_MCP_CACHE_DIR", str(blocked / "cache"))
    fallback = OnnxEmbedder(threads=3)  # a thread count nothing loaded early
    await fallback.warm_up()
    assert fallback._model.value is not None and not fallback._model.value.one_text_per_run
    assert embedder._model.value is not None and embedder._model.value.one_text_per_run
    assert "running the packaged embedding model as it is" in caplog.text
    packaged, fast = await fallback.embed(TEXTS), await embedder.embed(TEXTS)
    assert np.all(np.sum(packaged * fast, axis=1) > 0.98)  # the two runtimes agree
