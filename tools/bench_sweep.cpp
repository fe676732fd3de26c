// bench_sweep: throughput of both pools against the length of a call and against a map's
// chunksize, for tools/plot_benchmarks.py (the plots in docs/07-how-it-works.md).
//
//   duration  calls/s for calls that spin 0, 1, 10, 100, 1000 us, and the share of the
//             ideal (workers / duration) that reaches
//   chunksize items/s of a map of x + 1 over 200k ints, chunksize 1 .. 4096
//
// 2 workers by default. With --json, one JSON line:
//   {"thread": {"duration": {"0": [calls_per_s, efficiency], ...}, "chunksize": {"1": items_per_s, ...}},
//    "process": {...}}
//   bench_sweep [--workers W] [--repeats R] [--json]
#include <parex/parex.hpp>

#include "bench_args.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int spin_us(int us) {
  const auto end = Clock::now() + std::chrono::microseconds(us);
  while (Clock::now() < end) {
  }
  return us;
}
int plus_one(int x) { return x + 1; }

constexpr int durations_us[] = {0, 1, 10, 100, 1000};
constexpr std::size_t chunksizes[] = {1, 4, 16, 64, 256, 1024, 4096};

double calls_per_s(parex::Executor& ex, int us, std::size_t workers) {
  // About 0.3 s of work in all (at least 2,000 calls).
  const double per_call = us ? us * 1e-6 : 0.5e-6;
  const std::size_t n = std::max<std::size_t>(2000, static_cast<std::size_t>(0.3 * workers / per_call));
  const std::size_t capped = std::min<std::size_t>(n, 200'000);
  std::vector<parex::Future<int>> fs;
  fs.reserve(capped);
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < capped; ++i) fs.push_back(ex.submit(spin_us, us));
  for (auto& f : fs)
    if (f.result() != us) std::abort();
  return capped / seconds_since(t0);
}

double items_per_s(parex::Executor& ex, const std::vector<int>& in, std::size_t chunksize) {
  const auto t0 = Clock::now();
  long sum = 0;
  for (int y : ex.map(plus_one, in, {.chunksize = chunksize})) sum += y;
  const double s = seconds_since(t0);
  if (sum != static_cast<long>(in.size()) * static_cast<long>(in.size() + 1) / 2) std::abort();
  return in.size() / s;
}

std::string sweep(parex::Executor& ex, std::size_t workers, const bench::Args& a, const char* name) {
  std::string json = "{\"duration\": {";
  for (int us : durations_us) {
    std::vector<double> r;
    for (int k = 0; k < a.repeats; ++k) r.push_back(calls_per_s(ex, us, workers));
    const double rate = bench::median(r);
    const double efficiency = us ? rate / (workers * 1e6 / us) : 0;
    if (!a.json) std::printf("  %-8s %5d us calls      %12.0f calls/s  %5.1f%% of ideal\n", name, us, rate, 100 * efficiency);
    json += (us ? ", " : "") + ("\"" + std::to_string(us) + "\": [" + std::to_string(rate) + ", " +
                                 std::to_string(efficiency) + "]");
  }
  json += "}, \"chunksize\": {";
  std::vector<int> in(200'000);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i);
  bool first = true;
  for (std::size_t c : chunksizes) {
    std::vector<double> r;
    for (int k = 0; k < a.repeats; ++k) r.push_back(items_per_s(ex, in, c));
    const double rate = bench::median(r);
    if (!a.json) std::printf("  %-8s chunksize %5zu     %12.0f items/s\n", name, c, rate);
    json += (first ? "" : ", ") + ("\"" + std::to_string(c) + "\": " + std::to_string(rate));
    first = false;
  }
  return json + "}}";
}
}  // namespace

PAREX_REGISTER(spin_us);
PAREX_REGISTER(plus_one);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  const bench::Args a = bench::parse_args(argc, argv);
  std::size_t workers = 2;
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], "--workers")) workers = std::strtoul(argv[i + 1], nullptr, 10);
  if (!a.json) std::printf("bench_sweep: %zu workers, medians of %d\n", workers, a.repeats);
  std::string thread, process;
  {
    parex::ThreadPoolExecutor pool{{.max_workers = workers}};
    thread = sweep(pool, workers, a, "thread");
  }
  {
    parex::ProcessPoolExecutor pool{{.max_workers = workers}};
    pool.submit(plus_one, 0).result();  // workers up
    process = sweep(pool, workers, a, "process");
  }
  if (a.json) std::printf("{\"workers\": %zu, \"thread\": %s, \"process\": %s}\n", workers, thread.c_str(), process.c_str());
}
