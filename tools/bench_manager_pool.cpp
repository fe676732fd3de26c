// bench_manager_pool: Manager and Pool doing what tools/bench_manager_pool_python.py does
// with Python's multiprocessing (compared by tools/bench_manager_pool_vs_python.py).
//
//   manager_append_per_s  a child appends N ints to a Manager list, timed in the child
//   manager_start_ms      Manager start + one list proxy + shutdown (median)
//   pool_map_per_s        Pool(2).map over 1M ints (default chunksize)
//   pool_apply_per_s      Pool(2).apply, one call at a time
//
// Prints a table, or with --json one JSON line of medians over --repeats.
#include <parex/parex.hpp>

#include "bench_args.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <ranges>
#include <string>
#include <utility>
#include <vector>

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int square(int x) { return x * x; }

void append_n(parex::ListProxy<int> l, int n, parex::Value<double> rate) {
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) l.append(i);
  rate.value() = n / seconds_since(t0);
}

double manager_append(int n) {
  parex::Manager m;
  auto l = m.list<int>();
  parex::Value<double> rate(0);
  parex::Process p(append_n, l, n, rate);
  p.start();
  p.join();
  if (l.size() != static_cast<std::size_t>(n)) std::fprintf(stderr, "bench_manager_pool: lost appends\n");
  return rate.value();
}

double manager_start_ms(int n) {
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    {
      parex::Manager m;
      m.list<int>().append(1);
    }
    t.push_back(seconds_since(t0) * 1e3);
  }
  return bench::median(std::move(t));
}

double pool_map(parex::Pool& pool, int n) {
  const auto t0 = Clock::now();
  const std::vector<int> v = pool.map(square, std::views::iota(0, n));
  const double s = seconds_since(t0);
  if (v.size() != static_cast<std::size_t>(n) || v[1000] != 1000000) std::fprintf(stderr, "bench_manager_pool: bad map\n");
  return n / s;
}

double pool_apply(parex::Pool& pool, int n) {
  long sum = 0;
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) sum += pool.apply(square, i % 100);
  const double s = seconds_since(t0);
  if (sum <= 0) std::fprintf(stderr, "bench_manager_pool: bad apply\n");
  return n / s;
}

}  // namespace

PAREX_REGISTER(square);
PAREX_REGISTER(append_n);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  const bench::Args args = bench::parse_args(argc, argv);
  std::map<std::string, std::vector<double>> r;
  parex::Pool pool(2);
  pool.map(square, std::views::iota(0, 1000));  // the workers are up
  for (int k = 0; k < args.repeats; ++k) {
    r["manager_append_per_s"].push_back(manager_append(100000));
    r["manager_start_ms"].push_back(manager_start_ms(10));
    r["pool_map_per_s"].push_back(pool_map(pool, 1000000));
    r["pool_apply_per_s"].push_back(pool_apply(pool, 20000));
  }
  bench::print_medians("bench_manager_pool", args, r);
}
