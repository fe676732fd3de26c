#!/usr/bin/env python3
"""Draws the benchmark plots of docs/07-how-it-works.md (PNG, into docs/) with matplotlib (Debian's
python3-matplotlib):

  docs/anchors.png          parex's process pool against Python's pools, the same run
                            (bench_process_pool --json beside tools/bench_python.py --json)
  docs/sweep_duration.png   calls/s of both pools against the length of a call, and the
                            share of the ideal (workers / duration) reached (bench_sweep)
  docs/sweep_chunksize.png  items/s of a map of tiny calls against its chunksize (bench_sweep)

    python3 tools/plot_benchmarks.py [--build build/release] [--rounds 3] [--out docs] [--python PATH]

Every figure is a median: over --rounds alternating runs for the anchors, over the tool's
own repeats for the sweeps. Build the release preset first (cmake --preset release &&
cmake --build build/release -j2)."""
import argparse
import pathlib
import statistics
import subprocess
import sys

try:
    import matplotlib
except ImportError:
    sys.exit("plot_benchmarks.py needs matplotlib: apt-get install python3-matplotlib")

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_vs_python import run_json  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent

# (parex key, Python key, label, higher is better)
ANCHOR_ROWS = [
    ("submit_calls_per_s", "ppe_submit_calls_per_s", "(a) tiny calls/s", True),
    ("map_items_per_s", "pool_map_items_per_s", "(b) map items/s\n(vs Pool.map)", True),
    ("round_trip_us", "ppe_round_trip_us", "(c) round trip, µs", False),
    ("startup_ms", "ppe_startup_fork_ms", "(d) start-up, ms\n(vs fork)", False),
    ("payload_gb_per_s", "ppe_payload_gb_per_s", "(e) 64 MiB arg, GB/s", True),
]


def anchors(build, rounds, out, python):
    px, py = [], []
    for _ in range(rounds):
        px.append(run_json([str(build / "tools" / "bench_process_pool"), "--json", "--repeats", "3"]))
        py.append(run_json([python, str(HERE / "bench_python.py"), "--json", "--repeats", "3"]))
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], stdout=subprocess.PIPE,
                             text=True, check=True).stdout.strip()
    rows = [r for r in ANCHOR_ROWS if r[0] in px[0] and r[1] in py[0]]
    fig, axes = plt.subplots(1, len(rows), figsize=(3 * len(rows), 3.8))
    for ax, (pkey, ykey, label, higher) in zip(axes, rows):
        x = statistics.median(r[pkey] for r in px)
        y = statistics.median(r[ykey] for r in py)
        ax.bar(["parex", "Python"], [x, y], color=["#2a7ab9", "#c0c0c0"])
        ax.set_yscale("log")
        ax.set_ylim(min(x, y) / 3, max(x, y) * 2)  # both bars visible on the log scale
        ratio = x / y if higher else y / x
        ax.set_title(f"{label}\nparex {ratio:.1f}x {'higher' if higher else 'lower'}", fontsize=9)
    fig.suptitle(f"ProcessPoolExecutor, 2 workers: parex vs Python {version} (medians of {rounds})")
    fig.tight_layout()
    fig.savefig(out / "anchors.png", dpi=110)


def sweeps(build, out):
    s = run_json([str(build / "tools" / "bench_sweep"), "--json", "--repeats", "3"])
    pools = [("thread", "ThreadPoolExecutor", "#e08a1e"), ("process", "ProcessPoolExecutor", "#2a7ab9")]

    fig, (rate_ax, eff_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, name, color in pools:
        d = s[key]["duration"]
        us = sorted(int(k) for k in d)
        rate_ax.plot([max(u, 0.1) for u in us], [d[str(u)][0] for u in us], "o-", color=color, label=name)
        timed = [u for u in us if u > 0]
        eff_ax.plot(timed, [100 * d[str(u)][1] for u in timed], "o-", color=color, label=name)
    rate_ax.set(xscale="log", yscale="log", xlabel="call duration, µs (0 plotted at 0.1)", ylabel="calls/s")
    eff_ax.set(xscale="log", xlabel="call duration, µs", ylabel="% of ideal (workers / duration)", ylim=(0, 105))
    for ax in (rate_ax, eff_ax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"Throughput against call duration, {s['workers']} workers (submit each call, then collect)")
    fig.tight_layout()
    fig.savefig(out / "sweep_duration.png", dpi=110)

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for key, name, color in pools:
        c = s[key]["chunksize"]
        sizes = sorted(int(k) for k in c)
        ax.plot(sizes, [c[str(k)] for k in sizes], "o-", color=color, label=name)
    ax.set(xscale="log", yscale="log", xlabel="chunksize", ylabel="items/s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(f"map of x + 1 over 200k ints, {s['workers']} workers")
    fig.tight_layout()
    fig.savefig(out / "sweep_chunksize.png", dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(HERE.parent / "build" / "release"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(HERE.parent / "docs"))
    ap.add_argument("--python", default=sys.executable, help="the Python whose pools are the anchor")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    build = pathlib.Path(a.build)
    sweeps(build, out)
    anchors(build, a.rounds, out, a.python)
    print(f"wrote {out / 'anchors.png'}, {out / 'sweep_duration.png'}, {out / 'sweep_chunksize.png'}")


if __name__ == "__main__":
    main()
