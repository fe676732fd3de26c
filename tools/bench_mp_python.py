#!/usr/bin/env python3
"""bench_mp_python: Python's multiprocessing doing the work tools/bench_mp.cpp does.

  queue_int_per_s    a child puts N ints on a multiprocessing.Queue, the parent gets them
  queue_1k_per_s     the same with 1 KiB strings
  pipe_per_s         a child sends N ints through a Pipe, the parent receives them
  pipe_round_trip_us send an int, the child echoes it (median)
  lock_ops_per_s     two children acquire+release one multiprocessing.Lock N times each
  increments_ms      10 processes x 1000 increments of a Value under its lock, start to join
  start_join_ms      Process start + join of an empty function (fork), median
  start_join_spawn_ms  the same with the spawn start method
  bench_mp_python.py [--json] [--repeats K]     Standard library only.
"""
import multiprocessing as mp
import statistics
import time

from bench_vs_python import twin_main


def put_ints(q, go, n):
    go.wait()
    for i in range(n):
        q.put(i)


def put_strings(q, go, n):
    s = "x" * 1024
    go.wait()
    for _ in range(n):
        q.put(s)


def hammer(lock, go, n):
    go.wait()
    for _ in range(n):
        lock.acquire()
        lock.release()


def increment(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def nothing():
    pass


def pipe_send(c, go, n):
    go.wait()
    for i in range(n):
        c.send(i)


def pipe_echo(c):
    while True:
        v = c.recv()
        c.send(v)
        if v < 0:
            return


def pipe_one_way(n):
    a, b = mp.Pipe()
    go = mp.Event()
    p = mp.Process(target=pipe_send, args=(b, go, n))
    p.start()
    b.close()
    t0 = time.perf_counter()
    go.set()
    for _ in range(n):
        a.recv()
    s = time.perf_counter() - t0
    p.join()
    return n / s


def pipe_round_trip_us(n):
    a, b = mp.Pipe()
    p = mp.Process(target=pipe_echo, args=(b,))
    p.start()
    b.close()
    a.send(0)
    a.recv()
    t = []
    for i in range(1, n + 1):
        t0 = time.perf_counter()
        a.send(i)
        a.recv()
        t.append((time.perf_counter() - t0) * 1e6)
    a.send(-1)
    a.recv()
    p.join()
    return statistics.median(t)


def queue_rate(target, n):
    q, go = mp.Queue(), mp.Event()
    p = mp.Process(target=target, args=(q, go, n))
    p.start()
    t0 = time.perf_counter()
    go.set()
    for _ in range(n):
        q.get()
    s = time.perf_counter() - t0
    p.join()
    return n / s


def lock_ops(n):
    lock, go = mp.Lock(), mp.Event()
    ps = [mp.Process(target=hammer, args=(lock, go, n)) for _ in range(2)]
    for p in ps:
        p.start()
    t0 = time.perf_counter()
    go.set()
    for p in ps:
        p.join()
    return 2 * n / (time.perf_counter() - t0)


def increments_ms():
    v = mp.Value("i", 0)
    t0 = time.perf_counter()
    ps = [mp.Process(target=increment, args=(v, 1000)) for _ in range(10)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    ms = (time.perf_counter() - t0) * 1e3
    assert v.value == 10000, v.value
    return ms


def start_join_ms(ctx, n):
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        p = ctx.Process(target=nothing)
        p.start()
        p.join()
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t)


def measure(repeats):
    r = {}
    for _ in range(repeats):
        for k, v in (("queue_int_per_s", queue_rate(put_ints, 100000)),
                     ("queue_1k_per_s", queue_rate(put_strings, 50000)),
                     ("pipe_per_s", pipe_one_way(100000)),
                     ("pipe_round_trip_us", pipe_round_trip_us(5000)),
                     ("lock_ops_per_s", lock_ops(100000)),
                     ("increments_ms", increments_ms()),
                     ("start_join_ms", start_join_ms(mp.get_context("fork"), 20)),
                     ("start_join_spawn_ms", start_join_ms(mp.get_context("spawn"), 5))):
            r.setdefault(k, []).append(v)
    return r


if __name__ == "__main__":
    mp.set_start_method("fork")
    twin_main("bench_mp_python", measure)
