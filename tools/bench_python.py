#!/usr/bin/env python3
"""bench_python: Python's own process pools on the five measurements of
tools/bench_process_pool.cpp, so that tools/bench_vs_python.py can put them side by side.

  (a) ProcessPoolExecutor: submit N tiny calls (x + 1), then collect every
      .result(); N / wall time of both phases                              calls/s
  (b) map x * x over 1M ints (i % 40000) with multiprocessing.Pool.map and
      ProcessPoolExecutor.map, several chunksizes; the best one reported   items/s
  (c) submit(tiny, i).result() on a warm ProcessPoolExecutor, 2000 times;
      median of the per-repeat medians                                     us
  (d) ProcessPoolExecutor start-up to first result (construct, submit,
      result; shutdown not timed), for start methods 'fork' and 'spawn'    ms
      (3.11 forks all workers up front, but spawns them on demand: with
      'spawn' only the first worker is up by the first result)
  (e) one call with a 64 MiB bytes argument on a warm ProcessPoolExecutor,
      after one untimed warm-up call; 64 MiB / seconds, 1e9 bytes per GB   GB/s

2 workers by default; each figure is the median over --repeats (default 5), timed with
time.perf_counter. (a), (b), (c) and (e) use the platform's default start method.
  bench_python.py [--workers W] [--repeats R] [--only abcde] [--json] [--quick]
--quick shrinks every size (and repeats to 1): for smoke tests only, not for numbers.
Standard library only.
"""
import argparse
import concurrent.futures as cf
import json
import multiprocessing
import platform
import statistics
import sys
import time


def tiny(x):
    return x + 1


def square(x):
    return x * x


def payload_size(b):
    return len(b)


FULL = dict(tiny_calls=200_000, map_items=1_000_000, trips=2000, payload=64 << 20)
QUICK = dict(tiny_calls=2000, map_items=20_000, trips=200, payload=1 << 20)
CHUNKSIZES = [1000, 10000, 50000, 125000]


def check(got, expect, what):
    if got != expect:
        raise RuntimeError(f"{what}: got {got}, expected {expect}")


def warm_executor(workers, ctx=None):
    """A ProcessPoolExecutor with its workers started (Python 3.11 starts them on demand)."""
    ex = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    for f in [ex.submit(tiny, i) for i in range(4 * workers)]:
        f.result()
    return ex


def submit_calls_per_s(ex, n):
    t0 = time.perf_counter()
    fs = [ex.submit(tiny, i) for i in range(n)]
    total = sum(f.result() for f in fs)
    s = time.perf_counter() - t0
    check(total, n * (n + 1) // 2, "(a) sum")
    return n / s


def map_items_per_s(map_fn, data, expect, chunksize):
    t0 = time.perf_counter()
    total = sum(map_fn(square, data, chunksize=chunksize))
    s = time.perf_counter() - t0
    check(total, expect, f"(b) sum at chunksize {chunksize}")
    return len(data) / s


def chunk_label(c):
    return "None (default)" if c is None else str(c)


def best_chunksize(map_fn, data, expect, chunksizes, repeats, name, out):
    """Median items/s per chunksize; returns (best items/s, its chunksize)."""
    best = (0.0, None)
    for c in chunksizes:
        m = statistics.median(map_items_per_s(map_fn, data, expect, c) for _ in range(repeats))
        out(f"      {name} chunksize {chunk_label(c):<15} {m:14.0f} items/s")
        if m > best[0]:
            best = (m, c)
    return best


def round_trip_us(ex, trips):
    us = []
    for i in range(trips):
        t0 = time.perf_counter()
        r = ex.submit(tiny, i).result()
        us.append((time.perf_counter() - t0) * 1e6)
        check(r, i + 1, "(c) result")
    return statistics.median(us)


def startup_ms(workers, method):
    ctx = multiprocessing.get_context(method)
    t0 = time.perf_counter()
    ex = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    r = ex.submit(tiny, 1).result()
    ms = (time.perf_counter() - t0) * 1e3
    ex.shutdown()  # not timed (the C++ tool does not time its pool's shutdown either)
    check(r, 2, "(d) result")
    return ms


def payload_gb_per_s(ex, data):
    t0 = time.perf_counter()
    got = ex.submit(payload_size, data).result()
    s = time.perf_counter() - t0
    check(got, len(data), "(e) size")
    return len(data) / s / 1e9


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=None, help="default 5 (1 with --quick)")
    p.add_argument("--only", default="abcde", help="subset of the measurements, e.g. 'ad'")
    p.add_argument("--json", action="store_true", help="print one line: a JSON object")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests only")
    a = p.parse_args()
    repeats = a.repeats if a.repeats is not None else (1 if a.quick else 5)
    size = QUICK if a.quick else FULL
    want = lambda c: c in a.only
    method = multiprocessing.get_start_method()
    res = {}

    def out(line):
        if not a.json:
            print(line, flush=True)

    def report(key, label, value, unit):
        res[key] = value
        out(f"  {label:<56} {value:14.2f} {unit}")

    out(f"bench_python: Python {platform.python_version()}, {a.workers} workers, "
        f"median of {repeats} repeats, start method '{method}' for (a) (b) (c) (e)"
        + (" [--quick: tiny sizes, not for numbers]" if a.quick else ""))

    ex = warm_executor(a.workers) if any(map(want, "abce")) else None
    if want("a"):
        n = size["tiny_calls"]
        r = statistics.median(submit_calls_per_s(ex, n) for _ in range(repeats))
        report("ppe_submit_calls_per_s", f"(a) PPE: submit {n} tiny calls, then collect", r, "calls/s")
    if want("b"):
        data = [i % 40000 for i in range(size["map_items"])]
        expect = sum(x * x for x in data)
        with multiprocessing.Pool(a.workers) as pool:
            pool.map(tiny, range(4 * a.workers))  # warm
            best, chunk = best_chunksize(pool.map, data, expect, [None] + CHUNKSIZES, repeats, "Pool.map", out)
        report("pool_map_items_per_s", f"(b) Pool.map over {len(data)} ints, chunksize {chunk_label(chunk)}", best, "items/s")
        res["pool_map_best_chunksize"] = chunk  # null in JSON: Pool.map's own default
        best, chunk = best_chunksize(ex.map, data, expect, CHUNKSIZES, repeats, "PPE.map ", out)
        report("ppe_map_items_per_s", f"    PPE.map over {len(data)} ints, chunksize {chunk}", best, "items/s")
        res["ppe_map_best_chunksize"] = chunk
    if want("c"):
        r = statistics.median(round_trip_us(ex, size["trips"]) for _ in range(repeats))
        report("ppe_round_trip_us", "(c) PPE: round trip on a warm pool", r, "us")
    if want("d"):
        for m in ("fork", "spawn"):
            r = statistics.median(startup_ms(a.workers, m) for _ in range(max(repeats, 5)))
            report(f"ppe_startup_{m}_ms", f"(d) PPE start-up to first result, '{m}'", r, "ms")
    if want("e"):
        data = b"x" * size["payload"]
        payload_gb_per_s(ex, data)  # untimed warm-up
        r = statistics.median(payload_gb_per_s(ex, data) for _ in range(repeats))
        report("ppe_payload_gb_per_s", f"(e) PPE: {len(data) >> 20} MiB argument, submit to result", r, "GB/s")
    if ex is not None:
        ex.shutdown()
    if a.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
