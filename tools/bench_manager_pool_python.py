#!/usr/bin/env python3
"""bench_manager_pool_python: Python's multiprocessing doing what bench_manager_pool.cpp does.

  manager_append_per_s  a child appends N ints to a Manager list, timed in the child
  manager_start_ms      Manager start + one list proxy + shutdown (median)
  pool_map_per_s        Pool(2).map over 1M ints (default chunksize)
  pool_apply_per_s      Pool(2).apply, one call at a time
  bench_manager_pool_python.py [--json] [--repeats K]     Standard library only.
"""
import multiprocessing as mp
import statistics
import time

from bench_vs_python import twin_main


def square(x):
    return x * x


def append_n(lst, n, rate):
    t0 = time.perf_counter()
    for i in range(n):
        lst.append(i)
    rate.value = n / (time.perf_counter() - t0)


def manager_append(n):
    with mp.Manager() as m:
        lst = m.list()
        rate = mp.Value("d", 0.0)
        p = mp.Process(target=append_n, args=(lst, n, rate))
        p.start()
        p.join()
        assert len(lst) == n
        return rate.value


def manager_start_ms(n):
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        with mp.Manager() as m:
            m.list().append(1)
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t)


def pool_map(pool, n):
    t0 = time.perf_counter()
    v = pool.map(square, range(n))
    s = time.perf_counter() - t0
    assert len(v) == n and v[1000] == 1000000
    return n / s


def pool_apply(pool, n):
    t0 = time.perf_counter()
    total = 0
    for i in range(n):
        total += pool.apply(square, (i % 100,))
    return n / (time.perf_counter() - t0)


def measure(repeats):
    r = {}
    with mp.Pool(2) as pool:
        pool.map(square, range(1000))
        for _ in range(repeats):
            r.setdefault("manager_append_per_s", []).append(manager_append(20000))
            r.setdefault("manager_start_ms", []).append(manager_start_ms(10))
            r.setdefault("pool_map_per_s", []).append(pool_map(pool, 1000000))
            r.setdefault("pool_apply_per_s", []).append(pool_apply(pool, 4000))
    return r


if __name__ == "__main__":
    twin_main("bench_manager_pool_python", measure)
