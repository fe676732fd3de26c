// What the tests of a waiter that runs its executor's loop (StateBase::drive) share:
// process_pool/test_pool_drive.cpp and mpi/test_mpi_drive.cpp. Include after
// <boost/test/unit_test.hpp>.
#pragma once

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"

#include <parex/errors.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

namespace test {

/// Threads that each wait for their own calls at once (some drive, some are served by
/// whoever runs the loop) each get their own results, and every done callback runs once.
template <class Executor>
void threads_each_get_their_own_results(Executor& ex, int threads, int trips) {
  std::atomic<int> wrong{0}, callbacks{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < trips; ++i) {
        const int x = (t * 1000 + i) % 40000;
        auto f = ex.submit(square, x);
        f.add_done_callback([&](const auto&) { callbacks.fetch_add(1); });
        if (f.result(deadlock_timeout) != x * x) wrong.fetch_add(1);
      }
    });
  for (auto& t : ts) t.join();
  BOOST_TEST(wrong.load() == 0);
  // Callbacks that ran on another thread than their waiter's may still be running.
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (callbacks.load() < threads * trips && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(1ms);
  BOOST_TEST(callbacks.load() == threads * trips);
}

/// A thread that drove its last calls submits without waking the loop's own thread (it
/// expects to drive again); here it waits through a callback instead, and the loop's own
/// thread must find the call (its timer) within a few seconds at most; round trips go on.
template <class Executor>
void a_call_waited_for_without_result_completes(Executor& ex) {
  for (int i = 0; i < 200; ++i) BOOST_REQUIRE(ex.submit(square, i).result(deadlock_timeout) == i * i);
  for (int round = 0; round < 3; ++round) {
    std::promise<int> seen;
    auto got = seen.get_future();
    const auto t0 = std::chrono::steady_clock::now();
    auto f = ex.submit(square, 7 + round);
    f.add_done_callback([&seen](const auto& g) { seen.set_value(g.result()); });
    BOOST_REQUIRE(got.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    BOOST_TEST(got.get() == (7 + round) * (7 + round));
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    BOOST_TEST(took < 5.0);
    for (int i = 0; i < 50; ++i) BOOST_REQUIRE(ex.submit(square, i).result(deadlock_timeout) == i * i);
  }
}

/// After `warmup` round trips (so that the wait drives), result(100 ms) of a 1.5 s call
/// times out in time, and the call's result still comes.
template <class Executor>
void a_waiter_that_drives_keeps_its_deadline(Executor& ex, int warmup) {
  for (int k = 0; k < warmup; ++k) BOOST_REQUIRE(ex.submit(square, k).result(deadlock_timeout) == k * k);
  auto f = ex.submit(sleep_then_echo, 1500);
  const auto t0 = std::chrono::steady_clock::now();
  BOOST_CHECK_THROW(f.result(std::chrono::milliseconds(100)), parex::TimeoutError);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  BOOST_TEST(waited >= 0.099);
  BOOST_TEST(waited < 1.0, "result(100 ms) returned after " << waited << " s");
  BOOST_TEST(f.result(deadlock_timeout) == 1500);
}

struct CallbackShutdowns {
  int ran = 0;        // callbacks that ran on a thread that runs the loop (not at once)
  int refused = 0;    // of those, the ones whose shutdown(wait=true) threw InvalidStateError
  int on_waiter = 0;  // of those, the ones that ran on the waiting thread (it drove)
  int at_once = 0;    // callbacks that ran at once, the call being done already
};

/// For each of `rounds` executors (make() returns a pointer to a fresh one), after `warmup`
/// round trips from this thread: a done callback on the next call calls shutdown(true),
/// which must be refused wherever the loop runs (it would wait for itself).
template <class Make>
CallbackShutdowns shutdown_from_callbacks(Make make, int rounds, int warmup) {
  const auto main_thread = std::this_thread::get_id();
  CallbackShutdowns out;
  for (int i = 0; i < rounds; ++i) {
    auto ex = make();
    for (int k = 0; k < warmup; ++k) BOOST_REQUIRE(ex->submit(square, k).result(deadlock_timeout) == k * k);
    bool adding = true;  // read by a callback that runs at once, on this thread
    bool invalid = false, here = false, now = false;
    std::atomic<bool> done{false};
    auto f = ex->submit(square, i);
    f.add_done_callback([&](const auto&) {
      here = std::this_thread::get_id() == main_thread;
      now = here && adding;
      if (!now) {
        try {
          ex->shutdown(true);
        } catch (const parex::InvalidStateError&) {
          invalid = true;
        }
      }
      done.store(true);
    });
    adding = false;
    BOOST_REQUIRE(f.result(deadlock_timeout) == i * i);
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!done.load() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(1ms);
    BOOST_REQUIRE(done.load());
    if (now) {
      ++out.at_once;
      continue;
    }
    ++out.ran;
    out.refused += invalid;
    out.on_waiter += here;
  }
  BOOST_TEST_MESSAGE(out.on_waiter << " of " << out.ran << " ran on the waiting thread; " << out.at_once
                                   << " at once");
  return out;
}

}  // namespace test
