"""The packaged MiniLM made fast on this machine: its int8 weights with int8 arithmetic.

The packaged export stores its weights as int8 but computes in float: ONNX Runtime turns every
weight back into float32 when it loads the model (90 MB held, and a load of ~0.3 s). Quantizing
the model dynamically instead (``onnxruntime.quantization``, per output channel) keeps the weights
int8 and runs the matrix products on int8 (activations quantized as they come): measured here on
2 cores, the session holds ~70 MB less, loads in under 0.1 s and embeds about 1.4 times as many
texts a second, with LoCoMo recall@1/5/10 within 0.01 of the float runtime's, hybrid and semantic.

Activations are quantized with the range of the whole run, so a text's vector would depend on the
texts run beside it: the embedder runs this model on one text at a time (see ``OnnxEmbedder``).

The derivation takes a few seconds once per machine (per model, ONNX Runtime and onnx version);
the result is kept in the user's cache directory with its SHA-256 beside it, written atomically,
and checked at every load. Whatever goes wrong here, the embedder runs the packaged model instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where derived models are kept: ``MEMORY_MCP_CACHE_DIR``, else the user's cache directory."""
    where = os.environ.get("MEMORY_MCP_CACHE_DIR")
    if where:
        return Path(where)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("memory_mcp", appauthor=False))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def quantized_model(source: Path, source_sha256: str) -> Path:
    """The dynamically quantized model derived from ``source`` (a verified file), made now if it
    is not in the cache yet. Raises OSError or the converter's error when it cannot be made."""
    from importlib.metadata import version  # onnx itself is imported by the deriving process only

    name = f"minilm-{source_sha256[:16]}-dynamic-int8-v2-ort{version('onnxruntime')}-onnx{version('onnx')}"
    folder = cache_dir()
    model, digest = folder / f"{name}.onnx", folder / f"{name}.sha256"
    try:
        if model.is_file() and digest.is_file() and digest.read_text().strip() == sha256_of(model):
            return model
    except OSError:
        pass
    log.info("preparing the embedding model for this machine (once, a few seconds): %s", model)
    folder.mkdir(parents=True, exist_ok=True)
    _sweep(folder, name)
    with tempfile.TemporaryDirectory(dir=folder, prefix=f".{name}-{os.getpid()}-") as tmp:
        work = Path(tmp)
        # In a process of its own: deriving peaks at ~500 MB, which this one would keep.
        done = subprocess.run(
            [sys.executable, "-m", __name__, str(source), str(work / "float.onnx"), str(work / "int8.onnx")],
            capture_output=True, text=True, timeout=600,
        )
        if done.returncode != 0:
            raise OSError(f"deriving the int8 model failed: {done.stderr.strip()[-500:]}")
        (work / "sha256").write_text(sha256_of(work / "int8.onnx") + "\n")
        # Two processes deriving at once write the same bytes; each rename is atomic.
        os.replace(work / "int8.onnx", model)
        os.replace(work / "sha256", digest)
    return model


def _sweep(folder: Path, name: str) -> None:
    """Remove what a derivation killed half way left behind (~110 MB): work directories of
    processes that no longer run."""
    import shutil

    for work in folder.glob(f".{name}-*"):
        pid = work.name[len(name) + 2 :].partition("-")[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(work, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: is it there? (PermissionError: there, but another user's)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _derive(source: Path, folded: Path, out: Path) -> None:
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The basic (machine-independent) optimisations fold each weight's int8 -> float into a float
    # constant: the float model that dynamic quantization takes.
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded)
    options.log_severity_level = 3
    onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    quiet = _Quiet()
    logging.getLogger().addFilter(quiet)  # the converter advises pre-processing on the root logger
    try:
        quantize_dynamic(str(folded), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=_wide_inputs(folded))
    finally:
        logging.getLogger().removeFilter(quiet)


def _wide_inputs(model_file: Path) -> list[str]:
    """The products that take the feed-forward layers' wide activations (after GELU, 4x the
    model's width) back to its width: those activations have the outliers that per-run int8 loses
    most on, so these 6 of the 36 weight products stay in float. Measured on LoCoMo, that keeps
    recall@1/5/10 within 0.01 of the float runtime (all 36 in int8: recall@5 0.010 lower)."""
    import onnx

    graph = onnx.load(str(model_file)).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    return [node.name for node in graph.node
            if node.op_type == "MatMul" and len(shape := shapes.get(node.input[1], ())) == 2 and shape[0] > shape[1]]


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


if __name__ == "__main__":
    _derive(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
