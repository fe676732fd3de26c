// CPython's Lib/test/test_concurrent_futures/test_process_pool.py and test_deadlock.py,
// translated (suite cpython_process; ProcessPoolExecutor only). parex differs from
// Python on purpose where a worker dies: only the call it was running fails (with
// WorkerCrashed, a BrokenProcessPool) and the pool goes on, where Python breaks the whole
// pool; and an encoding or decoding error fails its call with NotSerializable, where
// Python sometimes breaks the pool. The translations assert parex's rule and say so.
//
// Skipped, and why:
//  - test_process_pool.py: test_max_workers_too_large: a Windows-only limit.
//  - test_process_pool.py: test_ressources_gced_in_workers: Python's garbage collector
//    and a multiprocessing Manager; C++ arguments are destroyed when the call returns.
//  - test_process_pool.py: test_idle_process_reuse_one / _multiple: parex starts its
//    workers with the pool (Python spawns them on demand).
//  - test_process_pool.py: test_max_tasks_per_child_defaults_to_spawn_context: start
//    methods (mp contexts fork/spawn/forkserver) do not exist in parex.
//  - test_process_pool.py: test_python_finalization_error: mocks thread creation during
//    interpreter finalization.
//  - test_process_pool.py: test_force_shutdown_workers_invalid_op: the operation is not a
//    string in C++ but one of two methods, terminate_workers() and kill_workers().
//  - test_process_pool.py: test_terminate_workers / test_kill_workers mock the private
//    _force_shutdown; the translations check the public effect of each method instead.
//  - test_deadlock.py: test_exit_during_result_unpickle_in_result_handler: results are
//    decoded in this very process, so the exit would end the test run itself.
//  - test_deadlock.py: test_gh105829_should_not_deadlock_if_wakeup_pipe_full mocks
//    CPython's private wakeup pipe; the translation keeps its observable part (a burst
//    of calls right after the pool starts all complete).
//  - Every start-method variant (fork, forkserver, spawn) of these classes: see above.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "cpython/cpython_functions.hpp"
#include "support/helpers.hpp"

#include <csignal>
#include <cstdlib>
#include <exception>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

using namespace test;
using cpy::Hazard;
using cpy::Log;
using parex::Future;
using parex::ProcessPoolExecutor;

namespace {
enum class Force { terminate, kill };
const Force both_forces[] = {Force::terminate, Force::kill};
void force(ProcessPoolExecutor& pool, Force op) {
  if (op == Force::terminate) pool.terminate_workers();
  else pool.kill_workers();
}
int signal_of(Force op) { return op == Force::terminate ? SIGTERM : SIGKILL; }
const char* name_of(Force op) { return op == Force::terminate ? "terminate_workers" : "kill_workers"; }

// test_deadlock.py: _check_error. The call fails with Expected (a base type is enough);
// in parex the pool then still serves.
template <class Expected, class F, class... A>
void check_error(F fn, A... args) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  auto res = pool.submit(fn, args...);
  std::string got = "no error";
  try {
    res.result(deadlock_timeout);
  } catch (const Expected&) {
    got = "expected";
  } catch (...) {
    got = cpy::error_name(std::current_exception());
  }
  BOOST_TEST(got == "expected", "expected " << typeid(Expected).name() << ", got " << got);
  BOOST_TEST(pool.submit(cpy::mul, 6, 7).result(deadlock_timeout) == 42);  // not broken
}

std::string nested_what(const std::exception& e) {
  try {
    std::rethrow_if_nested(e);
  } catch (const std::exception& inner) {
    return inner.what();
  }
  return "(nothing nested)";
}
}  // namespace

BOOST_AUTO_TEST_SUITE(cpython_process)

// ---- test_process_pool.py -------------------------------------------------------------------

