// Worker hygiene (ProcessPoolOptions::idle_timeout, max_rss_per_child): workers that end
// when idle and come back when calls do; a worker past its memory limit replaced between
// calls with nothing lost. Only this thread asserts.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include <parex/parex.hpp>

#include "support/helpers.hpp"

#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstring>
#include <set>
#include <cstdio>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;

namespace hygiene_test {
int pid_of(int) { return static_cast<int>(::getpid()); }
// This worker's resident set now, in bytes.
long rss_now(int) {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (!f || std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  if (f) std::fclose(f);
  return resident * ::sysconf(_SC_PAGESIZE);
}
// Grows this worker by mb MiB (touched, kept), then returns its pid.
int grow(int mb) {
  static std::vector<std::vector<char>> kept;
  kept.emplace_back(static_cast<std::size_t>(mb) << 20);
  std::memset(kept.back().data(), 1, kept.back().size());
  return static_cast<int>(::getpid());
}
}  // namespace hygiene_test

using namespace hygiene_test;
PAREX_REGISTER_AS("hygiene_test::pid_of", pid_of);
PAREX_REGISTER_AS("hygiene_test::grow", grow);
PAREX_REGISTER_AS("hygiene_test::rss_now", rss_now);

namespace {
bool gone(int pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }
}  // namespace

BOOST_AUTO_TEST_SUITE(worker_hygiene)

BOOST_AUTO_TEST_CASE(idle_workers_end_and_come_back_on_demand) {
  parex::ProcessPoolExecutor pool{{.max_workers = 2, .idle_timeout = 150ms}};
  BOOST_TEST(pool.stats().workers.empty());  // none before the first call
  std::set<int> first;
  std::vector<parex::Future<int>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(pool.submit(pid_of, i));
  for (auto& f : fs) first.insert(f.result(test::deadlock_timeout));
  BOOST_TEST(test::eventually([&] { return pool.stats().workers.empty(); }));
  for (int pid : first) BOOST_TEST(test::eventually([&] { return gone(pid); }));
  const std::size_t restarts = pool.stats().restarts;
  const int again = pool.submit(pid_of, 0).result(test::deadlock_timeout);  // one worker comes back for one call
  BOOST_TEST(!first.contains(again));
  BOOST_TEST(pool.stats().workers.size() == 1u);
  // A worker in use is not idle: calls 50 ms apart keep the same one.
  for (int i = 0; i < 5; ++i) {
    BOOST_TEST(pool.submit(pid_of, i).result(test::deadlock_timeout) == again);
    std::this_thread::sleep_for(50ms);
  }
  BOOST_TEST(pool.stats().restarts == restarts + 1);
}

BOOST_AUTO_TEST_CASE(shutdown_right_after_a_submit_starts_a_worker_for_it) {
  // No worker exists yet (idle_timeout starts them on demand) when the call arrives with
  // the shutdown: one must start for it, and the shutdown must not wait for ever.
  for (int round = 0; round < 5; ++round) {
    parex::ProcessPoolExecutor pool{{.max_workers = 2, .idle_timeout = 1s}};
    auto f = pool.submit(pid_of, round);
    pool.shutdown();
    BOOST_TEST(f.result(test::deadlock_timeout) > 0);
  }
}

BOOST_AUTO_TEST_CASE(a_worker_past_its_memory_limit_is_replaced_between_calls) {
  // The limit: 64 MiB above what a worker of this build weighs (sanitizers weigh a lot).
  long baseline = 0;
  {
    parex::ProcessPoolExecutor probe{{.max_workers = 1}};
    baseline = probe.submit(rss_now, 0).result(test::deadlock_timeout);
  }
  const auto limit = static_cast<std::size_t>(baseline) + (std::size_t{64} << 20);
  parex::ProcessPoolExecutor pool{{.max_workers = 1, .max_rss_per_child = limit}};
  const int before = pool.submit(pid_of, 0).result(test::deadlock_timeout);
  auto big = pool.submit(grow, 128);  // passes the limit: it finishes, then its worker ends
  std::vector<parex::Future<int>> after;
  for (int i = 0; i < 20; ++i) after.push_back(pool.submit(pid_of, i));
  BOOST_TEST(big.result(test::deadlock_timeout) == before);
  std::set<int> pids;
  for (auto& f : after) pids.insert(f.result(test::deadlock_timeout));  // none lost, none failed
  BOOST_TEST(!pids.contains(before));
  BOOST_TEST(test::eventually([&] { return gone(before); }));
  const parex::ExecutorStats s = pool.stats();
  BOOST_TEST(s.restarts >= 1u);
  BOOST_TEST(s.failed == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
