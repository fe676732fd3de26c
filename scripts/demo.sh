#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs examples/map_demo, which maps a
# CPU-bound function over a generated data set and prints the speed-up over a serial loop.
#   scripts/demo.sh [map_demo options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target map_demo
exec build/release/examples/map_demo "$@"