// test_process_pool.py: test_killed_child (parex: only the running call fails)
BOOST_AUTO_TEST_CASE(test_killed_child) {
  ProcessPoolExecutor pool{{.max_workers = 1}};
  cpy::TempDir dir;
  auto f = pool.submit(cpy::started_then_wait, dir.path().string());
  const auto pid = cpy::wait_for_started(dir);
  BOOST_REQUIRE(pid);
  BOOST_REQUIRE(::kill(*pid, SIGTERM) == 0);
  auto e = expect_error<parex::WorkerCrashed>([&] { f.result(deadlock_timeout); });
  BOOST_TEST(e.pid() == *pid);
  BOOST_TEST(e.signal() == SIGTERM);
  BOOST_TEST(!dir.has("finished"));
  BOOST_TEST(pool.submit(cpy::power, 2, 8).result(deadlock_timeout) == 256);  // Python: BrokenProcessPool
}

// test_process_pool.py: test_map_chunksize (mul: Python's pow(39, 39) overflows C++ ints)
BOOST_AUTO_TEST_CASE(test_map_chunksize) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  std::vector<int> ref;
  for (int i = 0; i < 40; ++i) ref.push_back(i * i);
  for (std::size_t chunksize : {6u, 50u, 40u}) {
    std::vector<int> out;
    for (int v : pool.map(cpy::mul, std::views::iota(0, 40), std::views::iota(0, 40), {.chunksize = chunksize}))
      out.push_back(v);
    BOOST_TEST(out == ref, "chunksize " << chunksize);
  }
  BOOST_CHECK_THROW(pool.map(cpy::mul, std::views::iota(0, 40), std::views::iota(0, 40), {.chunksize = 0}),
                    std::invalid_argument);
}

// test_process_pool.py: test_traceback (the type and message survive; no traceback in C++)
BOOST_AUTO_TEST_CASE(test_traceback) {
  ProcessPoolExecutor pool{{.max_workers = 1}};
  auto f = pool.submit(cpy::raiser, std::string("123"));
  // Not expect_error: the check is on the thrown object's dynamic type, which a copy loses.
  try {
    f.result(deadlock_timeout);
    BOOST_ERROR("no error");
  } catch (const std::exception& e) {
    BOOST_TEST((typeid(e) == typeid(std::runtime_error)), typeid(e).name());
    BOOST_TEST(std::string(e.what()) == "123");
  }
}

// test_process_pool.py: test_saturation
BOOST_AUTO_TEST_CASE(test_saturation) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  cpy::FileEvent event;
  std::vector<Future<int>> fs;
  for (int i = 0; i < 15 * 2; ++i) fs.push_back(pool.submit(cpy::pid_when_set, event.path()));
  BOOST_TEST(eventually([] { return cpy::live_children() == 2u; }));
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(cpy::live_children() == 2u);  // saturated, and still max_workers processes
  event.set();
  std::set<int> pids;
  for (auto& f : fs) pids.insert(f.result(deadlock_timeout));
  BOOST_TEST(pids.size() <= 2u);
}

// test_process_pool.py: test_max_tasks_per_child
BOOST_AUTO_TEST_CASE(test_max_tasks_per_child) {
  ProcessPoolExecutor pool{{.max_workers = 1, .max_tasks_per_child = 3}};
  const int original_pid = pool.submit(cpy::worker_pid).result(deadlock_timeout);
  BOOST_TEST(pool.submit(cpy::worker_pid).result(deadlock_timeout) == original_pid);  // reused
  BOOST_TEST(pool.submit(cpy::worker_pid).result(deadlock_timeout) == original_pid);
  const int new_pid = pool.submit(cpy::worker_pid).result(deadlock_timeout);  // a new worker
  BOOST_TEST(new_pid != original_pid);
  BOOST_TEST(eventually([&] { return cpy::process_gone(original_pid); }), "the old worker was not reaped");
}

// test_process_pool.py: test_max_tasks_early_shutdown
BOOST_AUTO_TEST_CASE(test_max_tasks_early_shutdown) {
  ProcessPoolExecutor pool{{.max_workers = 3, .max_tasks_per_child = 1}};
  std::vector<Future<int>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(pool.submit(cpy::mul, i, i));
  pool.shutdown();
  for (int i = 0; i < 6; ++i) BOOST_TEST(fs[i].result(0s) == i * i);
}

