// The Executor contract, written once and run on every backend (CPython's
// create_executor_tests). Only free functions are used, so that the same calls can be
// shipped to worker processes by name.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <ranges>
#include <string>
#include <tuple>
#include <vector>

using namespace test;

using Backends = std::tuple<PAREX_TEST_BACKENDS>;

namespace {
template <class Pool>
Pool make_pool(std::size_t workers) {
  return Pool{{.max_workers = workers}};
}

std::size_t count_files(const std::filesystem::path& dir) {
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(dir), {}));
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() / ("parex-test-" + std::to_string(::getpid()) + "-" +
                                                    std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(contract)

BOOST_AUTO_TEST_CASE_TEMPLATE(submit_returns_the_result, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  parex::Future<int> f = pool.submit(square, 7);
  BOOST_TEST(f.result(deadlock_timeout) == 49);
  std::vector<parex::Future<int>> fs;
  for (int i = 0; i < 1000; ++i) fs.push_back(pool.submit(square, i));
  long sum = 0;
  for (auto& g : fs) sum += g.result(deadlock_timeout);
  long expect = 0;
  for (long i = 0; i < 1000; ++i) expect += i * i;
  BOOST_TEST(sum == expect);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(strings_void_and_converted_arguments, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  BOOST_TEST(pool.submit(concat, std::string("par"), std::string("ex")).result(deadlock_timeout) == "parex");
  parex::Future<void> v = pool.submit(do_nothing);
  v.result(deadlock_timeout);
  BOOST_TEST(v.done());
  auto vec = pool.submit(iota_vector, 5).result(deadlock_timeout);
  BOOST_TEST((vec == std::vector<int>{0, 1, 2, 3, 4}));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(exceptions_keep_their_type, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  auto f = pool.submit(fail_if_negative, -3);
  auto e = expect_error<std::invalid_argument>([&] { f.result(deadlock_timeout); });
  BOOST_TEST(std::string(e.what()) == "negative: -3");
  BOOST_TEST(static_cast<bool>(f.exception(deadlock_timeout)));
  BOOST_TEST(pool.submit(fail_if_negative, 3).result(deadlock_timeout) == 3);  // the pool goes on
}

BOOST_AUTO_TEST_CASE_TEMPLATE(executor_reference_swaps_backends, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  parex::Executor& ex = pool;
  BOOST_TEST(ex.max_workers() == 2u);
  BOOST_TEST(ex.submit(square, 9).result(deadlock_timeout) == 81);
  std::vector<int> out;
  for (int y : ex.map(square, std::vector{1, 2, 3})) out.push_back(y);
  BOOST_TEST((out == std::vector<int>{1, 4, 9}));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(map_keeps_input_order_for_any_chunksize, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  std::vector<int> in(1000);
  std::iota(in.begin(), in.end(), -500);
  std::vector<int> expect;
  for (int x : in) expect.push_back(x * x);
  for (std::size_t chunksize : {1u, 7u, 100u, 5000u}) {
    std::vector<int> out;
    for (int y : pool.map(square, in, {.chunksize = chunksize, .timeout = deadlock_timeout})) out.push_back(y);
    BOOST_TEST((out == expect), "chunksize " << chunksize);
  }
  std::vector<int> none;
  int n = 0;
  for (int y : pool.map(square, none)) n += y + 1;
  BOOST_TEST(n == 0);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(map_unordered_yields_everything_once, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  std::vector<int> in(500);
  std::iota(in.begin(), in.end(), 0);
  std::vector<int> out;
  for (int y : pool.map(square, in, {.chunksize = 9, .timeout = deadlock_timeout, .ordered = false})) out.push_back(y);
  std::sort(out.begin(), out.end());
  std::vector<int> expect;
  for (int x : in) expect.push_back(x * x);
  BOOST_TEST((out == expect));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(map_raises_at_the_failing_element, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  for (std::size_t chunksize : {1u, 3u}) {
    std::vector<int> seen;
    auto e = expect_error<std::invalid_argument>([&] {
      for (int y : pool.map(fail_if_negative, std::vector{1, 2, -3, 4, 5}, {.chunksize = chunksize})) seen.push_back(y);
    });
    BOOST_TEST(std::string(e.what()) == "negative: -3");
    BOOST_TEST((seen == std::vector<int>{1, 2}), "chunksize " << chunksize);
  }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(map_reads_its_input_lazily, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  std::size_t reads = 0;
  auto counted = std::views::iota(0) | std::views::transform([&](int x) {
                   ++reads;
                   return x;
                 });
  // An endless input: map() must not try to read it up front.
  auto results = pool.map(square, counted, {.chunksize = 2, .buffersize = 4});
  BOOST_TEST(reads <= 8u);
  int taken = 0;
  for (int y : results) {
    BOOST_TEST(y == taken * taken);
    if (++taken == 25) break;
  }
  BOOST_TEST(reads <= 25u + 8u + 2u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(map_exit_early_cancels_what_has_not_started, Pool, Backends) {
  auto pool = make_pool<Pool>(1);
  TempDir dir;
  std::vector<std::pair<std::string, int>> jobs;
  for (int i = 0; i < 200; ++i) jobs.emplace_back(dir.path.string(), i);
  {
    auto results = pool.map(mark_done, jobs, {.buffersize = 16});
    auto it = results.begin();
    BOOST_TEST(*it == 0);
  }  // leaving the loop: the calls still pending are cancelled
  pool.shutdown(true);
  const auto ran = count_files(dir.path);
  BOOST_TEST(ran >= 1u);
  BOOST_TEST(ran <= 16u + 2u);  // the window, plus what a worker had already taken
}

BOOST_AUTO_TEST_CASE_TEMPLATE(map_timeout, Pool, Backends) {
  auto pool = make_pool<Pool>(1);
  BOOST_TEST(pool.submit(square, 2).result(deadlock_timeout) == 4);  // started: the timeout is about the calls
  std::vector<int> seen;
  expect_error<parex::TimeoutError>([&] {
    for (int y : pool.map(sleep_then_echo, std::vector{0, 300, 0}, {.timeout = 50ms})) seen.push_back(y);
  });
  BOOST_TEST((seen == std::vector<int>{0}));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(futures_report_running_and_callbacks_fire, Pool, Backends) {
  auto pool = make_pool<Pool>(1);
  auto slow = pool.submit(sleep_then_echo, 200);
  BOOST_TEST(eventually([&] { return slow.running() || slow.done(); }));
  std::atomic<int> fired{0};
  slow.add_done_callback([&](const parex::Future<int>& f) {
    if (f.result() == 200) fired.fetch_add(1);
  });
  BOOST_TEST(slow.result(deadlock_timeout) == 200);
  BOOST_TEST(eventually([&] { return fired.load() == 1; }));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(wait_and_as_completed_across_executors, Pool, Backends) {
  auto a = make_pool<Pool>(1);
  auto b = make_pool<Pool>(1);
  std::vector<parex::Future<int>> fs{a.submit(sleep_then_echo, 30), b.submit(sleep_then_echo, 1),
                                     a.submit(sleep_then_echo, 2), b.submit(sleep_then_echo, 3)};
  auto first = parex::wait(fs, deadlock_timeout, parex::ReturnWhen::first_completed);
  BOOST_TEST(first.done.size() >= 1u);
  std::vector<int> got;
  for (const auto& f : parex::as_completed(fs, deadlock_timeout)) got.push_back(f.result());
  std::sort(got.begin(), got.end());
  BOOST_TEST((got == std::vector<int>{1, 2, 3, 30}));
  auto all = parex::wait(fs, deadlock_timeout);
  BOOST_TEST(all.not_done.empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(shutdown_waits_then_rejects, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  std::vector<parex::Future<int>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(pool.submit(sleep_then_echo, 20));
  pool.shutdown(true);
  for (auto& f : fs) BOOST_TEST(f.done());
  for (auto& f : fs) BOOST_TEST(f.result() == 20);
  BOOST_CHECK_THROW(pool.submit(square, 1), parex::InvalidStateError);
  BOOST_CHECK_THROW(pool.map(square, std::vector{1}), parex::InvalidStateError);
  pool.shutdown(true);  // idempotent
}

BOOST_AUTO_TEST_CASE_TEMPLATE(shutdown_cancel_futures_cancels_pending, Pool, Backends) {
  auto pool = make_pool<Pool>(1);
  auto first = pool.submit(sleep_then_echo, 200);
  BOOST_TEST(eventually([&] { return first.running() || first.done(); }));
  std::vector<parex::Future<int>> rest;
  for (int i = 0; i < 10; ++i) rest.push_back(pool.submit(sleep_then_echo, 1));
  pool.shutdown(true, true);
  BOOST_TEST(first.result() == 200);
  std::size_t cancelled = 0;
  for (auto& f : rest) {
    BOOST_REQUIRE(f.done());
    if (f.cancelled()) {
      ++cancelled;
      BOOST_CHECK_THROW(f.result(), parex::CancelledError);
    } else {
      BOOST_TEST(f.result() == 1);
    }
  }
  BOOST_TEST(cancelled >= 8u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(shutdown_without_wait_still_finishes_the_work, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  std::vector<parex::Future<int>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(pool.submit(square, i));
  pool.shutdown(false);
  for (int i = 0; i < 20; ++i) BOOST_TEST(fs[i].result(deadlock_timeout) == i * i);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(destructor_is_shutdown_wait, Pool, Backends) {
  parex::Future<int> f;
  {
    auto pool = make_pool<Pool>(1);
    f = pool.submit(sleep_then_echo, 30);
  }
  BOOST_TEST(f.done());
  BOOST_TEST(f.result() == 30);
}

BOOST_AUTO_TEST_SUITE_END()
