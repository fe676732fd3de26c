// How pools start, end and report: a worker's death is seen from the process, not from
// its pipes (a child it forked cannot hide it); kills during start-up do not break a
// pool; terminate_workers / kill_workers end stuck calls; concurrent shutdowns lose no
// future; thread names, initializer failures and callback errors say what happened.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"
#include "support/processes.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <pthread.h>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace test;
using parex::ProcessPoolExecutor;
using parex::ThreadPoolExecutor;

// Forks a child that sleeps `seconds` (keeping the worker's pipes open), writes its pid
// to `pid_file`, then either dies at once by SIGKILL or returns.
int fork_then(std::string pid_file, int seconds, bool die) {
  const pid_t child = ::fork();
  if (child == 0) {
    ::sleep(static_cast<unsigned>(seconds));
    ::_exit(0);
  }
  std::ofstream(pid_file) << child;
  if (die) ::raise(SIGKILL);
  return static_cast<int>(child);
}
PAREX_REGISTER(fork_then);
void failing_initializer();  // test_process_pool.cpp: throws std::runtime_error

BOOST_AUTO_TEST_SUITE(lifecycle)

// Issue: the caller saw WorkerCrashed only when the grandchild exited, and destroying the
// pool waited for it: death was seen as EOF on a pipe the grandchild had inherited.
BOOST_AUTO_TEST_CASE(a_dead_worker_is_seen_at_once_though_its_fork_lives_on) {
  const std::string pid_file = "/tmp/parex-grandchild-" + std::to_string(::getpid());
  pid_t grandchild = 0;
  {
    ProcessPoolExecutor pool{{.max_workers = 1}};
    auto f = pool.submit(fork_then, pid_file, 60, true);
    BOOST_CHECK_THROW(f.result(20s), parex::WorkerCrashed);  // the grandchild sleeps 60 s
    std::ifstream(pid_file) >> grandchild;
    BOOST_TEST(pool.submit(square, 5).result(deadlock_timeout) == 25);  // and the pool goes on
  }
  BOOST_TEST(grandchild > 0);
  BOOST_TEST(test::process_alive(grandchild));  // the pool did not wait for it
  ::kill(grandchild, SIGKILL);
  std::filesystem::remove(pid_file);
}

BOOST_AUTO_TEST_CASE(shutdown_does_not_wait_for_a_workers_fork) {
  const std::string pid_file = "/tmp/parex-grandchild2-" + std::to_string(::getpid());
  int grandchild = 0;
  {
    ProcessPoolExecutor pool{{.max_workers = 1}};
    grandchild = pool.submit(fork_then, pid_file, 60, false).result(deadlock_timeout);
  }  // the worker exits on EOF; its fork still holds the result pipe
  BOOST_TEST(test::process_alive(grandchild));
  ::kill(grandchild, SIGKILL);
  std::filesystem::remove(pid_file);
}

// Issue: three kills in a row before the handshake broke the pool for good, blaming a
// missing parex::init. Killed workers are replaced (with back-off) and the pool goes on.
BOOST_AUTO_TEST_CASE(workers_killed_during_start_up_are_replaced) {
  std::atomic<bool> killing{true};
  std::atomic<int> kills{0};
  std::thread killer([&] {
    std::set<pid_t> seen;
    while (killing) {
      for (pid_t p : children())
        if (seen.insert(p).second && ::kill(p, SIGKILL) == 0) ++kills;
      std::this_thread::sleep_for(100us);
    }
  });
  ProcessPoolExecutor pool{{.max_workers = 1}};
  auto f = pool.submit(square, 6);  // waits through the kills
  BOOST_TEST(eventually([&] { return kills.load() >= 5; }));
  killing = false;
  killer.join();
  BOOST_TEST(f.result(deadlock_timeout) == 36);
  BOOST_TEST(pool.submit(square, 7).result(deadlock_timeout) == 49);
}

