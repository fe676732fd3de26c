// CPython's Lib/test/test_concurrent_futures/executor.py (ExecutorTest, run on both
// backends), test_init.py and test_thread_pool.py, translated (suite cpython_executor).
// Map results are compared step by step with cpy::drain, which records what each next()
// of a Python loop would give: a value, or "!<exception type>".
//
// Skipped, and why:
//  - executor.py: test_submit_keyword's keyword arguments and its TypeErrors: C++ has no
//    keyword arguments, and a wrong call is a compile error; the positional part is kept.
//  - executor.py: test_map_buffersize_type_validation: buffersize is a std::size_t, a
//    string or a float does not compile.
//  - executor.py: test_map_buffersize_value_validation and test_max_workers_negative:
//    in parex 0 means "auto" for buffersize and max_workers, deliberately, and negative
//    values do not exist (std::size_t).
//  - executor.py: test_map_buffersize_without_iterable: map() needs at least one range.
//  - executor.py: test_no_stale_references and test_free_reference are translated for
//    the thread pool only (a process pool's callables and results are copies anyway);
//    their gc/weakref machinery becomes shared_ptr use counts.
//  - test_init.py: FailingInitializerResourcesTest: multiprocessing's resource tracker
//    has no parex counterpart; the log assertion of the failing initializer becomes a
//    check of the BrokenExecutor's message.
//  - test_thread_pool.py: test_idle_thread_reuse: parex starts its threads with the pool
//    (Python starts them on demand).
//  - test_thread_pool.py: test_hang_global_shutdown_lock: tests a fork() start method;
//    parex never forks without exec.
//  - test_thread_pool.py: test_default_workers keeps parex's rule (process_cpu_count(),
//    not Python's min(32, cpus + 4)): a deliberate difference.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "cpython/cpython_functions.hpp"
#include "support/helpers.hpp"

#include <algorithm>
#include <memory>
#include <mutex>
#include <numeric>
#include <ranges>
#include <semaphore>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

using namespace test;
using cpy::make_pool;
using cpy::Log;
using parex::Future;
using Backends = std::tuple<PAREX_TEST_BACKENDS>;

namespace {
template <class Pool>
Pool make_initialized_pool();
template <>
parex::ThreadPoolExecutor make_initialized_pool<parex::ThreadPoolExecutor>() {
  return parex::ThreadPoolExecutor{{.max_workers = 2, .initializer = [] { cpy::set_init_status("initialized"); }}};
}
template <>
parex::ProcessPoolExecutor make_initialized_pool<parex::ProcessPoolExecutor>() {
  return parex::ProcessPoolExecutor{
      {.max_workers = 2, .initializer = {cpy::set_init_status, std::string("initialized")}}};
}

template <class Pool>
Pool make_failing_pool();
template <>
parex::ThreadPoolExecutor make_failing_pool<parex::ThreadPoolExecutor>() {
  return parex::ThreadPoolExecutor{{.max_workers = 2, .initializer = [] { cpy::init_fail(); }}};
}
template <>
parex::ProcessPoolExecutor make_failing_pool<parex::ProcessPoolExecutor>() {
  return parex::ProcessPoolExecutor{{.max_workers = 2, .initializer = {cpy::init_fail}}};
}
}  // namespace

BOOST_AUTO_TEST_SUITE(cpython_executor)

// ---- executor.py (ExecutorTest) -------------------------------------------------------------

// executor.py: test_submit
BOOST_AUTO_TEST_CASE_TEMPLATE(test_submit, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  BOOST_TEST(pool.submit(cpy::power, 2, 8).result(deadlock_timeout) == 256);
}

// executor.py: test_submit_keyword (positional: C++ has no keyword arguments)
BOOST_AUTO_TEST_CASE_TEMPLATE(test_submit_keyword, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  BOOST_TEST(pool.submit(cpy::mul, 2, 8).result(deadlock_timeout) == 16);
  const auto got = pool.submit(cpy::capture, 1, std::string("self"), 3.5).result(deadlock_timeout);
  BOOST_TEST((got == std::tuple<int, std::string, double>{1, "self", 3.5}));
}

