// bench_balance: scheduling on uneven work and on tiny items, for one backend (issue 19);
// tools/bench_balance.py runs it on every backend beside its Python twin
// (bench_balance_python.py), alternating, and prints the table of docs/07-how-it-works.md.
//
// Each measurement comes right after 100k tiny calls of the very function it measures (its
// estimate starts out tiny: the worst case for a scheduler that batches); each is a
// makespan / lower bound (max(sum / workers, longest item)), medians of --repeats:
//   heavy_*   400 sleeps, 90 % of 1 ms and 10 % of 50 ms
//   pareto_*  400 sleeps, Pareto (alpha 1.5, from 0.5 ms, capped at 100 ms)
//   each as:  ordered map chunksize 1 | unordered map chunksize 1 | one submit per item |
//             map with default options
//   quick_beside_slow_ms  a 600 ms call, then three 10 ms ones: when the third is done
//   tiny_default_per_s    map of x * x over 1M ints, default options     items/s
//   tiny_best_per_s       the same, best of chunksize 1000, 10000, 100000 items/s
// The durations come from a 32-bit LCG that the Python twin computes alike.
//   bench_balance [--backend process|thread|mpi] [--workers W] [--repeats R] [--json]
//   (mpi: under mpirun -np W+1)
#include <parex/parex.hpp>
#ifdef PAREX_BENCH_MPI
#include <parex/mpi.hpp>
#endif

#include "bench_args.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

int sleep_us(int us) {
  if (us > 0) std::this_thread::sleep_for(std::chrono::microseconds(us));
  return us;
}
PAREX_REGISTER(sleep_us);
int square(int x) { return x * x; }
PAREX_REGISTER(square);

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::uint32_t lcg(std::uint32_t& s) { return s = s * 1664525u + 1013904223u; }

std::vector<int> heavy_tailed() {
  std::uint32_t s = 19;
  std::vector<int> v(400);
  for (int& d : v) d = lcg(s) % 10 == 0 ? 50000 : 1000;
  return v;
}
std::vector<int> pareto() {
  std::uint32_t s = 23;
  std::vector<int> v(400);
  for (int& d : v) {
    const double u = ((lcg(s) >> 8) + 0.5) / double(1u << 24);
    d = static_cast<int>(std::min(100000.0, 500.0 / std::pow(u, 1 / 1.5)));
  }
  return v;
}

double lower_bound_s(const std::vector<int>& us, std::size_t workers) {
  const double sum = std::accumulate(us.begin(), us.end(), 0.0) / 1e6;
  return std::max(sum / static_cast<double>(workers), *std::max_element(us.begin(), us.end()) / 1e6);
}

long run_mode(parex::Executor& ex, const std::vector<int>& us, const std::string& mode) {
  long sum = 0;
  if (mode == "ordered") {
    for (int y : ex.map(sleep_us, us, {.chunksize = 1})) sum += y;
  } else if (mode == "unordered") {
    for (int y : ex.map(sleep_us, us, {.chunksize = 1, .ordered = false})) sum += y;
  } else if (mode == "submit") {
    std::vector<parex::Future<int>> fs;
    for (int u : us) fs.push_back(ex.submit(sleep_us, u));
    for (auto& f : fs) sum += f.result();
  } else {
    for (int y : ex.map(sleep_us, us)) sum += y;
  }
  return sum;
}

double quick_beside_slow_ms(parex::Executor& ex) {
  const auto t0 = Clock::now();
  auto slow = ex.submit(sleep_us, 600000);
  std::vector<parex::Future<int>> quick;
  for (int i = 0; i < 3; ++i) quick.push_back(ex.submit(sleep_us, 10000));
  for (auto& f : quick) f.result();
  const double ms = since(t0) * 1e3;
  slow.result();
  return ms;
}

double tiny_map_per_s(parex::Executor& ex, const std::vector<int>& in, std::optional<std::size_t> chunksize) {
  const auto t0 = Clock::now();
  long sum = 0;
  for (int y : ex.map(square, in, {.chunksize = chunksize})) sum += y;
  const double s = since(t0);
  if (sum == 42) std::abort();  // keep the loop
  return static_cast<double>(in.size()) / s;
}

std::unique_ptr<parex::Executor> make(const std::string& backend, std::size_t workers) {
  if (backend == "thread") return std::make_unique<parex::ThreadPoolExecutor>(parex::ThreadPoolOptions{.max_workers = workers});
#ifdef PAREX_BENCH_MPI
  if (backend == "mpi") return std::make_unique<parex::MpiExecutor>(parex::MpiOptions{.max_workers = workers});
#endif
  if (backend != "process") {
    std::fprintf(stderr, "bench_balance: unknown or unavailable backend '%s'\n", backend.c_str());
    std::exit(2);
  }
  return std::make_unique<parex::ProcessPoolExecutor>(parex::ProcessPoolOptions{.max_workers = workers});
}

}  // namespace

int main(int argc, char** argv) {
  parex::init(argc, argv);
  const bench::Args a = bench::parse_args(argc, argv);
  std::string backend = "process";
  std::size_t workers = 4;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--backend")) backend = argv[i + 1];
    if (!std::strcmp(argv[i], "--workers")) workers = static_cast<std::size_t>(std::atoi(argv[i + 1]));
  }
  auto ex = make(backend, workers);
  // Before every measurement: 100k tiny calls of the function measured next, so that its
  // estimate starts out tiny.
  const std::vector<int> zeros(100000, 0);
  const auto warm_up = [&] {
    long s = 0;
    for (int y : ex->map(sleep_us, zeros)) s += y;
    if (s != 0) std::abort();
  };
  std::map<std::string, std::vector<double>> r;
  const std::pair<const char*, std::vector<int>> loads[] = {{"heavy", heavy_tailed()}, {"pareto", pareto()}};
  for (int rep = 0; rep < a.repeats; ++rep) {
    for (const auto& [name, us] : loads) {
      const double bound = lower_bound_s(us, workers);
      const long expect = std::accumulate(us.begin(), us.end(), 0L);
      for (const char* mode : {"ordered", "unordered", "submit", "default"}) {
        warm_up();
        const auto t0 = Clock::now();
        if (run_mode(*ex, us, mode) != expect) std::abort();
        r[std::string(name) + "_" + mode].push_back(since(t0) / bound);
      }
    }
    warm_up();
    r["quick_beside_slow_ms"].push_back(quick_beside_slow_ms(*ex));
  }
  std::vector<int> in(1'000'000);
  std::iota(in.begin(), in.end(), 0);
  for (int rep = 0; rep < a.repeats; ++rep) {
    r["tiny_default_per_s"].push_back(tiny_map_per_s(*ex, in, std::nullopt));
    double best = 0;
    for (std::size_t c : {1000u, 10000u, 100000u}) best = std::max(best, tiny_map_per_s(*ex, in, c));
    r["tiny_best_per_s"].push_back(best);
  }
  bench::print_medians(("bench_balance --backend " + backend).c_str(), a, r);
  ex->shutdown();
  return 0;
}
