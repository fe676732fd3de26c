#!/usr/bin/env python3
"""bench_balance_python: the Python twin of tools/bench_balance.cpp, on Python's own pools.

Each right after 100k tiny calls (Pool.map of sleep_us(0)), the same two workloads (400 sleeps: 90 %
of 1 ms and 10 % of 50 ms; Pareto, alpha 1.5, from 0.5 ms, capped at 100 ms; the same
32-bit LCG), each as makespan / max(sum / workers, longest item), medians of --repeats:
    *_imap1     multiprocessing.Pool.imap, chunksize 1
    *_poolmap   multiprocessing.Pool.map, its default chunksize
    *_ppemap    concurrent.futures.ProcessPoolExecutor.map (chunksize 1)
    quick_beside_slow_ms   Pool.imap_unordered over [600, 10, 10, 10] ms: when the
                           third 10 ms item is out (Python yields them first)
    tiny_default_per_s     Pool.map of x * x over 1M ints, default chunksize   items/s
    tiny_best_per_s        the same, best of chunksize 1000, 10000, 100000    items/s
4 workers by default. Standard library only.
  bench_balance_python.py [--workers W] [--repeats R] [--json]
"""
import concurrent.futures as cf
import multiprocessing
import sys
import time

from bench_vs_python import twin_main

WORKERS = 4


def sleep_us(us):
    if us > 0:
        time.sleep(us / 1e6)
    return us


def square(x):
    return x * x


def lcg(s):
    return (s * 1664525 + 1013904223) & 0xFFFFFFFF


def heavy_tailed():
    s, v = 19, []
    for _ in range(400):
        s = lcg(s)
        v.append(50000 if s % 10 == 0 else 1000)
    return v


def pareto():
    s, v = 23, []
    for _ in range(400):
        s = lcg(s)
        u = ((s >> 8) + 0.5) / float(1 << 24)
        v.append(int(min(100000.0, 500.0 / u ** (1 / 1.5))))
    return v


def lower_bound_s(us):
    return max(sum(us) / 1e6 / WORKERS, max(us) / 1e6)


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(repeats):
    r = {}
    add = lambda k, v: r.setdefault(k, []).append(v)
    with multiprocessing.Pool(WORKERS) as pool, cf.ProcessPoolExecutor(WORKERS) as ppe:
        def warm_up():  # as the C++ side, before every measurement
            pool.map(sleep_us, [0] * 100000)
            list(ppe.map(sleep_us, [0] * 100000, chunksize=1000))

        for _ in range(repeats):
            for name, us in (("heavy", heavy_tailed()), ("pareto", pareto())):
                bound = lower_bound_s(us)
                warm_up()
                add(f"{name}_imap1", timed(lambda: sum(pool.imap(sleep_us, us, chunksize=1))) / bound)
                warm_up()
                add(f"{name}_poolmap", timed(lambda: sum(pool.map(sleep_us, us))) / bound)
                warm_up()
                add(f"{name}_ppemap", timed(lambda: sum(ppe.map(sleep_us, us))) / bound)
            warm_up()
            t0 = time.perf_counter()
            it = pool.imap_unordered(sleep_us, [600000, 10000, 10000, 10000], chunksize=1)
            first = [next(it) for _ in range(3)]
            add("quick_beside_slow_ms", (time.perf_counter() - t0) * 1e3 if 600000 not in first else 600.0)
            list(it)
        xs = list(range(1000000))
        for _ in range(repeats):
            add("tiny_default_per_s", len(xs) / timed(lambda: pool.map(square, xs)))
            add("tiny_best_per_s", max(len(xs) / timed(lambda: pool.map(square, xs, chunksize=c))
                                       for c in (1000, 10000, 100000)))
    return r


if __name__ == "__main__":
    if "--workers" in sys.argv:
        i = sys.argv.index("--workers")
        WORKERS = int(sys.argv[i + 1])
        del sys.argv[i:i + 2]
    twin_main("bench_balance", measure)
