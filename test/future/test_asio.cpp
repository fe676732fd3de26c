// parex::async_result (include/parex/asio.hpp): a Future as an Asio operation with a
// callback, use_future, deferred and use_awaitable; values, errors, cancellation and
// void; the handler runs on its executor's thread; io_context::run waits for it.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"

#include <parex/asio.hpp>
#include <parex/parex.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(asio_interop)

BOOST_AUTO_TEST_CASE(a_callback_runs_on_the_io_context_thread_and_run_waits_for_it) {
  asio::io_context io;  // before the pool: it must outlive the operations
  parex::ThreadPoolExecutor pool(parex::ThreadPoolOptions{.max_workers = 1});
  int value = 0;
  std::thread::id ran_on;
  parex::async_result(pool.submit([] {
                        std::this_thread::sleep_for(100ms);
                        return 7;
                      }),
                      asio::bind_executor(io, [&](std::exception_ptr e, int v) {
                        value = e ? -1 : v;
                        ran_on = std::this_thread::get_id();
                      }));
  io.run();  // returns only after the handler ran: the operation holds io's work meanwhile
  BOOST_TEST(value == 7);
  BOOST_TEST((ran_on == std::this_thread::get_id()));
}

BOOST_AUTO_TEST_CASE(use_future_and_deferred_tokens) {
  parex::ProcessPoolExecutor pool(parex::ProcessPoolOptions{.max_workers = 1});
  std::future<int> f = parex::async_result(pool.submit(square, 9), asio::use_future);
  BOOST_TEST(f.get() == 81);
  auto got = std::make_shared<std::atomic<int>>(0);  // the handler may outlive a failed wait
  auto op = parex::async_result(pool.submit(square, 4), asio::deferred);
  std::move(op)([got](std::exception_ptr, int v) { *got = v; });
  BOOST_TEST(test::eventually([&] { return got->load() == 16; }));
  BOOST_CHECK_THROW(parex::async_result(parex::Future<int>(), asio::use_future), parex::InvalidStateError);
}

asio::awaitable<void> await_all(parex::ProcessPoolExecutor& pool, parex::ThreadPoolExecutor& threads, int& sum,
                                int& errors, std::thread::id& resumed_on) {
  sum += co_await parex::async_result(pool.submit(square, 5), asio::use_awaitable);
  resumed_on = std::this_thread::get_id();
  sum += co_await parex::async_result(threads.submit([] { return 100; }), asio::use_awaitable);
  co_await parex::async_result(threads.submit([] {}), asio::use_awaitable);  // Future<void>
  try {
    co_await parex::async_result(threads.submit([]() -> int { throw std::out_of_range("x"); }), asio::use_awaitable);
  } catch (const std::out_of_range&) {
    ++errors;
  }
  parex::Promise<int> never;
  auto cancelled = never.get_future();
  cancelled.cancel();
  try {
    co_await parex::async_result(cancelled, asio::use_awaitable);
  } catch (const parex::CancelledError&) {
    ++errors;
  }
}

BOOST_AUTO_TEST_CASE(co_await_a_process_pool_future_in_an_asio_coroutine) {
  asio::io_context io;
  parex::ProcessPoolExecutor pool(parex::ProcessPoolOptions{.max_workers = 2});
  parex::ThreadPoolExecutor threads(parex::ThreadPoolOptions{.max_workers = 1});
  int sum = 0, errors = 0;
  std::thread::id resumed_on;
  bool finished = false;
  asio::co_spawn(io, await_all(pool, threads, sum, errors, resumed_on), [&](std::exception_ptr e) { finished = !e; });
  io.run();
  BOOST_TEST(finished);
  BOOST_TEST(sum == 125);
  BOOST_TEST(errors == 2);
  BOOST_TEST((resumed_on == std::this_thread::get_id()));  // the coroutine resumed on io's thread
}

BOOST_AUTO_TEST_SUITE_END()
