// A thread waiting for an MpiExecutor call runs rank 0's loop itself (Engine::drive):
// results reach every waiter from several threads at once, a call submitted by a thread
// that drove before but now waits another way still completes (the progress thread's
// timer finds it), a waiter's deadline holds while it drives, and a done callback that
// runs on a driving thread is treated as on the progress thread. Suite mpi (mpirun -np 3).
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"

#include <parex/mpi.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace mpi_drive {

int sleep_then_square(int x, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return x * x;
}
PAREX_REGISTER(sleep_then_square);

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

BOOST_AUTO_TEST_SUITE(mpi)

BOOST_AUTO_TEST_CASE(threads_that_wait_for_their_calls_at_once_each_get_their_own_results) {
  parex::MpiExecutor ex;
  constexpr int threads = 4, trips = 300;
  std::atomic<int> wrong{0}, callbacks{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < trips; ++i) {
        const int x = t * 1000 + i;
        auto f = ex.submit(square, x % 40000);
        f.add_done_callback([&](const parex::Future<int>&) { callbacks.fetch_add(1); });
        if (f.result(test::deadlock_timeout) != (x % 40000) * (x % 40000)) wrong.fetch_add(1);
      }
    });
  for (auto& t : ts) t.join();
  BOOST_TEST(wrong.load() == 0);
  // Every callback ran once, on whichever thread completed its call, before result() returned
  // to a thread that waited for it with callbacks; wait for the stragglers of the others.
  const auto t0 = Clock::now();
  while (callbacks.load() < threads * trips && seconds_since(t0) < 10) std::this_thread::sleep_for(1ms);
  BOOST_TEST(callbacks.load() == threads * trips);
}

// A thread that drove its last calls submits without waking the progress thread (it
// expects to drive again); here it waits through a callback instead, and the progress
// thread's timer must find the call.
BOOST_AUTO_TEST_CASE(a_call_waited_for_without_result_completes_after_round_trips) {
  parex::MpiExecutor ex;
  for (int i = 0; i < 200; ++i) BOOST_REQUIRE(ex.submit(square, i).result(test::deadlock_timeout) == i * i);
  for (int round = 0; round < 3; ++round) {
    std::promise<int> seen;
    auto got = seen.get_future();
    const auto t0 = Clock::now();
    auto f = ex.submit(square, 7 + round);
    f.add_done_callback([&seen](const parex::Future<int>& g) { seen.set_value(g.result()); });
    BOOST_REQUIRE(got.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    BOOST_TEST(got.get() == (7 + round) * (7 + round));
    BOOST_TEST(seconds_since(t0) < 5.0);
    // And round trips go on as before.
    for (int i = 0; i < 50; ++i) BOOST_REQUIRE(ex.submit(square, i).result(test::deadlock_timeout) == i * i);
  }
}

BOOST_AUTO_TEST_CASE(a_waiter_that_drives_keeps_its_deadline) {
  parex::MpiExecutor ex;
  BOOST_REQUIRE(ex.submit(square, 3).result(test::deadlock_timeout) == 9);
  auto f = ex.submit(sleep_then_square, 5, 1500);
  const auto t0 = Clock::now();
  BOOST_CHECK_THROW(f.result(std::chrono::milliseconds(100)), parex::TimeoutError);
  const double waited = seconds_since(t0);
  BOOST_TEST(waited >= 0.099);
  BOOST_TEST(waited < 1.0, "result(100 ms) returned after " << waited << " s");
  BOOST_TEST(f.result(test::deadlock_timeout) == 25);
}

// shutdown(wait=true) from a done callback would wait for the loop that runs it: an error
// on the progress thread, and as much on a thread that drives the loop. A tiny call that
// a thread waits for completes on that thread, mostly (it drives the loop).
BOOST_AUTO_TEST_CASE(shutdown_with_wait_from_a_done_callback_is_an_error_on_any_thread_that_runs_the_loop) {
  const auto main_thread = std::this_thread::get_id();
  int on_waiter = 0, errors = 0, ran = 0, at_once = 0;
  for (int i = 0; i < 40; ++i) {
    parex::MpiExecutor ex;
    for (int k = 0; k < 5; ++k) BOOST_REQUIRE(ex.submit(square, k).result(test::deadlock_timeout) == k * k);
    bool adding = true;  // read by a callback that runs at once, on this thread
    bool invalid = false, here = false, now = false;
    std::atomic<bool> done{false};
    auto f = ex.submit(square, i);
    f.add_done_callback([&](const parex::Future<int>&) {
      here = std::this_thread::get_id() == main_thread;
      now = here && adding;
      if (!now) {
        try {
          ex.shutdown(true);
        } catch (const parex::InvalidStateError&) {
          invalid = true;
        }
      }
      done.store(true);
    });
    adding = false;
    BOOST_REQUIRE(f.result(test::deadlock_timeout) == i * i);
    const auto t0 = Clock::now();
    while (!done.load() && seconds_since(t0) < 30) std::this_thread::sleep_for(1ms);
    BOOST_REQUIRE(done.load());
    if (now) {
      ++at_once;
      continue;
    }
    ++ran;
    errors += invalid;
    on_waiter += here;
  }
  BOOST_TEST(errors == ran, errors << " of " << ran << " callbacks were refused shutdown(wait=true)");
  BOOST_TEST_MESSAGE(on_waiter << " of " << ran << " ran on the waiting thread; " << at_once << " at once");
  BOOST_TEST(ran > 0);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace mpi_drive
