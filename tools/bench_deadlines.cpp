// bench_deadlines: issue 12's deadline and interrupt bar on a process pool.
//
//   hang_run_s          1,000 calls, every 10th hangs for ever, 100 ms deadline, 2 workers
//   hang_ideal_s        the run's ideal: 100 deadlines x 100 ms / 2 workers
//   hang_vs_ideal       hang_run_s / hang_ideal_s (the bar: <= 2)
//   interrupt_ms        Future::interrupt of a running call until result() throws CancelledError
//   timed_vs_untimed    throughput of tiny calls with a (never reached) deadline / without
//
// Each run checks its outcomes (100 TimeoutError, 900 right results, every stopped worker
// gone) and says so on stderr if not. Prints a table, or with --json one JSON line of
// medians over --repeats.
#include <parex/parex.hpp>

#include "bench_args.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int twice(int x) { return 2 * x; }
int hang_every_10th(int x) {
  if (x % 10 == 9)
    for (;;) std::this_thread::sleep_for(1h);
  return 2 * x;
}
int hang_flagged(parex::Value<int> started) {
  started.value() = 1;
  for (;;) std::this_thread::sleep_for(1h);
}

// Child processes of this one (its pool workers), from /proc.
int children() {
  int n = 0;
  const std::string me = std::to_string(::getpid());
  for (auto& e : std::filesystem::directory_iterator("/proc")) {
    std::ifstream stat(e.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && std::to_string(ppid) == me) ++n;
  }
  return n;
}

double hang_run() {
  const int before = children();  // the other benchmarks' pool
  const auto t0 = Clock::now();
  int timeouts = 0, right = 0;
  {
    parex::ProcessPoolExecutor pool{{.max_workers = 2}};
    std::vector<parex::Future<int>> fs;
    fs.reserve(1000);
    for (int i = 0; i < 1000; ++i) fs.push_back(pool.submit(parex::CallOptions{.timeout = 100ms}, hang_every_10th, i));
    for (int i = 0; i < 1000; ++i) {
      try {
        right += fs[i].result() == 2 * i;
      } catch (const parex::TimeoutError&) {
        ++timeouts;
      }
    }
  }
  const double s = seconds_since(t0);
  const int left = children() - before;
  if (timeouts != 100 || right != 900 || left != 0)
    std::fprintf(stderr, "bench_deadlines: WRONG: %d timeouts, %d right results, %d processes left\n", timeouts, right,
                 left);
  return s;
}

double interrupt_ms(parex::ProcessPoolExecutor& pool) {
  parex::Value<int> started(0);
  auto f = pool.submit(hang_flagged, started);
  while (started.value() == 0) std::this_thread::sleep_for(100us);
  const auto t0 = Clock::now();
  f.interrupt();
  try {
    f.result();
    std::fprintf(stderr, "bench_deadlines: WRONG: an interrupted call returned\n");
  } catch (const parex::CancelledError&) {
  }
  return seconds_since(t0) * 1e3;
}

double calls_per_s(parex::ProcessPoolExecutor& pool, bool timed, int n) {
  std::vector<parex::Future<int>> fs;
  fs.reserve(static_cast<std::size_t>(n));
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i)
    fs.push_back(timed ? pool.submit(parex::CallOptions{.timeout = 10s}, twice, i) : pool.submit(twice, i));
  long sum = 0;
  for (auto& f : fs) sum += f.result();
  if (sum != static_cast<long>(n) * (n - 1)) std::fprintf(stderr, "bench_deadlines: WRONG sum\n");
  return n / seconds_since(t0);
}
}  // namespace

PAREX_REGISTER(twice);
PAREX_REGISTER(hang_every_10th);
PAREX_REGISTER(hang_flagged);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  const bench::Args args = bench::parse_args(argc, argv);
  std::map<std::string, std::vector<double>> r;
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  pool.submit(twice, 1).result();  // its workers exist before hang_run counts children
  for (int k = 0; k < args.repeats; ++k) {
    const double run = hang_run();
    r["hang_run_s"].push_back(run);
    r["hang_ideal_s"].push_back(5.0);
    r["hang_vs_ideal"].push_back(run / 5.0);
    std::vector<double> ms;
    for (int i = 0; i < 5; ++i) ms.push_back(interrupt_ms(pool));
    r["interrupt_ms"].push_back(bench::median(ms));
    // Alternated, so that both see the same machine.
    const double untimed = calls_per_s(pool, false, 20000);
    const double timed = calls_per_s(pool, true, 20000);
    r["timed_vs_untimed"].push_back(timed / untimed);
  }
  bench::print_medians("bench_deadlines", args, r);
}