namespace {
// test_terminate_workers / test_kill_workers: what the public method does.
void check_force_shutdown(Force op) {
  ProcessPoolExecutor pool{{.max_workers = 1}};
  cpy::TempDir dir;
  auto running = pool.submit(cpy::started_then_wait, dir.path().string());
  const auto pid = cpy::wait_for_started(dir);
  BOOST_REQUIRE(pid);
  std::vector<Future<int>> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(pool.submit(cpy::mul, i, i));
  const auto start = std::chrono::steady_clock::now();
  force(pool, op);
  BOOST_TEST((std::chrono::steady_clock::now() - start < 5s), "it waited");  // the call would block for a minute
  // Not expect_error: the dynamic_cast needs the thrown object, not a BrokenProcessPool copy.
  try {
    running.result(deadlock_timeout);
    BOOST_ERROR("no error");
  } catch (const parex::BrokenProcessPool& e) {
    if (auto* crashed = dynamic_cast<const parex::WorkerCrashed*>(&e)) {
      BOOST_TEST(crashed->pid() == *pid);
      BOOST_TEST(crashed->signal() == signal_of(op));
    }
  }
  for (auto& q : queued) BOOST_CHECK_THROW(q.result(deadlock_timeout), parex::CancelledError);
  BOOST_CHECK_THROW(pool.submit(cpy::mul, 1, 1), parex::InvalidStateError);
  BOOST_TEST(!dir.has("finished"));
}
}  // namespace

// test_process_pool.py: test_terminate_workers
BOOST_AUTO_TEST_CASE(test_terminate_workers) { check_force_shutdown(Force::terminate); }

// test_process_pool.py: test_kill_workers
BOOST_AUTO_TEST_CASE(test_kill_workers) { check_force_shutdown(Force::kill); }

// test_process_pool.py: test_force_shutdown_workers
BOOST_AUTO_TEST_CASE(test_force_shutdown_workers) {
  for (Force op : both_forces) {
    ProcessPoolExecutor pool{{.max_workers = 1}};
    cpy::TempDir dir;
    auto f = pool.submit(cpy::started_then_wait, dir.path().string());
    const auto pid = cpy::wait_for_started(dir);  // started, never finished
    BOOST_REQUIRE(pid);
    force(pool, op);
    BOOST_TEST(eventually([&] { return !cpy::process_alive(*pid); }), name_of(op) << ": the worker lives on");
    BOOST_CHECK_THROW(f.result(deadlock_timeout), parex::BrokenProcessPool);
    std::this_thread::sleep_for(10ms);
    BOOST_TEST(!dir.has("finished"), name_of(op));
    pool.shutdown();
    BOOST_TEST(cpy::process_gone(*pid), name_of(op) << ": the worker was not reaped");
  }
}

// test_process_pool.py: test_force_shutdown_workers_dead_workers
BOOST_AUTO_TEST_CASE(test_force_shutdown_workers_dead_workers) {
  for (Force op : both_forces) {
    ProcessPoolExecutor pool{{.max_workers = 1}};
    auto f = pool.submit(cpy::exit_now, 1);
    BOOST_CHECK_THROW(f.result(deadlock_timeout), parex::BrokenProcessPool);
    BOOST_CHECK_NO_THROW(force(pool, op));  // even after a worker died
    BOOST_CHECK_THROW(pool.submit(cpy::mul, 1, 1), parex::InvalidStateError);
  }
}

// test_process_pool.py: test_force_shutdown_workers_not_started_yet
BOOST_AUTO_TEST_CASE(test_force_shutdown_workers_not_started_yet) {
  for (Force op : both_forces) {
    {
      ProcessPoolExecutor pool{{.max_workers = 1}};
      BOOST_CHECK_NO_THROW(force(pool, op));  // the worker may still be starting
      BOOST_CHECK_THROW(pool.submit(cpy::mul, 1, 1), parex::InvalidStateError);
    }
    BOOST_TEST(cpy::live_children() == 0u, name_of(op) << ": a worker outlived its pool");
  }
}

