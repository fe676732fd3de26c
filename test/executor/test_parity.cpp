// Parity: one program, written once against parex::Executor&, with every option the
// process pool takes (deadlines, retries, interrupt of a queued call, a map's progress
// reports, stats), run on ThreadPoolExecutor and ProcessPoolExecutor (parex_tests) and on
// MpiExecutor under `mpirun -np 3` (parex_mpi_tests): a backend that falls behind fails
// here. Side effects go through files, which every process and rank of one host sees.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"

#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace test;
using namespace std::chrono_literals;

// Everything here lives in the suite's own namespace (BOOST_AUTO_TEST_SUITE(parity) below
// reopens it), where its names hide those of the other executor/ files compiled in the
// same unity unit (make_pool, TempDir, deadline_test::fail_first, the deadlines suite).
namespace parity {
namespace {
// The count kept in the file `path`, plus one (1 the first time).
int bump(const std::string& path) {
  int n = 0;
  std::ifstream(path) >> n;
  std::ofstream(path + ".tmp") << n + 1;
  std::filesystem::rename(path + ".tmp", path);
  return n + 1;
}
}  // namespace

/// Fails with std::runtime_error for the first `failures` attempts (counted in the file
/// `path`), then returns the attempt's number.
int fail_first(std::string path, int failures) {
  const int attempt = bump(path);
  if (attempt <= failures) throw std::runtime_error("attempt " + std::to_string(attempt) + " fails");
  return attempt;
}
PAREX_REGISTER(fail_first);

/// The first attempt (counted in `path`) sleeps 2 s, later ones return at once.
int slow_first(std::string path) {
  const int attempt = bump(path);
  if (attempt == 1) std::this_thread::sleep_for(2s);
  return attempt;
}
PAREX_REGISTER(slow_first);

/// Creates the file `path`, then sleeps ms milliseconds.
int mark_then_sleep(std::string path, int ms) {
  std::ofstream(path) << 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
PAREX_REGISTER(mark_then_sleep);

namespace {
using Backends = std::tuple<PAREX_TEST_BACKENDS>;
#ifdef PAREX_TEST_MPI
using MpiPool = parex::MpiExecutor;
#else
struct MpiPool {};
#endif

template <class Pool>
Pool make_pool(std::size_t workers) {
  return Pool{{.max_workers = workers}};
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("parex-parity-" + std::to_string(::getpid()) + "-" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// Waits (bounded) until pred holds.

// ---- the program, written once against Executor& -------------------------------------

void deadlines(parex::Executor& ex) {
  auto f = ex.submit(parex::CallOptions{.timeout = 200ms}, sleep_then_echo, 2000);
  expect_error<parex::TimeoutError>([&] { f.result(deadlock_timeout); });
  BOOST_TEST(ex.submit(parex::CallOptions{.timeout = 10s}, square, 6).result(deadlock_timeout) == 36);
  // A map's call_timeout: the fast item's result, the slow one's TimeoutError.
  std::vector<int> got;
  bool timed_out = false;
  try {
    for (int y : ex.map(sleep_then_echo, std::vector{10, 2000}, {.chunksize = 1, .call_timeout = 200ms})) got.push_back(y);
  } catch (const parex::TimeoutError&) {
    timed_out = true;
  }
  BOOST_TEST((got == std::vector{10}));
  BOOST_TEST(timed_out);
  BOOST_TEST(ex.submit(square, 5).result(deadlock_timeout) == 25);  // the executor goes on
}

void retries(parex::Executor& ex, const TempDir& dir) {
  const parex::RetryPolicy on_runtime_error{.error = parex::exception_is<std::runtime_error>};
  // Two failures, three retries: the third attempt succeeds.
  BOOST_TEST(ex.submit(parex::CallOptions{.retries = 3, .retry = on_runtime_error}, fail_first, dir / "a", 2)
                 .result(deadlock_timeout) == 3);
  // Five failures, one retry: the second attempt's error, saying so.
  auto e = expect_error<std::runtime_error>([&] {
    ex.submit(parex::CallOptions{.retries = 1, .retry = on_runtime_error}, fail_first, dir / "b", 5)
        .result(deadlock_timeout);
  });
  BOOST_TEST(std::string(e.what()) == "attempt 2 fails");
  // An error the policy does not name is not retried.
  expect_error<std::runtime_error>([&] {
    ex.submit(parex::CallOptions{.retries = 3}, fail_first, dir / "c", 1).result(deadlock_timeout);
  });
  // A deadline is retried (RetryPolicy::timeout): the second attempt is fast.
  BOOST_TEST(ex.submit(parex::CallOptions{.timeout = 300ms, .retries = 2}, slow_first, dir / "d")
                 .result(deadlock_timeout) == 2);
}

void interrupt_queued(parex::Executor& ex, const TempDir& dir) {
  // Both workers busy (each has started its call: its file exists), then one more call.
  std::vector<parex::Future<int>> busy;
  for (int i = 0; i < 2; ++i) busy.push_back(ex.submit(mark_then_sleep, dir / ("busy" + std::to_string(i)), 1500));
  BOOST_TEST(eventually([&] {
    return std::filesystem::exists(dir / "busy0") && std::filesystem::exists(dir / "busy1");
  }));
  auto queued = ex.submit(mark_then_sleep, dir / "queued", 0);
  BOOST_TEST(queued.interrupt());
  expect_error<parex::CancelledError>([&] { queued.result(deadlock_timeout); });
  for (auto& f : busy) BOOST_TEST(f.result(deadlock_timeout) == 1500);
  // Calls after it, on both workers: a worker runs its calls in order.
  std::vector<parex::Future<int>> after;
  for (int i = 0; i < 2; ++i) after.push_back(ex.submit(mark_then_sleep, dir / ("after" + std::to_string(i)), 200));
  for (auto& f : after) BOOST_TEST(f.result(deadlock_timeout) == 200);
  BOOST_TEST(!std::filesystem::exists(dir / "queued"));  // never run
}

void progress(parex::Executor& ex) {
  std::mutex m;
  std::vector<parex::MapProgress> reports;
  std::vector<int> in(100);
  std::iota(in.begin(), in.end(), 0);
  long sum = 0;
  for (int y : ex.map(square, in,
                      {.chunksize = 10,
                       .on_progress = [&](const parex::MapProgress& p) {
                         std::lock_guard lock(m);
                         reports.push_back(p);
                       },
                       .progress_interval = 0ms}))
    sum += y;
  BOOST_TEST(sum == 328350);
  std::lock_guard lock(m);
  BOOST_TEST_REQUIRE(!reports.empty());
  BOOST_TEST(reports.back().done == 100u);
  BOOST_TEST((reports.back().total == std::optional<std::size_t>(100)));
  BOOST_TEST(reports.back().failed == 0u);
  for (std::size_t i = 1; i < reports.size(); ++i) BOOST_TEST(reports[i].done >= reports[i - 1].done);
}

// fresh: nothing ran on ex before (its workers' counts are then exactly this workload's).
void stats(parex::Executor& ex, bool fresh) {
  const auto before = ex.stats();
  std::vector<parex::Future<int>> fs;
  for (int i = 0; i < 10; ++i) fs.push_back(ex.submit(square, i));
  for (int i = 1; i <= 3; ++i) fs.push_back(ex.submit(fail_if_negative, -i));
  for (auto& f : fs) f.exception(deadlock_timeout);
  parex::ExecutorStats s;
  // A worker counts a call just after completing its future: the count may lag a moment.
  BOOST_TEST(eventually([&] {
    s = ex.stats();
    return s.done == before.done + 13;
  }));
  BOOST_TEST(s.failed == before.failed + 3);
  BOOST_TEST(s.queued == 0u);
  BOOST_TEST(s.running == 0u);
  BOOST_TEST(s.restarts == before.restarts);
  BOOST_TEST(s.workers.size() <= ex.max_workers());
  std::size_t calls = 0, failed = 0;
  for (const auto& w : s.workers) {
    calls += w.calls;
    failed += w.failed;
  }
  if (fresh) {
    BOOST_TEST(s.restarts == 0u);
    BOOST_TEST(calls == 13u);
    BOOST_TEST(failed == 3u);
  } else {  // a process pool's workers stopped for deadlines took their counts with them
    BOOST_TEST(calls >= 13u);
    BOOST_TEST(failed >= 3u);
  }
}
}  // namespace
}  // namespace parity

BOOST_AUTO_TEST_SUITE(parity)

BOOST_AUTO_TEST_CASE_TEMPLATE(deadlines_fail_the_call_with_timeout_error, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  deadlines(pool);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(retries_follow_the_policy, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  TempDir dir;
  retries(pool, dir);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(interrupt_cancels_a_queued_call, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  TempDir dir;
  interrupt_queued(pool, dir);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(map_reports_progress, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  progress(pool);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(stats_count_a_known_workload, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  stats(pool, true);
  constexpr bool mpi = std::is_same_v<Pool, MpiPool>;
  for (const auto& w : pool.stats().workers) BOOST_TEST((w.rank > 0) == mpi);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(the_whole_program_on_one_executor, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  TempDir dir;
  parex::Executor& ex = pool;
  deadlines(ex);
  retries(ex, dir);
  interrupt_queued(ex, dir);
  progress(ex);
  stats(ex, false);
}

BOOST_AUTO_TEST_SUITE_END()
