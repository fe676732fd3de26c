// ThreadPoolExecutor beyond the shared contract: any callable, options, breakage, stress.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/helpers.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <pthread.h>
#include <ranges>
#include <stdexcept>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace test;
using parex::ThreadPoolExecutor;

BOOST_AUTO_TEST_SUITE(thread_pool)

BOOST_AUTO_TEST_CASE(any_callable_with_captures_and_move_only_values) {
  ThreadPoolExecutor pool{{.max_workers = 2}};
  const int offset = 100;
  auto f = pool.submit([&](int x) { return x + offset; }, 1);
  BOOST_TEST(f.result(deadlock_timeout) == 101);
  auto g = pool.submit([](std::unique_ptr<int> p) { return std::make_unique<int>(*p * 2); }, std::make_unique<int>(21));
  BOOST_TEST(*std::move(g).result(deadlock_timeout) == 42);
  struct Functor {
    int k;
    int operator()(int x) const { return k * x; }
  };
  BOOST_TEST(pool.submit(Functor{3}, 5).result(deadlock_timeout) == 15);
  std::vector<int> out;
  for (int y : pool.map([&](int x) { return x * offset; }, std::vector{1, 2, 3})) out.push_back(y);
  BOOST_TEST((out == std::vector<int>{100, 200, 300}));
}

BOOST_AUTO_TEST_CASE(default_workers_follow_the_cpus_we_may_use) {
  ThreadPoolExecutor pool;
  BOOST_TEST(pool.max_workers() == parex::process_cpu_count());
  BOOST_TEST(parex::process_cpu_count() >= 1u);
  cpu_set_t set;
  CPU_ZERO(&set);
  BOOST_REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
  BOOST_TEST(parex::process_cpu_count() <= static_cast<std::size_t>(CPU_COUNT(&set)));
}

BOOST_AUTO_TEST_CASE(threads_are_named_and_initialized) {
  std::atomic<int> inits{0};
  ThreadPoolExecutor pool{{.max_workers = 3, .thread_name_prefix = "calc", .initializer = [&] { inits.fetch_add(1); }}};
  std::set<std::string> names;
  std::mutex m;
  std::vector<parex::Future<void>> fs;
  for (int i = 0; i < 30; ++i)
    fs.push_back(pool.submit([&] {
      char buf[16] = {};
      pthread_getname_np(pthread_self(), buf, sizeof buf);
      std::lock_guard lock(m);
      names.insert(buf);
      std::this_thread::sleep_for(1ms);
    }));
  for (auto& f : fs) f.result(deadlock_timeout);
  BOOST_TEST(eventually([&] { return inits.load() == 3; }));
  for (auto& n : names) BOOST_TEST(n.rfind("calc_", 0) == 0u);
}

BOOST_AUTO_TEST_CASE(failing_initializer_breaks_the_pool) {
  Gate release;
  ThreadPoolExecutor pool{{.max_workers = 1, .initializer = [&] {
                             release.wait();
                             throw std::runtime_error("no database");
                           }}};
  auto queued = pool.submit([] { return 1; });
  release.open();
  auto e = expect_error<parex::BrokenThreadPool>([&] { queued.result(deadlock_timeout); });
  BOOST_TEST(std::string(e.what()).find("no database") != std::string::npos);
  BOOST_CHECK_THROW(pool.submit([] { return 2; }), parex::BrokenThreadPool);
  BOOST_CHECK_THROW(pool.submit([] { return 2; }), parex::BrokenExecutor);
}

BOOST_AUTO_TEST_CASE(many_producers_no_lost_or_duplicated_result) {
  ThreadPoolExecutor pool{{.max_workers = 3}};
  constexpr int producers = 4, per = 25'000;
  std::vector<std::vector<parex::Future<long>>> fs(producers);
  std::vector<std::thread> ts;
  for (int p = 0; p < producers; ++p)
    ts.emplace_back([&, p] {
      for (int i = 0; i < per; ++i) fs[p].push_back(pool.submit([](long x) { return x * 2; }, long(p) * per + i));
    });
  for (auto& t : ts) t.join();
  long sum = 0;
  for (auto& v : fs)
    for (auto& f : v) sum += f.result(deadlock_timeout);
  const long n = long(producers) * per;
  BOOST_TEST(sum == n * (n - 1));
}

