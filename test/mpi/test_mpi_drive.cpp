// A thread waiting for an MpiExecutor call runs rank 0's loop itself (Engine::drive):
// results reach every waiter from several threads at once, a call submitted by a thread
// that drove before but now waits another way still completes (the progress thread's
// timer finds it), a waiter's deadline holds while it drives, and a done callback that
// runs on a driving thread is treated as on the progress thread. Suite mpi (mpirun -np 3).
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/drive_checks.hpp"
#include "support/helpers.hpp"

#include <parex/mpi.hpp>

#include <memory>

namespace mpi_drive {

BOOST_AUTO_TEST_SUITE(mpi)

BOOST_AUTO_TEST_CASE(threads_that_wait_for_their_calls_at_once_each_get_their_own_results) {
  parex::MpiExecutor ex;
  test::threads_each_get_their_own_results(ex, 4, 300);
}

BOOST_AUTO_TEST_CASE(a_call_waited_for_without_result_completes_after_round_trips) {
  parex::MpiExecutor ex;
  test::a_call_waited_for_without_result_completes(ex);
}

BOOST_AUTO_TEST_CASE(a_waiter_that_drives_keeps_its_deadline) {
  parex::MpiExecutor ex;
  test::a_waiter_that_drives_keeps_its_deadline(ex, 1);
}

// shutdown(wait=true) from a done callback would wait for the loop that runs it: an error
// on the progress thread, and as much on a thread that drives the loop. A tiny call that
// a thread waits for completes on that thread, mostly (it drives the loop).
BOOST_AUTO_TEST_CASE(shutdown_with_wait_from_a_done_callback_is_an_error_on_any_thread_that_runs_the_loop) {
  const auto r = test::shutdown_from_callbacks([] { return std::make_unique<parex::MpiExecutor>(); }, 40, 5);
  BOOST_TEST(r.refused == r.ran, r.refused << " of " << r.ran << " callbacks were refused shutdown(wait=true)");
  BOOST_TEST(r.ran > 0);
  // The waiting thread drove (40 of 40 in the dev build, 5 runs): the check above then
  // covered a driving thread, not only the progress thread.
  BOOST_TEST(r.on_waiter > 0);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace mpi_drive
