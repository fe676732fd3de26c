#!/usr/bin/env python3
"""bench_mpi: MpiExecutor side by side with raw Boost.MPI, on 1 client + 2 worker ranks.

Runs, alternating, --rounds R (default 5) jobs of each:
    mpirun -np 3 --oversubscribe build/release/tools/bench_mpi          (parex)
    mpirun -np 3 --oversubscribe build/release/tools/bench_mpi --raw    (raw Boost.MPI)
(the two cannot share a job: parex's worker ranks never leave parex::init), takes the
median of each figure and prints them with the ratios and the bars of issue 11:
    tiny calls >= 80% of the raw batched farm; one call's round trip <= 3x the raw ping-pong.
The raw farm ships tasks the way a Boost.MPI program does (a std::vector of structs that
Boost.MPI serializes); the int-array farm is the floor of MPI itself (no serialization,
no function named). Sets the one-node Open MPI environment itself (root, shared memory).
--baseline PATH alternates another build's parex jobs too (issue 23: against ca71dcf).
Standard library only; the exit code is 0 whether or not the bars are met.
"""
import argparse
import os
import statistics
from pathlib import Path

from bench_vs_python import run_json

HERE = Path(__file__).resolve().parent
DEFAULT_BENCH = HERE.parent / "build" / "release" / "tools" / "bench_mpi"
ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
       "OMPI_MCA_btl": "self,vader", "OMPI_MCA_pml": "ob1"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bench", default=str(DEFAULT_BENCH))
    ap.add_argument("--baseline", help="another build's bench_mpi (an older commit): its parex jobs alternate "
                    "with the others and its rows are printed beside")
    a = ap.parse_args()
    os.environ.update(ENV)
    launch = ["timeout", "300", "mpirun", "-np", "3", "--oversubscribe"]
    mpirun = launch + [a.bench]
    px, raw, base = [], [], []
    for _ in range(a.rounds):
        px.append(run_json(mpirun))
        if a.baseline:
            base.append(run_json(launch + [a.baseline]))
        raw.append(run_json(mpirun + ["--raw"]))
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print(f"MpiExecutor vs raw Boost.MPI, 1 client + 2 worker ranks (mpirun -np 3 --oversubscribe), "
          f"medians of {a.rounds} alternating jobs")
    rows = [
        ("raw farm, 1 task/message (tasks/s)", med(raw, "farm_1_per_s")),
        ("raw farm, 1000 tasks/message (tasks/s)", med(raw, "farm_1000_per_s")),
        ("int arrays, 1 per message (ints/s)", med(raw, "arrays_1_per_s")),
        ("int arrays, 1000 per message (ints/s)", med(raw, "arrays_1000_per_s")),
        ("raw ping-pong, rank 0 <-> 1 (us)", med(raw, "ping_pong_us")),
        ("parex: 100k tiny calls, submit each (calls/s)", med(px, "tiny_calls_per_s")),
        ("parex: map of 1M items, chunksize 1000 (items/s)", med(px, "map_items_per_s")),
        ("parex: one call's round trip (us)", med(px, "round_trip_us")),
    ]
    for label, v in rows:
        print(f"  {label:52} {v:14.4g}")
    farm = med(raw, "farm_1000_per_s")
    tiny, mapped = med(px, "tiny_calls_per_s"), med(px, "map_items_per_s")
    rt, pp = med(px, "round_trip_us"), med(raw, "ping_pong_us")
    verdict = lambda ok: "met" if ok else "NOT met"
    print(f"  tiny calls / raw batched farm: {tiny / farm:6.0%}   (bar >= 80%: {verdict(tiny >= 0.8 * farm)})")
    print(f"  map items  / raw batched farm: {mapped / farm:6.0%}   (one future per chunk, as the farm's messages)")
    print(f"  round trip / raw ping-pong:    {rt / pp:6.1f}x  (bar <= 3x: {verdict(rt <= 3 * pp)})")
    if base:
        print(f"  baseline {a.baseline}, same jobs:")
        for label, key in (("tiny calls (calls/s)", "tiny_calls_per_s"), ("map items (items/s)", "map_items_per_s"),
                           ("round trip (us)", "round_trip_us")):
            b, v = med(base, key), med(px, key)
            better = b / v if key.endswith("_us") else v / b
            print(f"    {label:24} {b:12.4g}  this build against it: {better:5.2f}x (> 1: better)")
        print(f"    round trip / raw ping-pong: {med(base, 'round_trip_us') / pp:6.1f}x")


if __name__ == "__main__":
    main()