// executor.py: test_map
BOOST_AUTO_TEST_CASE_TEMPLATE(test_map, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  std::vector<long long> expect;
  for (int i = 0; i < 10; ++i) expect.push_back(cpy::power(i, i));
  for (std::size_t chunksize : {1u, 3u}) {
    std::vector<long long> out;
    for (long long v : pool.map(cpy::power, std::views::iota(0, 10), std::views::iota(0, 10),
                                {.chunksize = chunksize, .timeout = deadlock_timeout}))
      out.push_back(v);
    BOOST_TEST(out == expect, "chunksize " << chunksize);
  }
}

// executor.py: test_map (Python's map(fn, *iterables) with three and four iterables,
// stopping at the shortest)
BOOST_AUTO_TEST_CASE_TEMPLATE(test_map_three_and_four_iterables, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  const std::vector<int> a{1, 2, 3, 4, 5}, b{10, 20, 30};
  std::vector<int> three, four;
  for (int v : pool.map(cpy::add3, a, b, std::views::iota(100), {.chunksize = 2, .timeout = deadlock_timeout}))
    three.push_back(v);
  BOOST_TEST(three == (std::vector<int>{111, 123, 135}));
  for (int v : pool.map(cpy::add4, a, a, a, std::vector<int>{1000, 2000}, {.timeout = deadlock_timeout}))
    four.push_back(v);
  BOOST_TEST(four == (std::vector<int>{1003, 2006}));
  int none = 0;
  for (int v : pool.map(cpy::add, a, std::vector<int>{})) none += v + 1;
  BOOST_TEST(none == 0);
}

// executor.py: test_map_exception
BOOST_AUTO_TEST_CASE_TEMPLATE(test_map_exception, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  const std::vector<int> fives{5, 5, 5, 5};
  {
    auto results = pool.map(cpy::divmod, fives, std::vector<int>{2, 3, 0, 5});
    const Log expect{"(2,1)", "(1,2)", "!domain_error", "(1,0)"};
    const Log got = cpy::drain(results, cpy::show_pair);
    BOOST_TEST(got == expect, cpy::joined(got));
  }
  {
    auto results = pool.map(cpy::divmod, fives, std::vector<int>{2, 0, 3, 5}, {.chunksize = 3});
    const Log expect{"(2,1)", "!domain_error", "(1,2)", "(1,0)"};
    const Log got = cpy::drain(results, cpy::show_pair);
    BOOST_TEST(got == expect, cpy::joined(got));
  }
}

// executor.py: test_map_timeout_from_callable
BOOST_AUTO_TEST_CASE_TEMPLATE(test_map_timeout_from_callable, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  for (parex::Timeout timeout : {parex::Timeout{}, parex::Timeout{deadlock_timeout}}) {
    auto results = pool.map(cpy::timeout_on_one, std::vector<int>{0, 1, 2, 3}, {.timeout = timeout});
    const Log expect{"0", "!TimeoutError", "2", "3"};  // the function's own TimeoutError ends nothing
    const Log got = cpy::drain(results, cpy::show_int);
    BOOST_TEST(got == expect, cpy::joined(got) << " " << "finite timeout: " << timeout.finite());
  }
}

// executor.py: test_map_timeout
BOOST_AUTO_TEST_CASE_TEMPLATE(test_map_timeout, Pool, Backends) {
  auto pool = make_pool<Pool>(1);
  cpy::TempDir dir;
  // The worker is up and has measured its calls as slow: it holds one call at a time, so
  // the calls behind the slow one stay cancellable.
  BOOST_TEST(pool.submit(cpy::sleep_and_mark, std::pair{dir.file("warm"), 30}).result(deadlock_timeout) == 30);
  std::vector<std::pair<std::string, int>> jobs{{dir.file("0"), 30}, {dir.file("1"), 30}, {dir.file("2"), 700}};
  for (int i = 3; i < 9; ++i) jobs.emplace_back(dir.file(std::to_string(i)), 30);
  Log log;
  {
    auto results = pool.map(cpy::sleep_and_mark, jobs, {.timeout = 400ms});
    log = cpy::drain(results, cpy::show_int);
    // With the range still alive: only the timeout's own cancel keeps the rest from running.
    pool.shutdown(true);
  }
  BOOST_REQUIRE(!log.empty());
  BOOST_TEST(log.back() == "!TimeoutError");
  BOOST_TEST(std::count(log.begin(), log.end(), "!TimeoutError") == 1);
  BOOST_TEST(log.size() <= 3u);  // [30, 30], [30] or [] (a slow start), then the timeout
  for (std::size_t i = 0; i + 1 < log.size(); ++i) BOOST_TEST(log[i] == "30");
  BOOST_TEST(dir.has("2"));  // it was running: it finished
  for (int i = 3; i < 9; ++i) BOOST_TEST(!dir.has(std::to_string(i)), "call " << i << " ran after the timeout");
}

