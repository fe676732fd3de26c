// JoinableQueue and Queue lifecycles beyond the basics: a consumer that dies owing
// task_done() (ConsumerDiedError), task_done() on another's behalf, Python 3.13's
// shutdown(immediate), join_thread and cancel_join_thread. Same suite as test_queue.cpp.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "mp/mp_functions.hpp"
#include "support/helpers.hpp"

#include <atomic>
#include <csignal>
#include <optional>
#include <string>
#include <thread>

using namespace test;
using namespace mp_test;

namespace {
template <class Pred>
bool eventually_within(std::chrono::milliseconds limit, Pred pred) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(mp_queue)

// Issue 20: a consumer that got items and ended without task_done() (Python's join()
// waits for ever): join() names it and what it owed; join(timeout) still just times out.
BOOST_AUTO_TEST_CASE(join_names_a_consumer_that_died_owing_task_done) {
  parex::JoinableQueue<int> q;
  for (int i = 0; i < 5; ++i) q.put(i);
  parex::Process p(get_n_and_exit, q, 2);
  p.start();
  p.join();
  BOOST_REQUIRE(code_of(p) == 0);
  BOOST_TEST(q.qsize() == 3u);
  for (int i = 0; i < 3; ++i) {  // this process's own items are done
    q.get();
    q.task_done();
  }
  BOOST_TEST(!q.join(100ms));  // with a timeout: Python's meaning
  std::optional<parex::ConsumerDiedError> error;  // read here only after joiner.join()
  std::atomic<bool> ended{false};
  std::thread joiner([&] {
    try {
      q.join();
    } catch (const parex::ConsumerDiedError& e) {
      error = e;
    }
    ended = true;
  });
  // A join() that hangs is freed, so that the test ends (and fails below).
  if (!eventually_within(5s, [&] { return ended.load(); })) {
    q.task_done();
    q.task_done();
  }
  joiner.join();
  BOOST_REQUIRE(error.has_value());
  BOOST_TEST(error->pid() == p.pid());
  BOOST_TEST(error->owed() == 2u);
  BOOST_TEST(std::string(error->what()).find(std::to_string(p.pid())) != std::string::npos);
  // task_done() on its behalf settles its count: then join() returns.
  q.task_done();
  q.task_done();
  BOOST_TEST(q.join(deadlock_timeout));
}

// The same with a SIGKILLed consumer not yet reaped (a zombie), and a live slow consumer
// that owes an item is waited for, not blamed.
BOOST_AUTO_TEST_CASE(join_tells_a_dead_consumer_from_a_slow_one) {
  parex::JoinableQueue<int> q;
  for (int i = 0; i < 3; ++i) q.put(i);
  parex::Event got;
  parex::Process slow(get_n_and_hang, q, 1, got);
  slow.start();
  BOOST_REQUIRE(got.wait(deadlock_timeout));
  std::atomic<bool> returned{false};
  std::thread joiner([&] {
    try {
      q.join();
    } catch (...) {
    }
    returned = true;
  });
  q.get();
  q.get();
  q.task_done();
  q.task_done();
  std::this_thread::sleep_for(300ms);
  BOOST_TEST(!returned, "join() gave up on a live consumer");
  ::kill(slow.pid(), SIGKILL);  // a zombie until join() below
  BOOST_TEST(eventually([&] { return returned.load(); }));
  joiner.join();
  expect_error<parex::ConsumerDiedError>([&] { q.join(); });
  slow.join();
}

// A task_done() made for an item another process got (which one cannot be known) is a
// credit against the dead consumers' debts: nobody is blamed for an item it does not owe.
BOOST_AUTO_TEST_CASE(task_done_on_another_process_behalf_blames_nobody_falsely) {
  parex::JoinableQueue<int> q;
  for (int i = 0; i < 2; ++i) q.put(i);
  parex::Event got_a, got_c;
  parex::Process a(get_n_and_hang, q, 1, got_a);
  a.start();
  BOOST_REQUIRE(got_a.wait(deadlock_timeout));
  parex::Process c(get_n_and_hang, q, 1, got_c);
  c.start();
  BOOST_REQUIRE(got_c.wait(deadlock_timeout));
  q.task_done();  // for a's item, say: this process got none
  a.kill();
  a.join();
  std::atomic<int> outcome{0};  // 1: returned, 2: ConsumerDiedError
  long blamed = 0;
  std::thread joiner([&] {
    try {
      q.join();
      outcome = 1;
    } catch (const parex::ConsumerDiedError& e) {
      blamed = e.pid();
      outcome = 2;
    }
  });
  std::this_thread::sleep_for(500ms);
  BOOST_TEST(outcome.load() == 0, "join() blamed a dead consumer whose debt a task_done() covered");
  c.kill();  // now a debt no credit covers
  BOOST_TEST(eventually([&] { return outcome.load() != 0; }));
  joiner.join();
  BOOST_TEST(outcome.load() == 2);
  BOOST_TEST((blamed == a.pid() || blamed == c.pid()));
  c.join();
}

// Issue 21: Python 3.13's shutdown(immediate), ShutDown, and join_thread /
// cancel_join_thread.
BOOST_AUTO_TEST_CASE(shutdown_lets_the_items_out_then_raises) {
  parex::Queue<int> q;
  for (int i = 0; i < 3; ++i) q.put(i);
  parex::Queue<int> other = q;  // every handle sees it
  std::atomic<bool> woke{false};
  parex::Queue<int> empty_q;
  std::thread waiter([&] {
    try {
      empty_q.get();
    } catch (const parex::ShutDown&) {
      woke = true;
    }
  });
  std::this_thread::sleep_for(50ms);
  empty_q.shutdown();
  waiter.join();
  BOOST_TEST(woke.load(), "a get() waiting on an empty queue did not wake with ShutDown");
  q.shutdown();
  expect_error<parex::ShutDown>([&] { other.put(9); });
  for (int i = 0; i < 3; ++i) BOOST_TEST(other.get(deadlock_timeout) == i);  // what was in goes out
  expect_error<parex::ShutDown>([&] { return q.get(); });
  expect_error<parex::ShutDown>([&] { return q.get_nowait(); });
}

BOOST_AUTO_TEST_CASE(shutdown_now_drops_the_items_and_join_returns) {
  parex::JoinableQueue<int> q;
  for (int i = 0; i < 5; ++i) q.put(i);
  BOOST_TEST(q.get(deadlock_timeout) == 0);  // got, not yet done
  std::atomic<bool> joined{false};
  std::thread joiner([&] {
    q.join();
    joined = true;
  });
  std::this_thread::sleep_for(50ms);
  q.shutdown(true);  // the 4 left count as done
  BOOST_TEST(!joined.load());
  q.task_done();  // the one got before
  joiner.join();
  BOOST_TEST(joined.load());
  expect_error<parex::ShutDown>([&] { return q.get(0s); });
  expect_error<parex::ShutDown>([&] { q.put(1); });
  // A bounded put waiting for room wakes with ShutDown too.
  parex::Queue<int> full(1);
  full.put(1);
  std::atomic<bool> put_woke{false};
  std::thread putter([&] {
    try {
      full.put(2);
    } catch (const parex::ShutDown&) {
      put_woke = true;
    }
  });
  std::this_thread::sleep_for(50ms);
  full.shutdown();
  putter.join();
  BOOST_TEST(put_woke.load());
}

BOOST_AUTO_TEST_CASE(a_shutdown_reaches_another_process) {
  parex::Queue<int> q;
  parex::Array<int> seen(4);
  parex::Process p(consume_until_minus_one, q, seen);  // gets until -1; here ShutDown ends it
  p.start();
  q.put(0);
  std::this_thread::sleep_for(100ms);
  q.shutdown();
  BOOST_TEST(p.join(deadlock_timeout));
  BOOST_TEST(code_of(p) == 1);  // it ended on ShutDown, thrown from its get()
}

BOOST_AUTO_TEST_CASE(join_thread_and_cancel_join_thread) {
  parex::Queue<std::string> q(0, 1 << 16);
  expect_error<parex::ValueError>([&] { q.join_thread(); });  // Python asserts closed
  const std::string big(100000, 'j');
  parex::Queue<std::string> out;
  parex::Process echo(echo_big, q, out);  // another process reads it (copies of q share its close())
  echo.start();
  q.put(big);  // past a quarter of the ring: waits in this process's feeder
  q.close();
  q.join_thread();  // returns once the feeder has moved it in
  BOOST_TEST(out.get(deadlock_timeout).size() == big.size());
  BOOST_TEST(echo.join(deadlock_timeout));
  // cancel_join_thread: a child's exit does not wait for items nobody reads, even while
  // a reader could come (this process holds the queue).
  parex::Queue<int> held(0, 1 << 16);
  parex::Process p(produce_range_then_cancel, held, 0, 100000);
  p.start();
  BOOST_TEST(p.join(30s), "the child's exit waited for its feeder despite cancel_join_thread()");
  if (p.is_alive()) p.kill();
  BOOST_TEST(code_of(p) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