BOOST_AUTO_TEST_CASE(shutdown_runs_everything_queued_round_after_round) {
  // Workers that find nothing just before shutdown hands the queue over must still run
  // it: every future is done once shutdown(wait=true) returns.
  for (int round = 0; round < 300; ++round) {
    std::vector<parex::Future<int>> fs;
    {
      ThreadPoolExecutor pool{{.max_workers = 2}};
      for (int i = 0; i < 20; ++i) fs.push_back(pool.submit([](int x) { return x; }, i));
      pool.shutdown(true);
    }
    for (int i = 0; i < 20; ++i) BOOST_REQUIRE(fs[i].result(0s) == i);
  }
}

BOOST_AUTO_TEST_CASE(map_input_that_throws_loses_no_submitted_result) {
  ThreadPoolExecutor pool{{.max_workers = 2}};
  auto input = std::views::iota(0, 20) | std::views::transform([](int x) {
                 if (x == 10) throw std::runtime_error("bad record");
                 return x;
               });
  auto results = pool.map([](int x) { return x * x; }, input, {.chunksize = 1, .buffersize = 4});
  std::vector<int> seen;
  std::size_t errors = 0;
  for (auto it = results.begin(); it != results.end();) {
    seen.push_back(*it);
    try {
      ++it;
    } catch (const std::runtime_error& e) {
      BOOST_TEST(std::string(e.what()) == "bad record");
      ++errors;
    }
  }
  // Every call that went out is yielded, in order; the input's error surfaces on the way.
  BOOST_TEST(seen == (std::vector<int>{0, 1, 4, 9, 16, 25, 36, 49, 64, 81}));
  BOOST_TEST(errors > 0u);
}

BOOST_AUTO_TEST_CASE(map_with_move_only_results) {
  ThreadPoolExecutor pool{{.max_workers = 2}};
  int sum = 0;
  for (auto& p : pool.map([](int x) { return std::make_unique<int>(x); }, std::vector{1, 2, 3}, {.chunksize = 2}))
    sum += *std::unique_ptr<int>(std::move(p));
  BOOST_TEST(sum == 6);
}

BOOST_AUTO_TEST_CASE(tasks_submit_more_tasks) {
  ThreadPoolExecutor pool{{.max_workers = 2}};
  auto outer = pool.submit([&pool] { return pool.submit([] { return 5; }); });
  auto inner = outer.result(deadlock_timeout);
  BOOST_TEST(inner.result(deadlock_timeout) == 5);
}

BOOST_AUTO_TEST_CASE(shutdown_from_inside_a_task) {
  ThreadPoolExecutor pool{{.max_workers = 2}};
  auto f = pool.submit([&pool] {
    try {
      pool.shutdown(true);  // would wait for itself
      return std::string("no error");
    } catch (const parex::InvalidStateError&) {
      pool.shutdown(false);
      return std::string("refused");
    }
  });
  BOOST_TEST(f.result(deadlock_timeout) == "refused");
  BOOST_CHECK_THROW(pool.submit([] {}), parex::InvalidStateError);
}

// Three ways to call into a pool's shutdown machinery while its owner is inside
// shutdown(wait=true), joining the workers. A deadlock here hangs the test (CTest's
// timeout fails it).
BOOST_AUTO_TEST_CASE(an_initializer_failing_while_the_owner_joins) {
  ThreadPoolExecutor pool{{.max_workers = 2, .initializer = [] {
                             std::this_thread::sleep_for(50ms);  // the owner is joining by now
                             throw std::runtime_error("no database");
                           }}};
  pool.shutdown(true);
  BOOST_CHECK_THROW(pool.submit([] {}), parex::BrokenThreadPool);
}