// executor.py: test_map_close (closing = destroying the range before the failing item)
BOOST_AUTO_TEST_CASE_TEMPLATE(test_map_close, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  for (std::size_t chunksize : {1u, 3u}) {
    auto results = pool.map(cpy::divmod, std::vector<int>{5, 5, 5, 5}, std::vector<int>{2, 0, 3, 5},
                            {.chunksize = chunksize});
    auto it = results.begin();
    BOOST_TEST(cpy::show_pair(*it) == "(2,1)");
  }  // closed: the pending domain_error is dropped with the range, not thrown
  BOOST_TEST(pool.submit(cpy::mul, 6, 7).result(deadlock_timeout) == 42);
}

// executor.py: test_map_buffersize
BOOST_AUTO_TEST_CASE_TEMPLATE(test_map_buffersize, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  for (std::size_t buffersize : {1u, 2u, 4u, 8u}) {
    auto results = pool.map(cpy::str, std::views::iota(0, 4), {.buffersize = buffersize});
    const Log expect{"0", "1", "2", "3"};
    const Log got = cpy::drain(results, cpy::show_str);
    BOOST_TEST(got == expect, cpy::joined(got) << " " << "buffersize " << buffersize);
  }
}

// executor.py: test_map_buffersize_on_multiple_iterables
BOOST_AUTO_TEST_CASE_TEMPLATE(test_map_buffersize_on_multiple_iterables, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  for (std::size_t buffersize : {1u, 2u, 4u, 8u}) {
    auto results = pool.map(cpy::add, std::views::iota(0, 4), std::views::iota(0, 4), {.buffersize = buffersize});
    const Log expect{"0", "2", "4", "6"};
    const Log got = cpy::drain(results, cpy::show_int);
    BOOST_TEST(got == expect, cpy::joined(got) << " " << "buffersize " << buffersize);
  }
}

// executor.py: test_map_buffersize_on_infinite_iterable
BOOST_AUTO_TEST_CASE_TEMPLATE(test_map_buffersize_on_infinite_iterable, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  auto results = pool.map(cpy::str, std::views::iota(0), {.buffersize = 2});
  auto it = results.begin();
  BOOST_TEST(*it == "0");
  ++it;
  BOOST_TEST(*it == "1");
  ++it;
  BOOST_TEST(*it == "2");
}

// executor.py: test_map_buffersize_on_multiple_infinite_iterables
BOOST_AUTO_TEST_CASE_TEMPLATE(test_map_buffersize_on_multiple_infinite_iterables, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  auto results = pool.map(cpy::add, std::views::iota(0), std::views::iota(0), {.buffersize = 2});
  auto it = results.begin();
  BOOST_TEST(*it == 0);
  ++it;
  BOOST_TEST(*it == 2);
  ++it;
  BOOST_TEST(*it == 4);
}

// executor.py: test_map_buffersize_on_empty_iterable
BOOST_AUTO_TEST_CASE_TEMPLATE(test_map_buffersize_on_empty_iterable, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  auto results = pool.map(cpy::str, std::vector<int>{}, {.buffersize = 2});
  BOOST_TEST((results.begin() == results.end()));
}

// executor.py: test_map_buffersize_when_buffer_is_full
BOOST_AUTO_TEST_CASE_TEMPLATE(test_map_buffersize_when_buffer_is_full, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  std::size_t reads = 0;
  auto counted = std::views::iota(0, 4) | std::views::transform([&reads](int x) {
                   ++reads;
                   return x;
                 });
  auto results = pool.map(cpy::str, counted, {.buffersize = 2});
  BOOST_TEST(reads == 2u);
  pool.shutdown(true);  // wait for the calls to complete
  BOOST_TEST(reads == 2u, "should have fetched only buffersize elements");
}

