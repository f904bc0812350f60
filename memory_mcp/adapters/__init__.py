"""The adapters behind the ports: storage engines, indexes, embedders, caches."""

# ONNX Runtime (1.23 to 1.31 measured) crashes the process with SIGSEGV when it is imported after
# usearch's compiled module, and works when imported before it. Every adapter module is imported
# through this package, so importing it here first keeps the order right for all of them.
import onnxruntime  # noqa: F401
