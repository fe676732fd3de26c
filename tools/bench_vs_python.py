#!/usr/bin/env python3
"""bench_vs_python: parex's ProcessPoolExecutor side by side with Python's own pools.

Runs, alternating, --rounds R (default 3) rounds of
    build/release/tools/bench_process_pool --json --repeats K     (parex, C++; --parex PATH)
    tools/bench_python.py --json --repeats K                      (Python, this interpreter)
with K = --inner (default 3), so that both see the same machine load. Each tool reports
the median over its K repeats; this script takes the median of each figure over the R
rounds and prints one table, with these bars:
  (a) submit+collect tiny calls       parex / ProcessPoolExecutor   >= 50
  (b) map over 1M ints, best chunk    parex / multiprocessing.Pool  >= 5 (goal 10)
  (c) warm round trip                 parex <= 50 us (goal 20)
  (d) start-up to first result        parex <= 20 ms
  (e) 64 MiB argument                 parex / raw pipe (same run)   >= 0.5
Ratios read "> 1: parex is better". The exit code is 0 whether or not the bars are met.
  bench_vs_python.py [--rounds R] [--inner K] [--only abcde] [--parex PATH] [--quick]
Standard library only.
"""
import argparse
import collections
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_PAREX = HERE.parent / "build" / "release" / "tools" / "bench_process_pool"
PYTHON_BENCH = HERE / "bench_python.py"


def run_json(cmd):
    """Runs one tool; returns the JSON object on the last line of its output that holds one."""
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    for line in reversed(out.splitlines()):
        if line.strip().startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON line in the output of {' '.join(map(str, cmd))}:\n{out}")


def side_by_side(title, rows, parex, python_script, rounds, inner):
    """Runs `parex --json --repeats inner` and `python_script --json --repeats inner`
    alternately, `rounds` times each; prints one table of medians with ratios ("> 1: parex
    is better") and each row's bar. rows: (key, label, higher_is_better, bar or None).
    Returns a function giving the median of a key over the Python rounds."""
    px, py = [], []
    for _ in range(rounds):
        px.append(run_json([parex, "--json", "--repeats", str(inner)]))
        py.append(run_json([sys.executable, str(python_script), "--json", "--repeats", str(inner)]))
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print(f"parex vs Python {sys.version.split()[0]} {title}: medians of {rounds} rounds x {inner}")
    print(f"  {'':44} {'parex':>12} {'Python':>12} {'ratio':>8}  bar")
    for key, label, higher, bar in rows:
        x, y = med(px, key), med(py, key)
        ratio = x / y if higher else y / x
        verdict = "" if bar is None else (f">= {bar}x: " + ("met" if ratio >= bar else "NOT met"))
        print(f"  {label:44} {x:12.4g} {y:12.4g} {ratio:7.1f}x  {verdict}")
    return lambda k: med(py, k)


def side_by_side_main(title, rows, default_parex, python_script):
    """main() of a side-by-side runner: --rounds R (default 3), --inner K (default 3),
    --parex PATH; then side_by_side. Returns its Python-median function."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--parex", default=str(default_parex))
    a = ap.parse_args()
    return side_by_side(title, rows, a.parex, python_script, a.rounds, a.inner)


def twin_main(name, measure):
    """main() of a Python twin of a C++ benchmark: --json and --repeats K; measure(K)
    returns {figure: [values]}; prints each figure's median as a table or one JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    med = {k: statistics.median(v) for k, v in measure(a.repeats).items()}
    if a.json:
        print(json.dumps(med))
    else:
        print(f"{name} (Python {sys.version.split()[0]}), medians of {a.repeats}")
        for k, v in sorted(med.items()):
            print(f"  {k:22} {v:14.6g}")


def combine(rounds):
    """Median of each key over the rounds; the most frequent value for chunksizes."""
    keys = {k for r in rounds for k in r}
    res = {}
    for k in keys:
        vals = [r[k] for r in rounds if k in r]
        if k.endswith("_chunksize"):
            res[k] = collections.Counter(vals).most_common(1)[0][0]
        else:
            res[k] = statistics.median(vals)
    return res


def fmt(v, unit=""):
    if v is None:
        return "-"
    s = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return f"{s} {unit}".rstrip()


def ratio(num, den):
    return None if num is None or den in (None, 0) else num / den


def met(ok):
    return "-" if ok is None else ("met" if ok else "NOT met")