// executor.py: test_shutdown_race_issue12456
BOOST_AUTO_TEST_CASE_TEMPLATE(test_shutdown_race_issue12456, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  auto results = pool.map(cpy::str, std::vector<int>(pool.max_workers() + 1, 2));
  pool.shutdown(true);
  const Log expect(pool.max_workers() + 1, "2");
  const Log got = cpy::drain(results, cpy::show_str);
  BOOST_TEST(got == expect, cpy::joined(got));
}

// executor.py: test_swallows_falsey_exceptions (an exception with an empty message)
BOOST_AUTO_TEST_CASE_TEMPLATE(test_swallows_falsey_exceptions, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  for (const std::string msg : {"boolbool", "lenlen", ""}) {
    auto f = pool.submit(cpy::raiser, msg);
    auto e = expect_error<std::runtime_error>([&] { f.result(deadlock_timeout); });
    BOOST_TEST(std::string(e.what()) == msg);
    BOOST_TEST(static_cast<bool>(f.exception(0s)));
  }
}

// test_process_pool.py: test_map_chunksize (its ValueError part, on both backends:
// chunksize 0 is refused by map() itself)
BOOST_AUTO_TEST_CASE_TEMPLATE(test_map_chunksize_zero, Pool, Backends) {
  auto pool = make_pool<Pool>(2);
  const std::vector<int> v{1, 2, 3};
  BOOST_CHECK_THROW(pool.map(cpy::str, v, {.chunksize = 0}), std::invalid_argument);
  BOOST_CHECK_THROW(pool.map(cpy::mul, v, v, {.chunksize = 0}), std::invalid_argument);
  BOOST_TEST(pool.submit(cpy::mul, 3, 3).result(deadlock_timeout) == 9);
}

// executor.py: test_no_stale_references (thread pool: the pool lets go of the callable)
BOOST_AUTO_TEST_CASE(test_no_stale_references) {
  parex::ThreadPoolExecutor pool{{.max_workers = 2}};
  auto my_object = std::make_shared<int>(7);
  (void)pool.submit([my_object] { return *my_object; });  // the future is dropped at once
  BOOST_TEST(eventually([&] { return my_object.use_count() == 1; }), "stale reference not released");
}

// executor.py: test_free_reference (thread pool: the map keeps no result alive)
BOOST_AUTO_TEST_CASE(test_free_reference) {
  parex::ThreadPoolExecutor pool{{.max_workers = 2}};
  int n = 0;
  for (auto& obj : pool.map([](int i) { return std::make_shared<int>(i); }, std::views::iota(0, 10))) {
    std::weak_ptr<int> wr = obj;
    {
      auto taken = std::move(obj);
      BOOST_TEST(*taken == n);
    }
    BOOST_TEST(eventually([&] { return wr.expired(); }), "item " << n << " still referenced");
    ++n;
  }
  BOOST_TEST(n == 10);
}

// ---- test_init.py ---------------------------------------------------------------------------

// test_init.py: InitializerMixin.test_initializer
BOOST_AUTO_TEST_CASE_TEMPLATE(test_initializer, Pool, Backends) {
  cpy::set_init_status("uninitialized");
  auto pool = make_initialized_pool<Pool>();
  std::vector<Future<std::string>> fs;
  for (int i = 0; i < 2; ++i) fs.push_back(pool.submit(cpy::get_init_status));
  for (auto& f : fs) BOOST_TEST(f.result(deadlock_timeout) == "initialized");
}

// test_init.py: FailingInitializerMixin.test_initializer
BOOST_AUTO_TEST_CASE_TEMPLATE(test_failing_initializer, Pool, Backends) {
  auto pool = make_failing_pool<Pool>();
  std::string message = "no BrokenExecutor";
  try {
    auto f = pool.submit(cpy::get_init_status);
    try {
      f.result(deadlock_timeout);
    } catch (const parex::BrokenExecutor& e) {
      message = e.what();
    }
  } catch (const parex::BrokenExecutor& e) {  // perhaps the executor is already broken
    message = e.what();
  }
  BOOST_TEST(message.find("error in initializer") != std::string::npos, message);
  // At some point the executor is broken, and from then on submit fails.
  BOOST_TEST(eventually([&] {
    try {
      (void)pool.submit(cpy::get_init_status);
      return false;
    } catch (const parex::BrokenExecutor&) {
      return true;
    }
  }));
  BOOST_CHECK_THROW(pool.submit(cpy::get_init_status), parex::BrokenExecutor);
}

