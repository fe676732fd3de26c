#!/usr/bin/env python3
"""bench_manager_pool_vs_python: parex's Manager and Pool side by side with Python's.

Runs, alternating, --rounds R (default 3) rounds of
    build/release/tools/bench_manager_pool --json --repeats K    (parex; --parex PATH)
    tools/bench_manager_pool_python.py --json --repeats K        (Python, this interpreter)
with K = --inner (default 3), takes the median of each figure over the rounds and prints
one table with ratios ("> 1: parex is better") and the bars of issue 10:
    Manager list.append >= 3x, Pool.map >= 5x, Pool.apply >= 10x Python's.
Standard library only; the exit code is 0 whether or not the bars are met.
"""
from pathlib import Path

from bench_vs_python import side_by_side_main

HERE = Path(__file__).resolve().parent
DEFAULT_PAREX = HERE.parent / "build" / "release" / "tools" / "bench_manager_pool"

ROWS = [  # key, label, higher is better, bar (ratio parex/python or None)
    ("manager_append_per_s", "Manager list.append from a child (ops/s)", True, 3),
    ("manager_start_ms", "Manager start + 1 proxy + shutdown (ms)", False, None),
    ("pool_map_per_s", "Pool(2).map over 1M ints (items/s)", True, 5),
    ("pool_apply_per_s", "Pool(2).apply one at a time (calls/s)", True, 10),
]


def main():
    side_by_side_main("Manager and Pool", ROWS, DEFAULT_PAREX, HERE / "bench_manager_pool_python.py")


if __name__ == "__main__":
    main()
