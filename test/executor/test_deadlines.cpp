// Beyond Python: a call's deadline (CallOptions::timeout, MapOptions::call_timeout),
// Future::interrupt, MapOptions::interrupt_on_exit and retries, on both pools; then
// Executor::stats and MapOptions::on_progress (suite progress_and_stats). Process
// pool calls that hang write their worker's pid into a shared Array first, so that the
// tests can check that the worker the pool stopped is gone. Only this thread asserts.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include <parex/parex.hpp>

#include "support/helpers.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;

namespace deadline_test {
int twice(int x) { return 2 * x; }
// Records its pid in pids[slot], then never returns (until stopped).
int hang(parex::Array<int> pids, int slot) {
  pids[static_cast<std::size_t>(slot)] = static_cast<int>(::getpid());
  for (;;) std::this_thread::sleep_for(1h);
}
// Hangs when x is a multiple of every (x != 0), else returns 2x.
int hang_every(int x, int every) {
  if (every && x % every == 0)
    for (;;) std::this_thread::sleep_for(1h);
  return 2 * x;
}
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
// Counts its attempts in tries; the first `bad` ones crash (SIGKILL), then it returns 42.
int crash_first(parex::Value<int> tries, int bad) {
  if (++tries.value() <= bad) ::kill(::getpid(), SIGKILL);
  return 42;
}
// The first `bad` attempts throw ValueError, then it returns 7.
int fail_first(parex::Value<int> tries, int bad) {
  if (++tries.value() <= bad) throw parex::ValueError("attempt " + std::to_string(tries.value()));
  return 7;
}
int fail_if_odd_registered(int x) {
  if (x % 2) throw parex::ValueError("odd");
  return x;
}
// Always throws std::runtime_error (not retried unless named).
int always_fails(parex::Value<int> tries) {
  ++tries.value();
  throw std::runtime_error("no");
}
}  // namespace deadline_test

using namespace deadline_test;
PAREX_REGISTER_AS("deadline_test::twice", twice);
PAREX_REGISTER_AS("deadline_test::hang", hang);
PAREX_REGISTER_AS("deadline_test::hang_every", hang_every);
PAREX_REGISTER_AS("deadline_test::sleep_ms", sleep_ms);
PAREX_REGISTER_AS("deadline_test::crash_first", crash_first);
PAREX_REGISTER_AS("deadline_test::fail_first", fail_first);
PAREX_REGISTER_AS("deadline_test::always_fails", always_fails);
PAREX_REGISTER_AS("deadline_test::fail_if_odd_registered", fail_if_odd_registered);

namespace {
bool gone(int pid) { return pid > 0 && ::kill(pid, 0) == -1 && errno == ESRCH; }
bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
}  // namespace

BOOST_AUTO_TEST_SUITE(deadlines)

BOOST_AUTO_TEST_CASE(process_pool_deadline_fails_only_the_hung_calls) {
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  parex::Array<int> pids(4);
  std::vector<parex::Future<int>> fs;
  int hung = 0;
  for (int i = 0; i < 24; ++i) {
    if (i % 6 == 5) fs.push_back(pool.submit(parex::CallOptions{.timeout = 150ms}, hang, pids, hung++));
    else fs.push_back(pool.submit(parex::CallOptions{.timeout = 150ms}, twice, i));
  }
  for (int i = 0; i < 24; ++i) {
    if (i % 6 == 5) {
      auto e = test::expect_error<parex::TimeoutError>([&] { fs[i].result(test::deadlock_timeout); });
      BOOST_TEST(contains(e.what(), "deadline_test::hang"));
      BOOST_TEST(contains(e.what(), "deadline of 150 ms"));
    } else {
      BOOST_TEST(fs[i].result(test::deadlock_timeout) == 2 * i);
    }
  }
  for (int k = 0; k < 4; ++k) BOOST_TEST(test::eventually([&] { return gone(pids[k]); }));
  BOOST_TEST(pool.submit(twice, 21).result(test::deadlock_timeout) == 42);  // the pool goes on
}

BOOST_AUTO_TEST_CASE(deadline_counts_from_the_start_not_from_submit) {
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  auto slow = pool.submit(sleep_ms, 400);  // no deadline; the timed calls wait behind it
  std::vector<parex::Future<int>> timed;
  for (int i = 0; i < 5; ++i) timed.push_back(pool.submit(parex::CallOptions{.timeout = 100ms}, twice, i));
  BOOST_TEST(slow.result(test::deadlock_timeout) == 400);
  for (int i = 0; i < 5; ++i) BOOST_TEST(timed[i].result(test::deadlock_timeout) == 2 * i);
}