// test_process_pool.py: test_force_shutdown_workers_stops_pool
BOOST_AUTO_TEST_CASE(test_force_shutdown_workers_stops_pool) {
  for (Force op : both_forces) {
    ProcessPoolExecutor pool{{.max_workers = 1}};
    BOOST_TEST(pool.submit(sleep_then_echo, 0).result(deadlock_timeout) == 0);
    const int pid = pool.submit(cpy::worker_pid).result(deadlock_timeout);
    force(pool, op);
    BOOST_CHECK_THROW(pool.submit(sleep_then_echo, 0), parex::InvalidStateError);
    BOOST_TEST(eventually([&] { return !cpy::process_alive(pid); }), name_of(op) << ": the worker lives on");
    pool.shutdown();
    BOOST_TEST(cpy::process_gone(pid), name_of(op) << ": the worker was not reaped");
  }
}

// ---- test_deadlock.py -----------------------------------------------------------------------

// test_deadlock.py: test_error_at_task_pickle (parex: submit throws at once)
BOOST_AUTO_TEST_CASE(test_error_at_task_pickle) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  // Not expect_error: nested_what needs the thrown object, whose nested exception a copy slices off.
  try {
    (void)pool.submit(cpy::take_hazard, Hazard{1, cpy::act_throw, cpy::act_none});
    BOOST_ERROR("no error");
  } catch (const parex::NotSerializable& e) {
    BOOST_TEST(nested_what(e) == "save refused");
  }
  BOOST_TEST(pool.submit(cpy::take_hazard, Hazard{2}).result(deadlock_timeout) == 2);
}

// test_deadlock.py: test_error_at_task_pickle (through map: only that item fails, at its
// own position)
BOOST_AUTO_TEST_CASE(test_error_at_task_pickle_in_map) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  const std::vector<Hazard> items{{1}, {2}, {3, cpy::act_throw}, {4, cpy::act_throw}, {5}};
  for (std::size_t chunksize : {1u, 2u, 5u}) {
    auto results = pool.map(cpy::take_hazard, items, {.chunksize = chunksize, .timeout = deadlock_timeout});
    const Log expect{"1", "2", "!NotSerializable", "!NotSerializable", "5"};
    const Log got = cpy::drain(results, cpy::show_int);
    BOOST_TEST(got == expect, cpy::joined(got) << " " << "chunksize " << chunksize);
  }
}

// test_deadlock.py: test_exit_at_task_unpickle
BOOST_AUTO_TEST_CASE(test_exit_at_task_unpickle) {
  check_error<parex::BrokenProcessPool>(cpy::take_hazard, Hazard{1, cpy::act_none, cpy::act_exit});
}

// test_deadlock.py: test_error_at_task_unpickle (parex: NotSerializable for that call)
BOOST_AUTO_TEST_CASE(test_error_at_task_unpickle) {
  check_error<parex::NotSerializable>(cpy::take_hazard, Hazard{1, cpy::act_none, cpy::act_throw});
}

// test_deadlock.py: test_crash_at_task_unpickle
BOOST_AUTO_TEST_CASE(test_crash_at_task_unpickle) {
  check_error<parex::BrokenProcessPool>(cpy::take_hazard, Hazard{1, cpy::act_none, cpy::act_crash});
}

// test_deadlock.py: test_crash_during_func_exec_on_worker
BOOST_AUTO_TEST_CASE(test_crash_during_func_exec_on_worker) {
  check_error<parex::BrokenProcessPool>(cpy::crash_after_ms, 0);
}

// test_deadlock.py: test_exit_during_func_exec_on_worker (Python: SystemExit; C++'s exit()
// ends the worker: WorkerCrashed with its exit code)
BOOST_AUTO_TEST_CASE(test_exit_during_func_exec_on_worker) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  auto e = expect_error<parex::WorkerCrashed>([&] { pool.submit(cpy::exit_now, 1).result(deadlock_timeout); });
  BOOST_TEST(e.exit_code() == 1);
  BOOST_TEST(e.function() == "cpy::exit_now");
  BOOST_TEST(pool.submit(cpy::mul, 6, 7).result(deadlock_timeout) == 42);
}

