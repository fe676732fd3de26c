#!/usr/bin/env bash
# Builds and runs the whole test suite (soak tests excluded: run them with the "soak"
# test preset). Installs what is missing first.
#   scripts/test.sh            # the dev build (optimised, assertions on)
#   scripts/test.sh asan       # AddressSanitizer + UBSan
#   scripts/test.sh tsan       # ThreadSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-dev}"
scripts/setup-debian.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j"$(nproc)"
ctest --preset "$preset"