BOOST_AUTO_TEST_CASE(map_call_timeout_fails_the_item_and_its_chunk_goes_on) {
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  std::vector<int> xs{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
  std::vector<int> every(xs.size(), 5);  // 5 and 10 hang
  int ok = 0, timeouts = 0, i = 0;
  auto results = pool.map(hang_every, xs, every, {.chunksize = 4, .call_timeout = 150ms});
  for (auto it = results.begin(); it != results.end(); ++i) {
    try {
      const int y = *it;
      BOOST_TEST(y == 2 * xs[static_cast<std::size_t>(i)]);
      ++ok;
    } catch (const parex::TimeoutError&) {
      BOOST_TEST(xs[static_cast<std::size_t>(i)] % 5 == 0);
      ++timeouts;
    }
    try {
      ++it;
    } catch (const parex::TimeoutError&) {
      BOOST_FAIL("advancing threw");
    }
  }
  BOOST_TEST(ok == 11);
  BOOST_TEST(timeouts == 2);
}

BOOST_AUTO_TEST_CASE(interrupt_stops_a_running_call_and_the_pool_goes_on) {
  parex::ProcessPoolExecutor pool{{.max_workers = 1, .stop_grace = 200ms}};
  parex::Array<int> pids(1);
  auto f = pool.submit(hang, pids, 0);
  auto queued = pool.submit(twice, 5);  // behind it: runs on the replacement
  BOOST_TEST(test::eventually([&] { return pids[0] != 0; }));
  BOOST_TEST(f.running());
  BOOST_TEST(!f.cancel());  // Python's meaning: a running call is not cancelled
  BOOST_TEST(f.interrupt());
  auto e = test::expect_error<parex::CancelledError>([&] { f.result(test::deadlock_timeout); });
  BOOST_TEST(contains(e.what(), "interrupted"));
  BOOST_TEST(test::eventually([&] { return gone(pids[0]); }));
  BOOST_TEST(queued.result(test::deadlock_timeout) == 10);
  BOOST_TEST(!queued.interrupt());  // done: nothing to stop
  BOOST_TEST(pool.submit(twice, 8).result(test::deadlock_timeout) == 16);
}

BOOST_AUTO_TEST_CASE(interrupt_of_a_call_not_started_cancels_it) {
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  auto slow = pool.submit(sleep_ms, 300);
  auto waiting = pool.submit(twice, 1);
  BOOST_TEST(waiting.interrupt());
  BOOST_TEST(waiting.cancelled());
  BOOST_TEST(slow.result(test::deadlock_timeout) == 300);  // nobody else was stopped
}

BOOST_AUTO_TEST_CASE(interrupt_a_call_queued_in_a_worker_behind_another) {
  // The second call may reach the worker while the first hangs there (a batch), or wait
  // in the pool. Interrupting it stops nobody while the first runs: it is stopped when it
  // starts, or cancelled where it waits. Interrupting the first then stops the worker,
  // and both fail with CancelledError. The pool goes on.
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  parex::Array<int> pids(2);
  auto first = pool.submit(hang, pids, 0);
  BOOST_TEST(test::eventually([&] { return pids[0] != 0; }));
  auto second = pool.submit(twice, 3);
  std::this_thread::sleep_for(20ms);
  BOOST_TEST(second.interrupt());
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(::kill(pids[0], 0) == 0);  // the first call's worker was not stopped for it
  BOOST_TEST(first.interrupt());
  test::expect_error<parex::CancelledError>([&] { first.result(test::deadlock_timeout); });
  test::expect_error<parex::CancelledError>([&] { second.result(test::deadlock_timeout); });
  BOOST_TEST(test::eventually([&] { return gone(pids[0]); }));
  BOOST_TEST(pool.submit(twice, 4).result(test::deadlock_timeout) == 8);
}

BOOST_AUTO_TEST_CASE(an_interrupted_call_queued_in_a_worker_is_stopped_when_it_starts) {
  // Sent in one batch behind a short call: interrupted while it waits there, it is stopped
  // as soon as it runs, and the short call keeps its result.
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  parex::Array<int> pids(1);
  pool.submit(twice, 0).result(test::deadlock_timeout);  // the worker is up
  auto slow = pool.submit(sleep_ms, 200);
  auto hung = pool.submit(hang, pids, 0);
  BOOST_TEST(hung.interrupt());
  BOOST_TEST(slow.result(test::deadlock_timeout) == 200);
  test::expect_error<parex::CancelledError>([&] { hung.result(test::deadlock_timeout); });
  BOOST_TEST(pool.submit(twice, 2).result(test::deadlock_timeout) == 4);
}

BOOST_AUTO_TEST_CASE(leaving_a_map_early_interrupts_running_calls) {
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  parex::Array<int> pids(2);
  {
    std::vector<int> xs{1, 5, 10};  // 5 and 10 hang
    std::vector<int> every(3, 5);
    auto results = pool.map(hang_every, xs, every, {.interrupt_on_exit = true});
    BOOST_TEST(*results.begin() == 2);
  }  // the two hung calls are stopped here
  // The workers that ran them are replaced: both workers answer at once.
  auto a = pool.submit(sleep_ms, 50), b = pool.submit(sleep_ms, 50);
  BOOST_TEST(a.result(test::deadlock_timeout) == 50);
  BOOST_TEST(b.result(test::deadlock_timeout) == 50);
}

BOOST_AUTO_TEST_CASE(thread_pool_deadline_fails_the_future_and_the_call_runs_on) {
  parex::ThreadPoolExecutor pool{{.max_workers = 2}};
  std::atomic<int> finished{0};
  auto slow = pool.submit(parex::CallOptions{.timeout = 50ms}, [&] {
    std::this_thread::sleep_for(300ms);
    ++finished;
    return 1;
  });
  auto quick = pool.submit(parex::CallOptions{.timeout = 5s}, [] { return 2; });
  auto e = test::expect_error<parex::TimeoutError>([&] { slow.result(test::deadlock_timeout); });
  BOOST_TEST(contains(e.what(), "deadline of 50 ms"));
  BOOST_TEST(quick.result(test::deadlock_timeout) == 2);
  BOOST_TEST(test::eventually([&] { return finished.load() == 1; }));  // it ran on to its end
  BOOST_TEST(static_cast<bool>(slow.exception()));                        // its result was dropped
  auto chunks = pool.map([](int ms) { return sleep_ms(ms); }, std::vector{1, 200, 1}, {.call_timeout = 50ms});
  std::vector<int> got;
  for (auto it = chunks.begin(); it != chunks.end(); ++it) {
    try {
      got.push_back(*it);
    } catch (const parex::TimeoutError&) {
      got.push_back(-1);
    }
  }
  BOOST_TEST((got == std::vector{1, -1, 1}));
}

BOOST_AUTO_TEST_CASE(retries_on_a_crash_and_on_named_exceptions) {
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  parex::Value<int> tries(0);
  BOOST_TEST(pool.submit(parex::CallOptions{.retries = 2}, crash_first, tries, 2).result(test::deadlock_timeout) == 42);
  BOOST_TEST(tries.value() == 3);

  tries.value() = 0;
  auto e = test::expect_error<parex::WorkerCrashed>(
      [&] { pool.submit(parex::CallOptions{.retries = 1}, crash_first, tries, 5).result(test::deadlock_timeout); });
  BOOST_TEST(contains(e.what(), "after 2 attempts"));
  BOOST_TEST(tries.value() == 2);

  tries.value() = 0;
  parex::CallOptions named{.retries = 3, .retry = {.error = parex::exception_is<parex::ValueError>}};
  BOOST_TEST(pool.submit(named, fail_first, tries, 2).result(test::deadlock_timeout) == 7);
  BOOST_TEST(tries.value() == 3);

  tries.value() = 0;  // not named: one attempt
  test::expect_error<std::runtime_error>(
      [&] { pool.submit(named, always_fails, tries).result(test::deadlock_timeout); });
  BOOST_TEST(tries.value() == 1);

  tries.value() = 0;  // ValueError not named: no retry
  test::expect_error<parex::ValueError>(
      [&] { pool.submit(parex::CallOptions{.retries = 3}, fail_first, tries, 1).result(test::deadlock_timeout); });
  BOOST_TEST(tries.value() == 1);
}

BOOST_AUTO_TEST_CASE(retries_after_timeouts_then_the_error_counts_attempts) {
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  auto e = test::expect_error<parex::TimeoutError>([&] {
    pool.submit(parex::CallOptions{.timeout = 50ms, .retries = 2}, hang_every, 0, 1).result(test::deadlock_timeout);
  });
  BOOST_TEST(contains(e.what(), "after 3 attempts"));
  parex::CallOptions no_timeout_retry{.timeout = 50ms, .retries = 2, .retry = {.timeout = false}};
  e = test::expect_error<parex::TimeoutError>(
      [&] { pool.submit(no_timeout_retry, hang_every, 0, 1).result(test::deadlock_timeout); });
  BOOST_TEST(!contains(e.what(), "attempts"));
  BOOST_TEST(pool.submit(twice, 1).result(test::deadlock_timeout) == 2);
}

BOOST_AUTO_TEST_CASE(interrupt_ends_a_retried_call) {
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  parex::Array<int> pids(1);
  auto f = pool.submit(parex::CallOptions{.retries = 5}, hang, pids, 0);
  BOOST_TEST(test::eventually([&] { return pids[0] != 0; }));
  BOOST_TEST(f.interrupt());
  test::expect_error<parex::CancelledError>([&] { f.result(test::deadlock_timeout); });
  BOOST_TEST(test::eventually([&] { return gone(pids[0]); }));
}

BOOST_AUTO_TEST_CASE(thread_pool_retries_and_executor_reference) {
  parex::ThreadPoolExecutor threads{{.max_workers = 2}};
  parex::Executor& ex = threads;
  std::atomic<int> tries{0};
  auto flaky = [&tries] {
    if (++tries < 3) throw parex::ValueError("flaky");
    return 5;
  };
  parex::CallOptions o{.retries = 4, .retry = {.error = parex::exception_is<parex::ValueError>}};
  BOOST_TEST(ex.submit(o, flaky).result(test::deadlock_timeout) == 5);
  BOOST_TEST(tries.load() == 3);
  parex::ProcessPoolExecutor procs{{.max_workers = 1}};
  parex::Executor& remote = procs;
  BOOST_TEST(remote.submit(parex::CallOptions{.timeout = 1s}, twice, 4).result(test::deadlock_timeout) == 8);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(progress_and_stats)

namespace {
int fail_if_odd(int x) {
  if (x % 2) throw parex::ValueError("odd");
  return x;
}
}  // namespace

BOOST_AUTO_TEST_CASE(thread_pool_stats_count_calls_and_failures) {
  parex::ThreadPoolExecutor pool{{.max_workers = 2}};
  std::vector<parex::Future<int>> fs;
  for (int i = 0; i < 10; ++i) fs.push_back(pool.submit(fail_if_odd, i));
  for (auto& f : fs) (void)f.exception();
  BOOST_TEST(test::eventually([&] { return pool.stats().done == 10; }));
  const parex::ExecutorStats s = pool.stats();
  BOOST_TEST(s.failed == 5u);
  BOOST_TEST(s.queued == 0u);
  BOOST_TEST(s.running == 0u);
  BOOST_TEST(s.workers.size() == 2u);
  std::size_t calls = 0;
  for (const auto& w : s.workers) calls += w.calls;
  BOOST_TEST(calls == 10u);
}

BOOST_AUTO_TEST_CASE(process_pool_stats_count_workers_restarts_and_failures) {
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  std::vector<parex::Future<int>> fs;
  for (int i = 0; i < 10; ++i) fs.push_back(pool.submit(twice, i));
  fs.push_back(pool.submit(parex::CallOptions{.timeout = 50ms}, hang_every, 0, 1));  // stopped: a restart
  for (auto& f : fs) (void)f.exception();
  const parex::ExecutorStats s = pool.stats();
  BOOST_TEST(s.done == 11u);
  BOOST_TEST(s.failed == 1u);
  BOOST_TEST(s.restarts == 1u);
  BOOST_TEST(s.queued == 0u);
  BOOST_TEST(s.running == 0u);
  BOOST_TEST(s.workers.size() == 2u);
  for (const auto& w : s.workers) BOOST_TEST((w.pid > 0 && ::kill(w.pid, 0) == 0));
  // From a done callback (the reactor thread): answered at once, no deadlock.
  std::atomic<std::size_t> seen{0};
  auto g = pool.submit(twice, 1);
  g.add_done_callback([&](const parex::Future<int>&) { seen = pool.stats().done + 1; });
  (void)g.exception();
  BOOST_TEST(test::eventually([&] { return seen.load() >= 12; }));
  pool.shutdown();
  BOOST_TEST(pool.stats().done == 12u);  // the last figures, after the pool has ended
  BOOST_TEST(pool.stats().workers.empty());
}

BOOST_AUTO_TEST_CASE(map_progress_reports_done_total_and_failed) {
  for (bool process : {false, true}) {
    std::unique_ptr<parex::Executor> ex;
    if (process) ex = std::make_unique<parex::ProcessPoolExecutor>(parex::ProcessPoolOptions{.max_workers = 2});
    else ex = std::make_unique<parex::ThreadPoolExecutor>(parex::ThreadPoolOptions{.max_workers = 2});
    std::vector<int> xs(1000);
    for (int i = 0; i < 1000; ++i) xs[static_cast<std::size_t>(i)] = i;
    std::mutex m;
    std::vector<parex::MapProgress> reports;  // appended under m (reports never overlap; checked below)
    std::atomic<int> inside{0}, overlapped{0};
    auto on_progress = [&](const parex::MapProgress& p) {
      if (inside.fetch_add(1) != 0) ++overlapped;
      {
        std::lock_guard lock(m);
        reports.push_back(p);
      }
      inside.fetch_sub(1);
    };
    std::size_t got = 0;
    auto results = ex->map(fail_if_odd_registered, xs, {.chunksize = 10, .on_progress = on_progress,
                                                         .progress_interval = 0ms});
    for (auto it = results.begin(); it != results.end(); ++it) {
      try {
        ++got, (void)*it;
      } catch (const parex::ValueError&) {
      }
    }
    BOOST_TEST(got == 1000u);
    std::lock_guard lock(m);
    BOOST_TEST(overlapped.load() == 0);
    BOOST_TEST(!reports.empty());
    for (std::size_t i = 1; i < reports.size(); ++i) BOOST_TEST(reports[i].done >= reports[i - 1].done);
    BOOST_TEST(reports.back().done == 1000u);
    BOOST_TEST(reports.back().failed == 500u);
    BOOST_TEST((reports.back().total && *reports.back().total == 1000u));
  }
}

BOOST_AUTO_TEST_CASE(map_progress_never_reports_after_the_map_is_gone) {
  parex::ThreadPoolExecutor pool{{.max_workers = 2}};
  std::atomic<bool> gone{false};
  std::atomic<int> late{0};
  {
    std::vector<int> ms(40, 20);  // 20 ms each: some still run when the loop is left
    auto results = pool.map([](int m) { return sleep_ms(m); }, ms,
                            {.on_progress = [&](const parex::MapProgress&) { late += gone.load() ? 1 : 0; },
                             .progress_interval = 0ms});
    for (int y : results) {
      BOOST_TEST(y == 20);
      break;
    }
  }
  gone = true;
  std::this_thread::sleep_for(100ms);  // the calls that ran on finish now
  BOOST_TEST(late.load() == 0);
}

BOOST_AUTO_TEST_CASE(map_progress_may_ask_for_stats) {
  // The report runs outside the tracker's lock: asking the process pool for its stats
  // from it (a round trip to the reactor that completes other chunks) does not deadlock.
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  std::vector<int> xs(200, 1);
  std::atomic<std::size_t> last_done{0};
  auto results = pool.map(twice, xs, {.chunksize = 5, .on_progress = [&](const parex::MapProgress& p) {
                                        (void)pool.stats();
                                        last_done = p.done;
                                      },
                                      .progress_interval = 0ms});
  long sum = 0;
  for (int y : results) sum += y;
  BOOST_TEST(sum == 400);
  BOOST_TEST(last_done.load() == 200u);
}

BOOST_AUTO_TEST_CASE(thread_pool_stats_do_not_count_cancelled_calls) {
  parex::ThreadPoolExecutor pool{{.max_workers = 1}};
  auto slow = pool.submit([] { return sleep_ms(100); });
  auto never = pool.submit([] { return 1; });
  BOOST_TEST(never.cancel());
  BOOST_TEST(slow.result(test::deadlock_timeout) == 100);
  BOOST_TEST(test::eventually([&] { return pool.stats().done == 1; }));
  std::this_thread::sleep_for(20ms);
  const auto s = pool.stats();
  BOOST_TEST(s.done == 1u);
  BOOST_TEST(s.queued == 0u);
}

BOOST_AUTO_TEST_CASE(map_progress_is_rate_limited) {
  parex::ThreadPoolExecutor pool{{.max_workers = 2}};
  std::vector<int> xs(2000, 2);
  std::vector<parex::MapProgress> reports;
  std::mutex m;
  auto results = pool.map([](int x) { return x; }, xs,
                          {.on_progress = [&](const parex::MapProgress& p) {
                             std::lock_guard lock(m);
                             reports.push_back(p);
                           },
                           .progress_interval = 1h});
  std::size_t n = 0;
  for (int y : results) n += static_cast<std::size_t>(y == 2);
  BOOST_TEST(n == 2000u);
  std::lock_guard lock(m);
  // The first report (interval counted from nothing), the one at done == total; no more.
  BOOST_TEST(reports.size() <= 2u);
  BOOST_TEST(reports.back().done == 2000u);
}

BOOST_AUTO_TEST_SUITE_END()
