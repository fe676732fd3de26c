// parex::async_result (include/parex/asio.hpp): a Future as an Asio operation with a
// callback, use_future, deferred and use_awaitable; values, errors, cancellation and
// void; the handler runs on its executor's thread; io_context::run waits for it.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"

#include <parex/asio.hpp>
#include <parex/parex.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <variant>
#include <vector>
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
  // The lambdas are submitted before each co_await, not inside it: a closure (a type with
  // no linkage) kept in the coroutine's frame makes GCC warn (-Wsubobject-linkage) when this
  // file is compiled inside a unity unit.
  auto hundred = threads.submit([] { return 100; });
  sum += co_await parex::async_result(hundred, asio::use_awaitable);
  auto nothing = threads.submit([] {});
  co_await parex::async_result(nothing, asio::use_awaitable);  // Future<void>
  auto throws = threads.submit([]() -> int { throw std::out_of_range("x"); });
  try {
    co_await parex::async_result(throws, asio::use_awaitable);
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

bool aborted(std::exception_ptr e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const boost::system::system_error& x) {
    return x.code() == asio::error::operation_aborted;
  } catch (...) {
  }
  return false;
}

BOOST_AUTO_TEST_CASE(a_cancelled_wait_cancels_a_call_not_started_and_aborts_the_handler) {
  asio::io_context io;
  parex::Promise<int> never;  // a call no worker has started
  auto f = never.get_future();
  asio::cancellation_signal signal;
  int calls = 0;
  bool was_aborted = false;
  parex::async_result(f, asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e, int) {
                                                       ++calls;
                                                       was_aborted = aborted(e);
                                                     })));
  BOOST_TEST(signal.slot().has_handler());
  signal.emit(asio::cancellation_type::terminal);
  io.run();  // the operation held io's work only until it was aborted
  BOOST_TEST(calls == 1);
  BOOST_TEST(was_aborted);
  BOOST_TEST(f.cancelled());
  BOOST_TEST(!signal.slot().has_handler());  // cleared before the handler ran
  signal.emit(asio::cancellation_type::terminal);  // a late emit reaches nothing
  io.restart();
  io.run();
  BOOST_TEST(calls == 1);
}

BOOST_AUTO_TEST_CASE(a_cancelled_wait_for_a_running_call_aborts_once_and_the_call_runs_on) {
  asio::io_context io;
  parex::ThreadPoolExecutor threads(parex::ThreadPoolOptions{.max_workers = 1});
  std::atomic<bool> started{false}, release{false};
  auto f = threads.submit([&] {
    started = true;
    while (!release) std::this_thread::sleep_for(1ms);
    return 5;
  });
  BOOST_TEST_REQUIRE(test::eventually([&] { return started.load(); }));
  asio::cancellation_signal signal;
  int calls = 0;
  bool was_aborted = false;
  parex::async_result(f, asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e, int) {
                                                       ++calls;
                                                       was_aborted = aborted(e);
                                                     })));
  signal.emit(asio::cancellation_type::partial);
  io.run();
  BOOST_TEST(calls == 1);
  BOOST_TEST(was_aborted);
  BOOST_TEST(!f.cancelled());  // it had started: it runs on
  release = true;
  BOOST_TEST(f.result(test::deadlock_timeout) == 5);
  io.restart();
  io.run();
  BOOST_TEST(calls == 1);  // its completion found the operation aborted already
}

asio::awaitable<void> race_a_timer(parex::Future<int> f, int& timer_won) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(co_await asio::this_coro::executor, 20ms);
  auto r = co_await (parex::async_result(f, asio::use_awaitable) || timer.async_wait(asio::use_awaitable));
  if (r.index() == 1) ++timer_won;
}

BOOST_AUTO_TEST_CASE(the_awaitable_or_operator_cancels_the_losing_wait) {
  asio::io_context io;
  parex::Promise<int> never;
  auto f = never.get_future();
  int timer_won = 0;
  bool finished = false;
  asio::co_spawn(io, race_a_timer(f, timer_won), [&](std::exception_ptr e) { finished = !e; });
  io.run();
  BOOST_TEST(finished);
  BOOST_TEST(timer_won == 1);
  BOOST_TEST(f.cancelled());  // the losing wait cancelled the call that had not started
}

BOOST_AUTO_TEST_CASE(completion_racing_cancellation_calls_each_handler_once) {
  asio::io_context io;
  constexpr int n = 300;
  std::vector<parex::Promise<int>> promises(n);
  std::vector<std::unique_ptr<asio::cancellation_signal>> signals;
  auto calls = std::make_shared<std::vector<int>>(n, 0);
  auto values = std::make_shared<std::vector<int>>(n, 0);
  for (int i = 0; i < n; ++i) {
    signals.push_back(std::make_unique<asio::cancellation_signal>());
    parex::async_result(promises[i].get_future(),
                        asio::bind_cancellation_slot(signals[i]->slot(),
                                                     asio::bind_executor(io, [calls, values, i](std::exception_ptr e, int v) {
                                                       ++(*calls)[i];
                                                       (*values)[i] = e ? (aborted(e) ? -1 : -2) : v;
                                                     })));
  }
  std::thread completer([&] {
    for (int i = 0; i < n; ++i) {
      try {
        promises[i].set_result(i + 1);
      } catch (const parex::InvalidStateError&) {  // its wait was cancelled first
      }
    }
  });
  for (int i = 0; i < n; ++i) signals[i]->emit(asio::cancellation_type::terminal);
  completer.join();
  io.run();
  int aborted_count = 0;
  for (int i = 0; i < n; ++i) {
    BOOST_TEST_REQUIRE((*calls)[i] == 1);
    BOOST_TEST_REQUIRE(((*values)[i] == i + 1 || (*values)[i] == -1));
    aborted_count += (*values)[i] == -1;
  }
  BOOST_TEST_MESSAGE(aborted_count << " of " << n << " waits were aborted before their future completed");
}

BOOST_AUTO_TEST_SUITE_END()
