#!/usr/bin/env python3
"""bench_ab: two builds of one benchmark, alternating, and their ratio per figure.

    bench_ab.py --old PATH --new PATH [--rounds R] [--] ARGS...

runs `OLD ARGS... --json` and `NEW ARGS... --json` alternately, R times each (default 9),
so that both see the same machine load, and prints for every number in their JSON the
median of each build, the ratio, and the spread. Ratios read "> 1: the new build is
better": figures named *_per_s count up, every other figure (*_us, *_ms, ...) counts down.
Issue 23's process-pool bars are against an older commit's build of the same tool:
    bench_ab.py --old ../ca71dcf/build/release/tools/bench_process_pool \\
                --new build/release/tools/bench_process_pool -- --repeats 5 --only ac
Standard library only; the exit code is 0 whatever the figures.
"""
import argparse
import statistics

from bench_vs_python import run_json


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    args = [x for x in a.args if x != "--"]
    runs = {"old": [], "new": []}
    for _ in range(a.rounds):
        for side in ("old", "new"):
            runs[side].append(run_json([getattr(a, side)] + args + ["--json"]))
    print(f"old: {a.old}\nnew: {a.new}\nargs: {' '.join(args)}; medians of {a.rounds} alternating runs")
    print(f"  {'figure':28} {'old':>12} {'new':>12} {'new vs old':>11}   spread old / new")
    for key in runs["old"][0]:
        olds = [r[key] for r in runs["old"] if isinstance(r.get(key), (int, float))]
        news = [r[key] for r in runs["new"] if isinstance(r.get(key), (int, float))]
        if not olds or not news:
            continue
        o, n = statistics.median(olds), statistics.median(news)
        better = (n / o if key.endswith("_per_s") else o / n) if o and n else float("nan")
        print(f"  {key:28} {o:12.4g} {n:12.4g} {better:10.2f}x   {min(olds):.4g}-{max(olds):.4g} / "
              f"{min(news):.4g}-{max(news):.4g}")


if __name__ == "__main__":
    main()