using TerminateOrKill = std::tuple<std::true_type, std::false_type>;
BOOST_AUTO_TEST_CASE_TEMPLATE(ending_workers_ends_a_stuck_call, End, TerminateOrKill) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  std::vector<parex::Future<int>> stuck;
  for (int i = 0; i < 2; ++i) stuck.push_back(pool.submit(sleep_then_echo, 60'000));
  std::vector<parex::Future<int>> queued;
  for (int i = 0; i < 4; ++i) queued.push_back(pool.submit(sleep_then_echo, 60'000));
  BOOST_REQUIRE(eventually([&] { return stuck[0].running() && stuck[1].running(); }));
  if constexpr (End::value) pool.terminate_workers();
  else pool.kill_workers();
  for (auto& f : stuck) {
    BOOST_CHECK_THROW(f.result(deadlock_timeout), parex::BrokenProcessPool);
  }
  for (auto& f : queued) {
    BOOST_TEST(eventually([&] { return f.done(); }));
    BOOST_TEST((f.cancelled() || f.exception(0s) != nullptr));
  }
  BOOST_CHECK_THROW(pool.submit(square, 1), parex::InvalidStateError);
  pool.shutdown(true);  // returns: nothing is left running
  BOOST_TEST(children().empty());
}

// Issue: with one shutdown(cancel_futures=false) racing another shutdown, thousands of
// accepted futures were never completed.
BOOST_AUTO_TEST_CASE(concurrent_shutdowns_leave_no_future_pending) {
  // 3000 rounds reproduced the loss within ~2000 before the fix; the soak runs more.
  const char* env = std::getenv("PAREX_SHUTDOWN_ROUNDS");
  const int rounds = env ? std::atoi(env) : 400;
  std::mt19937 rng(7);
  for (int round = 0; round < rounds; ++round) {
    std::vector<parex::Future<int>> fs[8];
    {
      ThreadPoolExecutor pool{{.max_workers = 2}};
      std::atomic<bool> go{false};
      std::vector<std::thread> threads;
      for (auto& mine : fs)
        threads.emplace_back([&pool, &go, &mine] {
          while (!go) std::this_thread::yield();
          try {
            for (int i = 0; i < 2000; ++i) mine.push_back(pool.submit([i] { return i; }));
          } catch (const parex::InvalidStateError&) {
          }
        });
      const bool first_waits = rng() & 1;
      const auto delay = std::chrono::microseconds(rng() % 300);
      threads.emplace_back([&, first_waits, delay] {
        std::this_thread::sleep_for(delay);
        pool.shutdown(first_waits, false);
      });
      threads.emplace_back([&, first_waits, delay] {
        std::this_thread::sleep_for(delay);
        pool.shutdown(!first_waits, true);
      });
      go = true;
      for (auto& t : threads) t.join();
    }
    for (auto& mine : fs)
      for (std::size_t i = 0; i < mine.size(); ++i) {
        BOOST_REQUIRE_MESSAGE(mine[i].done(), "round " << round << ": a future was left pending");
        if (!mine[i].cancelled()) BOOST_REQUIRE(mine[i].result(0s) == static_cast<int>(i));
      }
  }
}

BOOST_AUTO_TEST_CASE(default_thread_names_differ_between_pools) {
  std::mutex m;
  std::set<std::string> names[2];
  for (auto& set : names) {
    ThreadPoolExecutor pool{{.max_workers = 2, .initializer = [&] {
                               char name[16] = {};
                               pthread_getname_np(pthread_self(), name, sizeof name);
                               std::lock_guard lock(m);
                               set.insert(name);
                             }}};
    pool.shutdown(true);
  }
  BOOST_TEST(names[0].size() == 2u);
  BOOST_TEST(names[1].size() == 2u);
  for (const auto& n : names[0]) {
    BOOST_TEST(n.rfind("parex-", 0) == 0u);
    BOOST_TEST(!names[1].contains(n));
  }
}

BOOST_AUTO_TEST_CASE(an_initializer_failure_names_its_type_and_is_reported) {
  test::StderrCapture err;
  ThreadPoolExecutor pool{{.max_workers = 1, .initializer = [] { throw std::out_of_range("no config"); }}};
  auto e = expect_error<parex::BrokenThreadPool>([&] { pool.submit([] { return 1; }).result(deadlock_timeout); });
  BOOST_TEST(std::string(e.what()).find("std::out_of_range: no config") != std::string::npos);
  pool.shutdown(true);
  BOOST_TEST(err.text().find("std::out_of_range: no config") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_worker_initializer_failure_is_reported_on_stderr) {
  test::StderrCapture err;
  {
    ProcessPoolExecutor pool{{.max_workers = 1, .initializer = failing_initializer}};
    BOOST_CHECK_THROW(pool.submit(square, 2).result(deadlock_timeout), parex::BrokenProcessPool);
  }
  BOOST_TEST(err.text().find("std::runtime_error: cannot open the model file") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_callback_exception_is_reported_with_its_type) {
  test::StderrCapture err;
  parex::Promise<int> p;
  p.get_future().add_done_callback([](const parex::Future<int>&) { throw std::length_error("callback gave up"); });
  p.set_result(1);
  BOOST_TEST(err.text().find("std::length_error: callback gave up") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
