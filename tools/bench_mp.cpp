// bench_mp: the multiprocessing toolbox, timed the way tools/bench_mp_python.py times
// Python's multiprocessing (same work, 2 processes unless said otherwise):
//   queue_int_per_s    a child puts N ints, the parent gets them (from the go signal to the last get)
//   queue_1k_per_s     the same with 1 KiB strings
//   pipe_per_s         a child sends N ints through a Pipe, the parent receives them
//   pipe_round_trip_us send an int, the child echoes it (median)
//   lock_ops_per_s     two children acquire+release one Lock N times each (start to join)
//   increments_ms      10 processes x 1000 locked increments of a Value, start to join
//   start_join_ms      Process start + join of an empty function (median)
// Prints a table, or with --json one JSON line of medians over --repeats.
#include <parex/parex.hpp>

#include "bench_args.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace {
using Clock = std::chrono::steady_clock;

void put_ints(parex::Queue<int> q, parex::Event go, int n) {
  go.wait();
  for (int i = 0; i < n; ++i) q.put(i);
}
void put_strings(parex::Queue<std::string> q, parex::Event go, int n) {
  const std::string s(1024, 'x');
  go.wait();
  for (int i = 0; i < n; ++i) q.put(s);
}
void hammer(parex::Lock lock, parex::Event go, int n) {
  go.wait();
  for (int i = 0; i < n; ++i) {
    lock.acquire();
    lock.release();
  }
}
void increment(parex::Value<int> v, int n) {
  for (int i = 0; i < n; ++i) {
    std::lock_guard g(v.get_lock());
    ++v.value();
  }
}
void nothing() {}
void pipe_send(parex::Connection c, parex::Event go, int n) {
  go.wait();
  for (int i = 0; i < n; ++i) c.send(i);
}
void pipe_echo(parex::Connection c) {
  for (;;) {
    const int v = c.recv<int>();
    c.send(v);
    if (v < 0) return;
  }
}
PAREX_REGISTER(pipe_send);
PAREX_REGISTER(pipe_echo);
PAREX_REGISTER(put_ints);
PAREX_REGISTER(put_strings);
PAREX_REGISTER(hammer);
PAREX_REGISTER(increment);
PAREX_REGISTER(nothing);

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double queue_ints(int n) {
  parex::Queue<int> q;
  parex::Event go;
  parex::Process p(put_ints, q, go, n);
  p.start();
  const auto t0 = Clock::now();
  go.set();
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += q.get();
  const double s = seconds_since(t0);
  p.join();
  if (sum != static_cast<long>(n) * (n - 1) / 2) std::fprintf(stderr, "bench_mp: wrong sum\n");
  return n / s;
}

double queue_strings(int n) {
  parex::Queue<std::string> q;
  parex::Event go;
  parex::Process p(put_strings, q, go, n);
  p.start();
  const auto t0 = Clock::now();
  go.set();
  std::size_t bytes = 0;
  for (int i = 0; i < n; ++i) bytes += q.get().size();
  const double s = seconds_since(t0);
  p.join();
  if (bytes != static_cast<std::size_t>(n) * 1024) std::fprintf(stderr, "bench_mp: wrong bytes\n");
  return n / s;
}

double pipe_one_way(int n) {
  auto [a, b] = parex::Pipe();
  parex::Event go;
  parex::Process p(pipe_send, b, go, n);
  p.start();
  b.close();
  const auto t0 = Clock::now();
  go.set();
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += a.recv<int>();
  const double s = seconds_since(t0);
  p.join();
  if (sum != static_cast<long>(n) * (n - 1) / 2) std::fprintf(stderr, "bench_mp: wrong pipe sum\n");
  return n / s;
}

double pipe_round_trip_us(int n) {
  auto [a, b] = parex::Pipe();
  parex::Process p(pipe_echo, b);
  p.start();
  b.close();
  a.send(0);
  a.recv<int>();  // the child is up
  std::vector<double> t;
  for (int i = 1; i <= n; ++i) {
    const auto t1 = Clock::now();
    a.send(i);
    a.recv<int>();
    t.push_back(seconds_since(t1) * 1e6);
  }
  a.send(-1);
  a.recv<int>();
  p.join();
  return bench::median(std::move(t));
}

double lock_ops(int n) {
  parex::Lock lock;
  parex::Event go;
  parex::Process a(hammer, lock, go, n), b(hammer, lock, go, n);
  a.start();
  b.start();
  const auto t0 = Clock::now();
  go.set();
  a.join();
  b.join();
  return 2.0 * n / seconds_since(t0);
}

double increments_ms() {
  parex::Value<int> v(0);
  const auto t0 = Clock::now();
  std::vector<parex::Process> ps;
  for (int i = 0; i < 10; ++i) ps.emplace_back(increment, v, 1000);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  const double ms = seconds_since(t0) * 1e3;
  if (v.value() != 10000) std::fprintf(stderr, "bench_mp: %d increments, not 10000\n", v.value());
  return ms;
}

double start_join_ms(int n) {
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    parex::Process p(nothing);
    p.start();
    p.join();
    t.push_back(seconds_since(t0) * 1e3);
  }
  return bench::median(std::move(t));
}

}  // namespace

int main(int argc, char** argv) {
  parex::init(argc, argv);
  const bench::Args args = bench::parse_args(argc, argv);
  std::map<std::string, std::vector<double>> r;
  for (int k = 0; k < args.repeats; ++k) {
    if (args.wants("queue_int_per_s")) r["queue_int_per_s"].push_back(queue_ints(400000));
    if (args.wants("queue_1k_per_s")) r["queue_1k_per_s"].push_back(queue_strings(200000));
    if (args.wants("pipe_per_s")) r["pipe_per_s"].push_back(pipe_one_way(400000));
    if (args.wants("pipe_round_trip_us")) r["pipe_round_trip_us"].push_back(pipe_round_trip_us(20000));
    if (args.wants("lock_ops_per_s")) r["lock_ops_per_s"].push_back(lock_ops(200000));
    if (args.wants("increments_ms")) r["increments_ms"].push_back(increments_ms());
    if (args.wants("start_join_ms")) r["start_join_ms"].push_back(start_join_ms(20));
  }
  bench::print_medians("bench_mp", args, r);
}
