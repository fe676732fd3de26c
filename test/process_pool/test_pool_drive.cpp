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
#include "support/drive_checks.hpp"
#include "support/helpers.hpp"
#include "support/processes.hpp"

#include <parex/process_pool.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <memory>
#include <string>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace pool_drive {

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
  test::threads_each_get_their_own_results(pool, 4, 300);
}

BOOST_AUTO_TEST_CASE(a_call_waited_for_without_result_completes_after_round_trips) {
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  test::a_call_waited_for_without_result_completes(pool);
}

// 20 calls from this thread alone first, so that its waits drive (loop.cpp's min_solo_calls).
BOOST_AUTO_TEST_CASE(a_waiter_that_drives_keeps_its_deadline) {
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  test::a_waiter_that_drives_keeps_its_deadline(pool, 20);
}

// shutdown(wait=true) from a done callback would wait for the loop that runs it: an error
// on the reactor thread, and as much on a thread that drives the loop.
BOOST_AUTO_TEST_CASE(shutdown_with_wait_from_a_done_callback_is_an_error_on_any_thread_that_runs_the_loop) {
  // 20 calls from this thread alone first, so that its waits drive (loop.cpp's min_solo_calls).
  const auto r = test::shutdown_from_callbacks(
      [] { return std::make_unique<parex::ProcessPoolExecutor>(parex::ProcessPoolOptions{.max_workers = 1}); }, 20, 20);
  BOOST_TEST(r.refused == r.ran, r.refused << " of " << r.ran << " callbacks were refused shutdown(wait=true)");
  BOOST_TEST(r.ran > 0);
  // The waiting thread drove: after calls from it alone the reactor naps and leaves it the
  // loop (20 of 20 in the dev build); the check above then covered a driving thread.
  BOOST_TEST(r.on_waiter > 0);
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
