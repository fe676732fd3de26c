// Condition and Barrier across processes and threads: notify and predicates, timeouts,
// the lock given up however deep, a barrier releasing its parties together, abort, reset,
// a timeout that breaks it, and the action.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "mp/mp_functions.hpp"
#include "support/helpers.hpp"

#include <atomic>
#include <thread>
#include <vector>

using namespace test;
using namespace mp_test;

namespace mp_test {
void throwing_action() { throw std::runtime_error("action failed"); }
PAREX_REGISTER(throwing_action);
}  // namespace mp_test

BOOST_AUTO_TEST_SUITE(mp_condition)

BOOST_AUTO_TEST_CASE(notify_all_wakes_waiting_processes) {
  parex::Condition cv;
  parex::Value<int> ready(0), seen(0);
  std::vector<parex::Process> ps;
  for (int i = 0; i < 3; ++i) ps.emplace_back(wait_until_ready, cv, ready, seen);
  for (auto& p : ps) p.start();
  std::this_thread::sleep_for(50ms);
  {
    std::lock_guard g(cv);
    ready.value() = 1;
    cv.notify_all();
  }
  for (auto& p : ps) p.join();
  BOOST_TEST(seen.value() == 3);
}

BOOST_AUTO_TEST_CASE(wait_gives_up_an_rlock_however_deep_and_takes_it_back) {
  parex::RLock r;
  parex::Condition cv(r);
  std::atomic<bool> flag{false};
  r.acquire();
  r.acquire();
  std::thread t([&] {
    std::lock_guard g(cv);  // possible only while the waiter sleeps
    flag = true;
    cv.notify();
  });
  BOOST_TEST(cv.wait_for([&] { return flag.load(); }, deadlock_timeout));
  t.join();
  r.release();
  r.release();
  expect_error<parex::ValueError>([&] { r.release(); });  // exactly two levels came back
}

BOOST_AUTO_TEST_CASE(timeouts_and_misuse) {
  parex::Condition cv(parex::Lock{});
  expect_error<parex::ValueError>([&] { cv.wait(10ms); });  // not held
  std::unique_lock g(cv);
  const auto t0 = std::chrono::steady_clock::now();
  BOOST_TEST(!cv.wait(30ms));
  BOOST_TEST((std::chrono::steady_clock::now() - t0 >= 30ms));
  BOOST_TEST(!cv.wait_for([] { return false; }, 20ms));
  BOOST_TEST(cv.wait_for([] { return true; }, 0ms));
}

BOOST_AUTO_TEST_CASE(a_barrier_releases_four_processes_together) {
  parex::Barrier b(4);
  BOOST_TEST(b.parties() == 4u);
  parex::Array<int> order(4);
  parex::Value<long> released(0);
  std::vector<parex::Process> ps;
  for (int i = 0; i < 4; ++i) ps.emplace_back(barrier_party, b, order, released);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  for (auto& p : ps) BOOST_TEST(code_of(p) == 0);
  BOOST_TEST((order.to_vector() == std::vector<int>{1, 1, 1, 1}));  // each index once
  BOOST_TEST(!b.broken());
  BOOST_TEST(b.n_waiting() == 0u);
}

BOOST_AUTO_TEST_CASE(the_action_runs_once_per_generation) {
  action_runs = 0;
  parex::Barrier b(3, count_action);
  for (int round = 0; round < 2; ++round) {
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i) ts.emplace_back([&] { b.wait(deadlock_timeout); });
    for (auto& t : ts) t.join();
  }
  BOOST_TEST(action_runs == 2);
  parex::Barrier bad(1, throwing_action);
  expect_error<std::runtime_error>([&] { return bad.wait(); });
  BOOST_TEST(bad.broken());
  expect_error<parex::BrokenBarrierError>([&] { return bad.wait(); });
}

BOOST_AUTO_TEST_CASE(a_timeout_abort_and_reset_break_the_waiters) {
  parex::Barrier b(2);
  expect_error<parex::BrokenBarrierError>([&] { return b.wait(30ms); });  // the other party never came
  BOOST_TEST(b.broken());
  expect_error<parex::BrokenBarrierError>([&] { return b.wait(); });
  b.reset();
  BOOST_TEST(!b.broken());

  // Boost.Test is not thread-safe: the threads only record what they saw.
  auto broken_wait = [&](std::atomic<int>& seen) {
    try {
      b.wait(deadlock_timeout);
      seen = 1;  // released: wrong here
    } catch (const parex::BrokenBarrierError&) {
      seen = 2;
    }
  };
  std::atomic<int> waiter_saw{0};
  std::thread waiter([&] { broken_wait(waiter_saw); });
  BOOST_TEST(eventually([&] { return b.n_waiting() == 1u; }));
  b.abort();
  waiter.join();
  BOOST_TEST(waiter_saw.load() == 2);
  b.reset();

  std::atomic<int> again_saw{0};
  std::thread again([&] { broken_wait(again_saw); });
  BOOST_TEST(eventually([&] { return b.n_waiting() == 1u; }));
  b.reset();  // the waiter of the moment is broken; the barrier is usable again
  again.join();
  BOOST_TEST(again_saw.load() == 2);
  BOOST_TEST(!b.broken());
  std::atomic<unsigned> other_index{99};
  std::thread one([&] { other_index = b.wait(deadlock_timeout); });
  const unsigned mine = b.wait(deadlock_timeout);
  one.join();
  BOOST_TEST(mine + other_index.load() == 1u);  // 0 and 1
}

BOOST_AUTO_TEST_SUITE_END()
