#!/usr/bin/env python3
"""bench_balance: every parex backend beside Python's pools on uneven work and tiny items
(issue 19), alternating, in one run; prints the table of docs/07-how-it-works.md and, with --plot, draws
docs/balance.png (matplotlib: Debian's python3-matplotlib).

Each round runs, one after the other, with --workers W (default 4):
    build/release/tools/bench_balance --backend process --json --repeats K
    build/release/tools/bench_balance --backend thread  --json --repeats K
    mpirun -np W+1 build/release/tools/bench_balance --backend mpi --json --repeats K
    tools/bench_balance_python.py --json --repeats K
and the table shows each figure's median over --rounds R (default 3), K = --inner (3),
with the bars: makespan <= 1.15x the lower bound (ordered, unordered, submit each),
<= 1.3x with default options; three 10 ms calls beside a 600 ms one within 300 ms; the
default map of tiny items >= 50 % of the best chunksize.
  bench_balance.py [--rounds R] [--inner K] [--workers W] [--build DIR] [--no-mpi] [--plot]
Standard library only (but --plot).
"""
import argparse
import os
import pathlib
import statistics
import sys

from bench_vs_python import run_json

HERE = pathlib.Path(__file__).resolve().parent
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_btl": "self,vader", "OMPI_MCA_pml": "ob1"}
MODES = [("ordered", "ordered map, chunksize 1", 1.15), ("unordered", "unordered map, chunksize 1", 1.15),
         ("submit", "submit each", 1.15), ("default", "map, default options", 1.3)]
PY_MODES = [("imap1", "Pool.imap, chunksize 1"), ("poolmap", "Pool.map"), ("ppemap", "ProcessPoolExecutor.map")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--build", default=str(HERE.parent / "build" / "release"))
    ap.add_argument("--no-mpi", action="store_true")
    ap.add_argument("--plot", action="store_true")
    a = ap.parse_args()
    os.environ.update(MPI_ENV)
    bench = str(pathlib.Path(a.build) / "tools" / "bench_balance")
    common = ["--json", "--repeats", str(a.inner), "--workers", str(a.workers)]
    runs = {"process": [bench, "--backend", "process"] + common,
            "thread": [bench, "--backend", "thread"] + common}
    if not a.no_mpi:
        runs["mpi"] = ["timeout", "600", "mpirun", "--oversubscribe", "-np", str(a.workers + 1), bench,
                       "--backend", "mpi"] + common
    runs["python"] = [sys.executable, str(HERE / "bench_balance_python.py"), "--workers", str(a.workers),
                      "--json", "--repeats", str(a.inner)]
    got = {k: [] for k in runs}
    for _ in range(a.rounds):
        for k, cmd in runs.items():
            got[k].append(run_json(cmd))
    med = {k: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for k, rs in got.items()}

    print(f"bench_balance: {a.workers} workers, each run after 100k tiny calls of the same function; makespan / lower "
          f"bound, medians of {a.rounds} rounds x {a.inner}, alternating")
    backends = [k for k in ("process", "mpi", "thread") if k in med]
    for load, title in (("heavy", "400 items, 90 % 1 ms, 10 % 50 ms"), ("pareto", "400 items, Pareto 1.5 from 0.5 ms")):
        print(f"\n  {title}")
        print(f"    {'':28}" + "".join(f"{b:>12}" for b in backends) + "   bar")
        for mode, label, bar in MODES:
            vals = [med[b][f"{load}_{mode}"] for b in backends]
            ok = all(v <= bar for v in vals[:2])  # the remote backends carry the bar
            print(f"    {label:28}" + "".join(f"{v:11.2f}x" for v in vals) +
                  f"   <= {bar}x: {'met' if ok else 'NOT met'}")
        for mode, label in PY_MODES:
            print(f"    Python {label:21}{med['python'][f'{load}_{mode}']:11.2f}x")
    print("\n  three 10 ms calls beside a 600 ms one, done after (ms)")
    for b in backends + ["python"]:
        v = med[b]["quick_beside_slow_ms"]
        print(f"    {b:28}{v:11.1f}" + ("   <= 300 ms: " + ("met" if v <= 300 else "NOT met") if b != "python" else ""))
    print("\n  map of x * x over 1M ints: default options against the best chunksize (items/s)")
    for b in backends + ["python"]:
        d, best = med[b]["tiny_default_per_s"], med[b]["tiny_best_per_s"]
        bar = "" if b in ("python", "thread") else "   >= 50 %: " + ("met" if d >= 0.5 * best else "NOT met")
        print(f"    {b:28}{d:14,.0f} {best:14,.0f} {100 * d / best:6.0f} %{bar}")
    if a.plot:
        plot(med, backends, HERE.parent / "docs" / "balance.png")


def plot(med, backends, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (load, title) in zip(axes, (("heavy", "90 % 1 ms, 10 % 50 ms"), ("pareto", "Pareto 1.5 from 0.5 ms"))):
        labels, values, colors = [], [], []
        for b, c in zip(backends, ("tab:blue", "tab:green", "tab:gray")):
            for mode, label, _ in MODES:
                labels.append(f"{b}: {label}")
                values.append(med[b][f"{load}_{mode}"])
                colors.append(c)
        for mode, label in PY_MODES:
            labels.append(f"Python {label}")
            values.append(med["python"][f"{load}_{mode}"])
            colors.append("tab:orange")
        ax.barh(labels, values, color=colors)
        ax.axvline(1.15, color="black", linestyle="--", linewidth=0.8)
        ax.set_title(f"400 items, {title}")
        ax.set_xlabel("makespan / lower bound (1 = perfect)")
        ax.invert_yaxis()
    fig.suptitle("Uneven work after 100k tiny calls of the same function (bench_balance.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