def build_rows(c, res):
    """Table rows: (measurement, parex, Python (which pool), ratio, bar, met?)."""
    g = lambda d, k: d.get(k)
    rows = []
    if "a" in c.only:
        p, q = g(res, "submit_calls_per_s"), g(res, "ppe_submit_calls_per_s")
        r = ratio(p, q)
        rows.append(("(a) submit+collect tiny calls", fmt(p, "calls/s"), fmt(q, "calls/s") + " (PPE)",
                     fmt(r, "x"), "ratio >= 50", met(None if r is None else r >= 50)))
    if "b" in c.only:
        p, q, e = g(res, "map_items_per_s"), g(res, "pool_map_items_per_s"), g(res, "ppe_map_items_per_s")
        pc = res.get("pool_map_best_chunksize", "-")
        pc = "default" if pc is None else pc
        r = ratio(p, q)
        rows.append(("(b) map over 1M ints, best chunk", fmt(p, "items/s"),
                     fmt(q, "items/s") + f" (Pool.map, chunk {pc})", fmt(r, "x"), "ratio >= 5 (goal 10)",
                     met(None if r is None else r >= 5)
                     + ("" if r is None or r < 5 else ", goal met" if r >= 10 else ", goal NOT met")))
        rows.append(("", "", fmt(e, "items/s") + f" (PPE.map, chunk {res.get('ppe_map_best_chunksize', '-')})",
                     fmt(ratio(p, e), "x"), "", ""))
    if "c" in c.only:
        p, q = g(res, "round_trip_us"), g(res, "ppe_round_trip_us")
        rows.append(("(c) warm round trip", fmt(p, "us"), fmt(q, "us") + " (PPE)", fmt(ratio(q, p), "x"),
                     "parex <= 50 us (goal 20)",
                     met(None if p is None else p <= 50)
                     + ("" if p is None or p > 50 else ", goal met" if p <= 20 else ", goal NOT met")))
        rows.append(("    raw pipe ping-pong (context)", fmt(g(res, "raw_pipe_round_trip_us"), "us"), "", "", "", ""))
    if "d" in c.only:
        p = g(res, "startup_ms")
        for i, m in enumerate(("fork", "spawn")):
            q = g(res, f"ppe_startup_{m}_ms")
            rows.append(("(d) start-up to first result" if i == 0 else "", fmt(p, "ms") if i == 0 else "",
                         fmt(q, "ms") + f" (PPE, {m})", fmt(ratio(q, p), "x"),
                         "parex <= 20 ms" if i == 0 else "",
                         met(None if p is None else p <= 20) if i == 0 else ""))
    if "e" in c.only:
        p, q, v = g(res, "payload_gb_per_s"), g(res, "ppe_payload_gb_per_s"), g(res, "payload_vs_raw_pipe")
        rows.append(("(e) 64 MiB argument", fmt(p, "GB/s"), fmt(q, "GB/s") + " (PPE)", fmt(ratio(p, q), "x"),
                     "parex/raw pipe >= 0.5", met(None if v is None else v >= 0.5)))
        rows.append(("    parex / faster raw pipe", fmt(v, "x"), "", "", "", ""))
        rows.append(("    parex, a worker's first call", fmt(g(res, "payload_cold_gb_per_s"), "GB/s"), "", "", "", ""))
        rows.append(("    raw pipe, 1 MiB buffer", fmt(g(res, "raw_pipe_1mib_gb_per_s"), "GB/s"), "", "", "", ""))
        rows.append(("    raw pipe, default buffer", fmt(g(res, "raw_pipe_default_gb_per_s"), "GB/s"), "", "", "", ""))
    return rows


def print_table(rows):
    head = ("measurement", "parex", "Python (which pool)", "ratio", "bar", "met?")
    w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: " | ".join(s.ljust(w[i]) if i != 1 and i != 3 else s.rjust(w[i]) for i, s in enumerate(r))
    print(line(head).rstrip())
    print("-+-".join("-" * n for n in w))
    for r in rows:
        print(line(r).rstrip())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of both tools (default 3)")
    p.add_argument("--inner", type=int, default=3, help="--repeats passed to both tools (default 3)")
    p.add_argument("--only", default="abcde", help="subset of the measurements, e.g. 'ad'")
    p.add_argument("--parex", default=str(DEFAULT_PAREX), help="path of the bench_process_pool binary")
    p.add_argument("--quick", action="store_true", help="--repeats 1 to both, tiny Python sizes: smoke test only")
    c = p.parse_args()
    inner = 1 if c.quick else c.inner
    if not os.access(c.parex, os.X_OK):
        print(f"bench_vs_python: no executable {c.parex}; build it with\n"
              "  cmake --preset release && cmake --build build/release --target bench_process_pool",
              file=sys.stderr)
        return 2
    parex_cmd = [c.parex, "--json", "--repeats", str(inner), "--only", c.only]
    py_cmd = [sys.executable, str(PYTHON_BENCH), "--json", "--repeats", str(inner), "--only", c.only]
    if c.quick:
        py_cmd.append("--quick")

    ours, theirs = [], []
    for i in range(c.rounds):
        t0 = time.perf_counter()
        ours.append(run_json(parex_cmd))
        t1 = time.perf_counter()
        theirs.append(run_json(py_cmd))
        print(f"round {i + 1}/{c.rounds}: parex {t1 - t0:.1f} s, Python {time.perf_counter() - t1:.1f} s",
              file=sys.stderr, flush=True)
    res = {**combine(theirs), **combine(ours)}

    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = "?"
    print(f"machine: {os.cpu_count()} CPUs, {affinity} usable by this process (sched_getaffinity); "
          f"{platform.system()} {platform.release()}")
    print(f"python:  {platform.python_version()} ({sys.executable}), pools with 2 workers, "
          f"start method '{multiprocessing.get_start_method()}' for (a) (b) (c) (e)")
    print(f"parex:   {c.parex}")
    print(f"method:  {c.rounds} alternating rounds of both tools, each reporting the median of "
          f"{inner} inner repeats; below, the median over rounds"
          + ("\n         --quick: Python ran with tiny sizes, the ratios mean nothing" if c.quick else ""))
    print()
    c.only = "".join(ch for ch in "abcde" if ch in c.only)
    print_table(build_rows(c, res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