// ---- test_thread_pool.py --------------------------------------------------------------------

// test_thread_pool.py: test_map_submits_without_iteration
BOOST_AUTO_TEST_CASE(test_map_submits_without_iteration) {
  std::mutex m;
  std::vector<int> finished;
  parex::ThreadPoolExecutor pool{{.max_workers = 5}};
  auto results = pool.map(
      [&](int n) {
        std::lock_guard lock(m);
        finished.push_back(n);
        return n;
      },
      std::views::iota(0, 10));
  pool.shutdown(true);
  std::sort(finished.begin(), finished.end());
  std::vector<int> expect(10);
  std::iota(expect.begin(), expect.end(), 0);
  BOOST_TEST(finished == expect);
}

// test_thread_pool.py: test_default_workers (parex's rule: process_cpu_count())
BOOST_AUTO_TEST_CASE(test_default_workers) {
  parex::ThreadPoolExecutor pool;
  BOOST_TEST(pool.max_workers() == parex::process_cpu_count());
}

// test_thread_pool.py: test_saturation
BOOST_AUTO_TEST_CASE(test_saturation) {
  std::counting_semaphore<> sem(0);
  std::atomic<int> started{0};
  std::mutex m;
  std::set<std::thread::id> threads;
  parex::ThreadPoolExecutor pool{{.max_workers = 4}};
  std::vector<Future<bool>> fs;
  for (int i = 0; i < 15 * 4; ++i)
    fs.push_back(pool.submit([&] {
      {
        std::lock_guard lock(m);
        threads.insert(std::this_thread::get_id());
      }
      started.fetch_add(1);
      return sem.try_acquire_for(deadlock_timeout);
    }));
  BOOST_TEST(eventually([&] { return started.load() == 4; }));
  std::this_thread::sleep_for(20ms);
  BOOST_TEST(started.load() == 4);  // never more at once than max_workers
  sem.release(15 * 4);
  pool.shutdown(true);
  for (auto& f : fs) BOOST_TEST(f.result(0s));
  BOOST_TEST(threads.size() == 4u);
}

// test_thread_pool.py: test_process_fork_from_a_threadpool (a process pool started from a
// thread-pool task; parex re-executes instead of forking)
BOOST_AUTO_TEST_CASE(test_process_fork_from_a_threadpool) {
  parex::ThreadPoolExecutor pool{{.max_workers = 1}};
  auto f = pool.submit([] {
    parex::ProcessPoolExecutor inner{{.max_workers = 1}};
    return inner.submit(cpy::worker_pid).result(deadlock_timeout);
  });
  const int pid = f.result(deadlock_timeout);
  BOOST_TEST(pid > 0);
  BOOST_TEST(pid != static_cast<int>(::getpid()));
}

// test_thread_pool.py: test_executor_map_current_future_cancel
BOOST_AUTO_TEST_CASE(test_executor_map_current_future_cancel) {
  std::mutex m;
  Log log;
  Gate stop_event;
  auto log_n_wait = [&](std::string ident) {
    {
      std::lock_guard lock(m);
      log.push_back(ident + " started");
    }
    stop_event.wait();
    std::lock_guard lock(m);
    log.push_back(ident + " stopped");
    return ident;
  };
  parex::ThreadPoolExecutor pool{{.max_workers = 1}};
  auto fut = pool.submit(log_n_wait, std::string("first"));  // saturates the pool
  BOOST_REQUIRE(eventually([&] { return fut.running(); }));
  {
    auto gen = pool.map(log_n_wait, std::vector<std::string>{"second", "third"}, {.timeout = 0s});
    BOOST_CHECK_THROW(gen.begin(), parex::TimeoutError);
    stop_event.open();
    BOOST_TEST(fut.result(deadlock_timeout) == "first");
    // With gen still alive: "second" and "third" run now unless the timeout cancelled them.
    pool.shutdown(true);
  }
  const Log expect{"first started", "first stopped"};
  BOOST_TEST(log == expect);
}

BOOST_AUTO_TEST_SUITE_END()
