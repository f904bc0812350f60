#!/usr/bin/env bash
# Every benchmark, as published in docs/benchmarks/: speed and scale at 1k, 10k, 100k and 100k
# memories over 1,000 users (the peers up to 10k), then LoCoMo recall@k with the peers.
#
#   bench/run_all.sh [LOCOMO_JSON]      (default: ../shared/data/locomo/locomo-dev.json)
#
# The LoCoMo data is read in place and never copied into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/locomo/locomo-dev.json}"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q -e '.[bench]'
bench/peers/setup.sh
.venv/bin/python bench/suite.py
.venv/bin/python bench/locomo_eval.py --data "$data" --peers mem0,server-memory --out docs/benchmarks/locomo.md
