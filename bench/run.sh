#!/usr/bin/env bash
# Run the whole benchmark suite: bash bench/run.sh [--quick | --full] [options]
# (python -m bench --help lists the options; sizes can also come from BENCH_* variables).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m bench "$@"
