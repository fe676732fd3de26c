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
import argparse
import statistics
import sys
from pathlib import Path

from bench_vs_python import run_json

HERE = Path(__file__).resolve().parent
DEFAULT_PAREX = HERE.parent / "build" / "release" / "tools" / "bench_manager_pool"

ROWS = [  # key, label, higher is better, bar (ratio parex/python or None)
    ("manager_append_per_s", "Manager list.append from a child (ops/s)", True, 3),
    ("manager_start_ms", "Manager start + 1 proxy + shutdown (ms)", False, None),
    ("pool_map_per_s", "Pool(2).map over 1M ints (items/s)", True, 5),
    ("pool_apply_per_s", "Pool(2).apply one at a time (calls/s)", True, 10),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--parex", default=str(DEFAULT_PAREX))
    a = ap.parse_args()
    px, py = [], []
    for _ in range(a.rounds):
        px.append(run_json([a.parex, "--json", "--repeats", str(a.inner)]))
        py.append(run_json([sys.executable, str(HERE / "bench_manager_pool_python.py"), "--json",
                            "--repeats", str(a.inner)]))
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print(f"parex vs Python {sys.version.split()[0]} Manager and Pool: medians of {a.rounds} rounds x {a.inner}")
    print(f"  {'':44} {'parex':>12} {'Python':>12} {'ratio':>8}  bar")
    for key, label, higher, bar in ROWS:
        x, y = med(px, key), med(py, key)
        ratio = x / y if higher else y / x
        verdict = "" if bar is None else (f">= {bar}x: " + ("met" if ratio >= bar else "NOT met"))
        print(f"  {label:44} {x:12.4g} {y:12.4g} {ratio:7.1f}x  {verdict}")


if __name__ == "__main__":
    main()
