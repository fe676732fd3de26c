// A thread waiting for a ProcessPoolExecutor call runs the pool's loop itself
// (process_pool/loop.cpp): results reach every waiter from several threads at once, a
// call submitted by a thread that drove before but now waits another way still completes
// (the napping reactor finds it), a waiter's deadline holds while it drives, a done
// callback that runs on a driving thread is treated as on the reactor, and a worker that
// dies while a waiter drives is replaced by the reactor thread (the workers' parent-death
// signal follows the thread that forked them), never by the waiter.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"
#include "support/processes.hpp"

#include <parex/process_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <future>
#include <string>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;

namespace pool_drive {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int die_by_sigkill() {
  ::raise(SIGKILL);
  return 0;
}
PAREX_REGISTER(die_by_sigkill);
int drive_worker_pid() { return static_cast<int>(::getpid()); }
PAREX_REGISTER(drive_worker_pid);

// The children this thread forked (/proc/self/task/<tid>/children).
std::vector<int> children_of_this_thread() {
  std::ifstream f("/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/children");
  std::vector<int> out;
  for (int pid; f >> pid;) out.push_back(pid);
  return out;
}

BOOST_AUTO_TEST_SUITE(pool_drive)

BOOST_AUTO_TEST_CASE(threads_that_wait_for_their_calls_at_once_each_get_their_own_results) {
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  constexpr int threads = 4, trips = 300;
  std::atomic<int> wrong{0}, callbacks{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < trips; ++i) {
        const int x = (t * 1000 + i) % 40000;
        auto f = pool.submit(square, x);
        f.add_done_callback([&](const parex::Future<int>&) { callbacks.fetch_add(1); });
        if (f.result(test::deadlock_timeout) != x * x) wrong.fetch_add(1);
      }
    });
  for (auto& t : ts) t.join();
  BOOST_TEST(wrong.load() == 0);
  const auto t0 = Clock::now();  // callbacks that ran on another thread may still be running
  while (callbacks.load() < threads * trips && seconds_since(t0) < 10) std::this_thread::sleep_for(1ms);
  BOOST_TEST(callbacks.load() == threads * trips);
}

// A thread that drove its last calls submits without waking the reactor (it expects to
// drive again); here it waits through a callback instead, and the reactor's nap must end
// and find the call.
BOOST_AUTO_TEST_CASE(a_call_waited_for_without_result_completes_after_round_trips) {
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  for (int i = 0; i < 200; ++i) BOOST_REQUIRE(pool.submit(square, i).result(test::deadlock_timeout) == i * i);
  for (int round = 0; round < 3; ++round) {
    std::promise<int> seen;
    auto got = seen.get_future();
    const auto t0 = Clock::now();
    auto f = pool.submit(square, 7 + round);
    f.add_done_callback([&seen](const parex::Future<int>& g) { seen.set_value(g.result()); });
    BOOST_REQUIRE(got.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    BOOST_TEST(got.get() == (7 + round) * (7 + round));
    BOOST_TEST(seconds_since(t0) < 5.0);
    for (int i = 0; i < 50; ++i) BOOST_REQUIRE(pool.submit(square, i).result(test::deadlock_timeout) == i * i);
  }
}

BOOST_AUTO_TEST_CASE(a_waiter_that_drives_keeps_its_deadline) {
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  // Enough calls from this thread alone that its waits drive (loop.cpp's min_solo_calls).
  for (int k = 0; k < 20; ++k) BOOST_REQUIRE(pool.submit(square, k).result(test::deadlock_timeout) == k * k);
  auto f = pool.submit(sleep_then_echo, 1500);
  const auto t0 = Clock::now();
  BOOST_CHECK_THROW(f.result(std::chrono::milliseconds(100)), parex::TimeoutError);
  const double waited = seconds_since(t0);
  BOOST_TEST(waited >= 0.099);
  BOOST_TEST(waited < 1.0, "result(100 ms) returned after " << waited << " s");
  BOOST_TEST(f.result(test::deadlock_timeout) == 1500);
}

// shutdown(wait=true) from a done callback would wait for the loop that runs it: an error
// on the reactor thread, and as much on a thread that drives the loop.
BOOST_AUTO_TEST_CASE(shutdown_with_wait_from_a_done_callback_is_an_error_on_any_thread_that_runs_the_loop) {
  const auto main_thread = std::this_thread::get_id();
  int on_waiter = 0, errors = 0, ran = 0, at_once = 0;
  for (int i = 0; i < 20; ++i) {
    parex::ProcessPoolExecutor pool{{.max_workers = 1}};
    // Enough calls from this thread alone that its waits drive (loop.cpp's min_solo_calls).
    for (int k = 0; k < 20; ++k) BOOST_REQUIRE(pool.submit(square, k).result(test::deadlock_timeout) == k * k);
    bool adding = true;  // read by a callback that runs at once, on this thread
    bool invalid = false, here = false, now = false;
    std::atomic<bool> done{false};
    auto f = pool.submit(square, i);
    f.add_done_callback([&](const parex::Future<int>&) {
      here = std::this_thread::get_id() == main_thread;
      now = here && adding;
      if (!now) {
        try {
          pool.shutdown(true);
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
  // The waiting thread drove: after calls from it alone the reactor naps and leaves it the
  // loop (20 of 20 in the dev build); the check above then covered a driving thread.
  BOOST_TEST(on_waiter > 0);
}

// The waiter drives when the worker dies (its call is a tiny one among round trips): the
// death may be seen on the waiting thread, but the replacement is the reactor's child.
BOOST_AUTO_TEST_CASE(a_worker_that_dies_while_a_waiter_drives_is_replaced_by_the_reactor_thread) {
  const auto before = children_of_this_thread();
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 50; ++i) BOOST_REQUIRE(pool.submit(square, i).result(test::deadlock_timeout) == i * i);
    auto f = pool.submit(die_by_sigkill);
    test::expect_error<parex::WorkerCrashed>([&] { f.result(test::deadlock_timeout); });
    for (int i = 0; i < 50; ++i) BOOST_REQUIRE(pool.submit(square, i).result(test::deadlock_timeout) == i * i);
    const int pid = pool.submit(drive_worker_pid).result(test::deadlock_timeout);
    const auto all = test::children();
    BOOST_TEST((std::find(all.begin(), all.end(), pid) != all.end()), "round " << round << ": the worker is no child");
    const auto mine = children_of_this_thread();
    BOOST_TEST((std::find(mine.begin(), mine.end(), pid) == mine.end()),
               "round " << round << ": the replacement was forked by the waiting thread");
    BOOST_TEST((mine == before));
  }
  BOOST_TEST(pool.stats().restarts == 5u);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace pool_drive
