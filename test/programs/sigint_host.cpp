// Runs a map while SIGINT hits its whole process group - itself and its workers - every
// 1-5 ms (test/faults/test_faults_lifecycle.cpp, sigint_storm_at_the_process_group_during_a_map).
// It moves into a group of its own first, so that the storm reaches nobody else.
//   sigint_host warm|cold restart|norestart
// warm: the storm starts once both workers have answered; cold: before the pool exists,
// so that workers start under it (every 0.1-0.4 ms for the first 150 ms). restart: its SIGINT handler has SA_RESTART; norestart:
// its own system calls fail with EINTR. Prints one line, "ok ..." and exits 0 when every
// item came back right and no worker died (it watches its children: a replaced worker is
// a third pid), else what went wrong and exits 1.
#include <parex/parex.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {
std::atomic<int> g_signals{0};
extern "C" void on_sigint(int) { g_signals.fetch_add(1, std::memory_order_relaxed); }
}  // namespace

std::pair<int, int> slow_item(int x) {
  std::this_thread::sleep_for(std::chrono::microseconds(x % 10 == 0 ? 2000 : 200));
  return {3 * x + 1, static_cast<int>(::getpid())};
}
PAREX_REGISTER(slow_item);

// This process's children (its workers), from /proc/self/task/*/children.
std::vector<int> children() {
  std::vector<int> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end; it.increment(ec)) {
    std::ifstream f(it->path() / "children");
    for (int pid; f >> pid;) out.push_back(pid);
  }
  return out;
}

int main(int argc, char** argv) {
  parex::init(argc, argv);
  if (argc != 3) {
    std::fprintf(stderr, "usage: sigint_host warm|cold restart|norestart\n");
    return 2;
  }
  const bool cold = std::strcmp(argv[1], "cold") == 0;
  const bool restart = std::strcmp(argv[2], "restart") == 0;
  if (::setpgid(0, 0) != 0) {
    std::printf("setpgid failed: %s\n", std::strerror(errno));
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = restart ? SA_RESTART : 0;
  ::sigaction(SIGINT, &sa, nullptr);

  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::set<int> workers_seen;  // by the storm thread: a worker that dies is replaced, and seen
  auto storm = [&] {
    std::mt19937 r(static_cast<std::uint32_t>(::getpid()));
    // Cold: dense for the first 150 ms, while the workers start (every 0.1-0.4 ms).
    const auto dense_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(cold ? 150 : 0);
    while (!stop.load()) {
      for (int pid : children()) workers_seen.insert(pid);
      if (::kill(0, SIGINT) == 0) ++sent;
      const bool dense = std::chrono::steady_clock::now() < dense_until;
      std::this_thread::sleep_for(std::chrono::microseconds(dense ? 100 + r() % 300 : 1000 + r() % 4000));
    }
  };
  std::thread stormer;
  if (cold) stormer = std::thread(storm);
  std::string problems;
  int problem_count = 0;
  auto problem = [&](const std::string& s) {
    if (problem_count++ < 10) problems += s + "; ";
  };
  std::size_t ok = 0, yielded = 0;
  const std::size_t n = 300;
  {
    try {
      parex::ProcessPoolExecutor pool{{.max_workers = 2}};
      if (!cold) {
        std::set<int> up;
        for (int tries = 0; tries < 50 && up.size() < 2; ++tries) {
          std::vector<parex::Future<std::pair<int, int>>> fs;
          for (int i = 0; i < 8; ++i) fs.push_back(pool.submit(slow_item, 10 * i));
          for (auto& f : fs) up.insert(f.result(std::chrono::seconds(30)).second);
        }
        stormer = std::thread(storm);
      }
      std::vector<int> in(n);
      std::iota(in.begin(), in.end(), 0);
      auto results = pool.map(slow_item, in, {.chunksize = restart ? 1u : 4u, .timeout = std::chrono::seconds(45)});
      for (auto it = results.begin(); it != results.end(); ++it, ++yielded) {
        try {
          if ((*it).first == 3 * in[yielded] + 1) ++ok;
          else problem("item " + std::to_string(yielded) + " wrong");
        } catch (const std::exception& e) {
          problem("item " + std::to_string(yielded) + ": " + e.what());
        }
      }
    } catch (const std::exception& e) {
      problem(std::string("the pool: ") + e.what());
    }
    stop = true;
    if (stormer.joinable()) stormer.join();
  }
  if (yielded != n) problem(std::to_string(yielded) + " of " + std::to_string(n) + " items yielded");
  if (workers_seen.size() > 2)
    problem(std::to_string(workers_seen.size()) + " workers seen for 2 places: some died (of SIGINT?) and were replaced");
  std::printf("%s %s: %zu of %zu right, %d SIGINTs sent, %d received by the host, %zu workers seen%s%s\n",
              problem_count ? "FAILED" : "ok", argv[1], ok, n, sent.load(), g_signals.load(), workers_seen.size(),
              problem_count ? ": " : "", problems.c_str());
  std::fflush(stdout);
  return problem_count ? 1 : 0;
}
