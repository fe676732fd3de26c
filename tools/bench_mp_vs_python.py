#!/usr/bin/env python3
"""bench_mp_vs_python: parex's multiprocessing toolbox side by side with Python's.

Runs, alternating, --rounds R (default 3) rounds of
    build/release/tools/bench_mp --json --repeats K      (parex; --parex PATH)
    tools/bench_mp_python.py --json --repeats K          (Python, this interpreter, fork)
with K = --inner (default 3), takes the median of each figure over the rounds and prints
one table with ratios ("> 1: parex is better") and the bars of issue 9:
    Queue items/s >= 10x, Pipe one-way messages/s >= 5x, Process start+join <= Python's fork.
Standard library only; the exit code is 0 whether or not the bars are met.
"""
import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from bench_vs_python import run_json  # the same tool-runner as the pools' comparison

HERE = Path(__file__).resolve().parent
DEFAULT_PAREX = HERE.parent / "build" / "release" / "tools" / "bench_mp"

ROWS = [  # key, label, higher is better, bar (ratio parex/python or None)
    ("queue_int_per_s", "Queue put->get, ints (items/s)", True, 10),
    ("queue_1k_per_s", "Queue put->get, 1 KiB str (items/s)", True, 10),
    ("pipe_per_s", "Pipe one way (msgs/s)", True, 5),
    ("pipe_round_trip_us", "Pipe round trip (us)", False, None),
    ("lock_ops_per_s", "Lock acquire+release, 2 procs (ops/s)", True, None),
    ("increments_ms", "10 procs x 1000 locked increments (ms)", False, None),
    ("start_join_ms", "Process start + join (ms; Python: fork)", False, 1),
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
        py.append(run_json([sys.executable, str(HERE / "bench_mp_python.py"), "--json", "--repeats", str(a.inner)]))
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print(f"parex vs Python {sys.version.split()[0]} multiprocessing: medians of {a.rounds} rounds x {a.inner}")
    print(f"  {'':42} {'parex':>12} {'Python':>12} {'ratio':>8}  bar")
    for key, label, higher, bar in ROWS:
        x, y = med(px, key), med(py, key)
        ratio = x / y if higher else y / x
        verdict = "" if bar is None else (f">= {bar}x: " + ("met" if ratio >= bar else "NOT met"))
        print(f"  {label:42} {x:12.4g} {y:12.4g} {ratio:7.1f}x  {verdict}")
    print(f"  {'Process start + join, Python spawn (ms)':42} {'':12} {med(py, 'start_join_spawn_ms'):12.4g}")


if __name__ == "__main__":
    main()