BOOST_AUTO_TEST_CASE(a_task_shutting_down_while_the_owner_joins) {
  ThreadPoolExecutor pool{{.max_workers = 2}};
  Gate go;
  auto f = pool.submit([&] {
    go.wait();
    pool.shutdown(false);
    try {
      pool.shutdown(true);
      return std::string("no error");
    } catch (const parex::InvalidStateError&) {
      return std::string("refused");
    }
  });
  std::thread opener([&] {
    std::this_thread::sleep_for(50ms);  // the owner is joining by now
    go.open();
  });
  pool.shutdown(true);
  opener.join();
  BOOST_TEST(f.result(deadlock_timeout) == "refused");
}

BOOST_AUTO_TEST_CASE(a_cancelled_futures_callback_shuts_the_pool_down) {
  ThreadPoolExecutor pool{{.max_workers = 1}};
  Gate release;
  auto running = pool.submit([&] { return release.wait(); });
  BOOST_REQUIRE(eventually([&] { return running.running(); }));
  auto queued = pool.submit([] { return 1; });
  std::atomic<bool> called{false};
  queued.add_done_callback([&](const parex::Future<int>&) {
    pool.shutdown(false);  // from inside shutdown(cancel_futures=true), on this very thread
    called = true;
  });
  pool.shutdown(false, true);
  BOOST_TEST(queued.cancelled());
  BOOST_TEST(called.load());
  release.open();
  BOOST_TEST(running.result(deadlock_timeout));
}

BOOST_AUTO_TEST_CASE(a_long_task_does_not_strand_the_queue) {
  // One worker is stuck on a long task; everything queued behind it must still run on
  // the other worker (work stealing), not wait for the long one.
  ThreadPoolExecutor pool{{.max_workers = 2}};
  Gate release;
  auto blocker = pool.submit([&] { return release.wait(); });
  std::vector<parex::Future<int>> fs;
  for (int i = 0; i < 100; ++i) fs.push_back(pool.submit([](int x) { return x; }, i));
  for (int i = 0; i < 100; ++i) BOOST_REQUIRE(fs[i].result(deadlock_timeout) == i);
  BOOST_TEST(!blocker.done());
  release.open();
  BOOST_TEST(blocker.result(deadlock_timeout));
}

BOOST_AUTO_TEST_CASE(burst_submit_from_idle_wakes_everyone_needed) {
  // Repeated bursts after the workers went to sleep: no lost wake-up may leave a task
  // queued forever.
  ThreadPoolExecutor pool{{.max_workers = 4}};
  for (int round = 0; round < 200; ++round) {
    std::vector<parex::Future<int>> fs;
    for (int i = 0; i < 1 + round % 7; ++i) fs.push_back(pool.submit([](int x) { return x + 1; }, i));
    for (std::size_t i = 0; i < fs.size(); ++i) BOOST_REQUIRE(fs[i].result(deadlock_timeout) == int(i) + 1);
    if (round % 50 == 0) std::this_thread::sleep_for(2ms);
  }
}

BOOST_AUTO_TEST_CASE(n_tasks_that_wait_for_each_other_run_at_once_on_n_threads) {
  // Every queued task must reach a thread while any thread sleeps, even when the threads
  // that took work are all blocked: each of n tasks waits until all n have started. A
  // wake-up chain that stops early leaves a task in a blocked worker's deque for ever.
  for (int n = 2; n <= 8; ++n) {
    ThreadPoolExecutor pool{{.max_workers = static_cast<std::size_t>(n)}};
    for (int round = 0; round < 40; ++round) {
      if (round % 4 == 0) std::this_thread::sleep_for(1ms);  // let every worker fall asleep
      std::atomic<int> arrived{0};
      std::vector<parex::Future<bool>> fs;
      for (int i = 0; i < n; ++i)
        fs.push_back(pool.submit([&arrived, n] {
          arrived.fetch_add(1);
          const auto until = std::chrono::steady_clock::now() + 20s;
          while (arrived.load() < n)
            if (std::chrono::steady_clock::now() > until) return false;
            else std::this_thread::yield();
          return true;
        }));
      for (auto& f : fs) {
        const bool all_started = f.result(deadlock_timeout);
        BOOST_REQUIRE_MESSAGE(all_started, n << " threads, round " << round << ": " << arrived.load() << " started");
      }
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
