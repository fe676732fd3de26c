#!/usr/bin/env python3
"""bench_mp_vs_python: parex's multiprocessing toolbox side by side with Python's.

Runs, alternating, --rounds R (default 3) rounds of
    build/release/tools/bench_mp --json --repeats K      (parex; --parex PATH)
    tools/bench_mp_python.py --json --repeats K          (Python, this interpreter, fork)
with K = --inner (default 3), takes the median of each figure over the rounds and prints
one table with ratios ("> 1: parex is better") and the bars (issue 9's, raised by issue 23):
    Queue ints >= 20x, Queue 1 KiB >= 15x, Lock >= 5x, Pipe one-way messages/s >= 5x,
    Process start+join <= Python's fork.
Standard library only; the exit code is 0 whether or not the bars are met.
"""
from pathlib import Path

from bench_vs_python import side_by_side_main  # the same tool-runner as the pools' comparison

HERE = Path(__file__).resolve().parent
DEFAULT_PAREX = HERE.parent / "build" / "release" / "tools" / "bench_mp"

ROWS = [  # key, label, higher is better, bar (ratio parex/python or None): issue 23's
    ("queue_int_per_s", "Queue put->get, ints (items/s)", True, 20),
    ("queue_1k_per_s", "Queue put->get, 1 KiB str (items/s)", True, 15),
    ("pipe_per_s", "Pipe one way (msgs/s)", True, 5),
    ("pipe_round_trip_us", "Pipe round trip (us)", False, None),
    ("lock_ops_per_s", "Lock acquire+release, 2 procs (ops/s)", True, 5),
    ("increments_ms", "10 procs x 1000 locked increments (ms)", False, None),
    ("start_join_ms", "Process start + join (ms; Python: fork)", False, 1),
]


def main():
    py_median = side_by_side_main("multiprocessing", ROWS, DEFAULT_PAREX, HERE / "bench_mp_python.py")
    print(f"  {'Process start + join, Python spawn (ms)':44} {'':12} {py_median('start_join_spawn_ms'):12.4g}")


if __name__ == "__main__":
    main()
