#!/usr/bin/env bash
# test.sh — sets everything up (scripts/setup.sh) and runs every test through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd build
ctest --output-on-failure -j "$(nproc)" "$@"