// test_deadlock.py: test_error_during_func_exec_on_worker
BOOST_AUTO_TEST_CASE(test_error_during_func_exec_on_worker) {
  check_error<std::runtime_error>(cpy::raiser, std::string("RuntimeError"));
}

// test_deadlock.py: test_crash_during_result_pickle_on_worker
BOOST_AUTO_TEST_CASE(test_crash_during_result_pickle_on_worker) {
  check_error<parex::BrokenProcessPool>(cpy::make_hazard, 1, int{cpy::act_crash}, int{cpy::act_none});
}

// test_deadlock.py: test_exit_during_result_pickle_on_worker (Python: SystemExit)
BOOST_AUTO_TEST_CASE(test_exit_during_result_pickle_on_worker) {
  check_error<parex::BrokenProcessPool>(cpy::make_hazard, 1, int{cpy::act_exit}, int{cpy::act_none});
}

// test_deadlock.py: test_error_during_result_pickle_on_worker
BOOST_AUTO_TEST_CASE(test_error_during_result_pickle_on_worker) {
  check_error<parex::NotSerializable>(cpy::make_hazard, 1, int{cpy::act_throw}, int{cpy::act_none});
}

// test_deadlock.py: test_error_during_result_unpickle_in_result_handler (parex:
// NotSerializable for that call; Python: BrokenProcessPool)
BOOST_AUTO_TEST_CASE(test_error_during_result_unpickle_in_result_handler) {
  check_error<parex::NotSerializable>(cpy::make_hazard, 1, int{cpy::act_none}, int{cpy::act_throw});
}

// test_deadlock.py: test_shutdown_deadlock
BOOST_AUTO_TEST_CASE(test_shutdown_deadlock) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  auto f = pool.submit(cpy::crash_after_ms, 100);
  pool.shutdown(true);  // the worker fails after the shutdown call: no deadlock
  BOOST_CHECK_THROW(f.result(0s), parex::BrokenProcessPool);
}

// test_deadlock.py: test_shutdown_deadlock_pickle
BOOST_AUTO_TEST_CASE(test_shutdown_deadlock_pickle) {
  Future<int> after;
  {
    ProcessPoolExecutor pool{{.max_workers = 2}};
    BOOST_TEST(pool.submit(cpy::mul, 6, 7).result(deadlock_timeout) == 42);
    BOOST_CHECK_THROW(pool.submit(cpy::take_hazard, Hazard{1, cpy::act_throw}), parex::NotSerializable);
    after = pool.submit(cpy::mul, 2, 3);
    pool.shutdown(false);
  }
  BOOST_TEST(after.result(0s) == 6);
}

// test_deadlock.py: test_crash_big_data (every item crashes its worker with 1 MiB in hand)
BOOST_AUTO_TEST_CASE(test_crash_big_data) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  const std::vector<std::string> data(10, std::string(std::size_t{1} << 20, 'a'));
  auto results = pool.map(cpy::crash_with_data, data, {.timeout = deadlock_timeout});
  const Log log = cpy::drain(results, cpy::show_int);
  BOOST_TEST(log.size() == 10u);
  for (auto& entry : log) BOOST_TEST((entry == "!WorkerCrashed" || entry == "!BrokenProcessPool"), entry);
  BOOST_TEST(pool.submit(cpy::mul, 6, 7).result(deadlock_timeout) == 42);
}

// test_deadlock.py: test_gh105829_should_not_deadlock_if_wakeup_pipe_full
BOOST_AUTO_TEST_CASE(test_gh105829_should_not_deadlock_if_wakeup_pipe_full) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  std::vector<int> out;
  for (int v : pool.map(cpy::absolute, std::views::iota(-50, 50), {.timeout = deadlock_timeout})) out.push_back(v);
  BOOST_REQUIRE(out.size() == 100u);
  for (int i = 0; i < 100; ++i) BOOST_TEST(out[i] == std::abs(i - 50));
}

BOOST_AUTO_TEST_SUITE_END()
