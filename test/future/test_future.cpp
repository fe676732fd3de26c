// Future, Promise, wait and as_completed, independent of any executor.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/helpers.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace test;
using parex::Future;
using parex::Promise;

BOOST_AUTO_TEST_SUITE(future)

BOOST_AUTO_TEST_CASE(result_after_set_result) {
  Promise<int> p;
  Future<int> f = p.get_future();
  BOOST_TEST(!f.done());
  BOOST_TEST(!f.running());
  BOOST_TEST(p.set_running_or_notify_cancel());
  BOOST_TEST(f.running());
  p.set_result(49);
  BOOST_TEST(f.done());
  BOOST_TEST(!f.running());
  BOOST_TEST(f.result() == 49);
  BOOST_TEST(f.result(0s) == 49);
  BOOST_TEST(!f.exception());
  BOOST_CHECK_THROW(p.set_result(1), parex::InvalidStateError);
  BOOST_CHECK_THROW(p.set_exception(std::make_exception_ptr(std::runtime_error("x"))), parex::InvalidStateError);
  BOOST_TEST(f.result() == 49);
}

BOOST_AUTO_TEST_CASE(copies_share_one_state) {
  Promise<std::string> p;
  Future<std::string> a = p.get_future();
  Future<std::string> b = a;
  BOOST_TEST((a == b));
  p.set_result("shared");
  BOOST_TEST(a.result() == "shared");
  BOOST_TEST(b.result() == "shared");
  BOOST_TEST(std::move(b).result() == "shared");  // copied out: a still holds it
  BOOST_TEST(a.result() == "shared");
}

BOOST_AUTO_TEST_CASE(exception_is_rethrown_with_its_type) {
  Promise<int> p;
  auto f = p.get_future();
  p.set_exception(std::make_exception_ptr(std::out_of_range("index 7")));
  BOOST_TEST(f.done());
  BOOST_CHECK_THROW(f.result(), std::out_of_range);
  auto e = f.exception();
  BOOST_REQUIRE(e);
  try {
    std::rethrow_exception(e);
  } catch (const std::out_of_range& x) {
    BOOST_TEST(std::string(x.what()) == "index 7");
  }
}

BOOST_AUTO_TEST_CASE(timeouts) {
  Promise<int> p;
  auto f = p.get_future();
  BOOST_CHECK_THROW(f.result(1ms), parex::TimeoutError);
  BOOST_CHECK_THROW(f.result(0s), parex::TimeoutError);
  BOOST_CHECK_THROW(f.result(-5s), parex::TimeoutError);
  BOOST_CHECK_THROW(f.exception(std::chrono::microseconds(10)), parex::TimeoutError);
  BOOST_CHECK_THROW(f.result(std::chrono::duration<double>(0.001)), parex::TimeoutError);
  auto e = expect_error<parex::TimeoutError>([&] { f.result(2ms); });
  BOOST_TEST(std::string(e.what()).find("not ready") != std::string::npos);
  // TimeoutError is a parex::Error and a std::runtime_error, as Python users expect.
  BOOST_CHECK_THROW(f.result(1ms), parex::Error);
  BOOST_CHECK_THROW(f.result(1ms), std::runtime_error);
  std::thread t([&] {
    std::this_thread::sleep_for(5ms);
    p.set_result(3);
  });
  BOOST_TEST(f.result(deadlock_timeout) == 3);
  t.join();
  BOOST_TEST(!parex::Timeout().finite());
  BOOST_TEST(!parex::Timeout(std::nullopt).finite());
  BOOST_TEST(parex::Timeout(-1s).duration().count() == 0);
  BOOST_TEST(parex::Timeout(1500us).duration().count() == 1'500'000);
}

BOOST_AUTO_TEST_CASE(cancel_semantics) {
  Promise<int> p;
  auto f = p.get_future();
  BOOST_TEST(f.cancel());
  BOOST_TEST(f.cancelled());
  BOOST_TEST(f.done());
  BOOST_TEST(f.cancel());  // cancelling a cancelled future is true, as in Python
  BOOST_CHECK_THROW(f.result(), parex::CancelledError);
  BOOST_CHECK_THROW(f.exception(), parex::CancelledError);
  BOOST_TEST(!p.set_running_or_notify_cancel());
  BOOST_CHECK_THROW(p.set_result(1), parex::InvalidStateError);

  Promise<int> q;
  auto g = q.get_future();
  BOOST_TEST(q.set_running_or_notify_cancel());
  BOOST_TEST(!g.cancel());  // running: too late
  BOOST_TEST(!g.cancelled());
  q.set_result(1);
  BOOST_TEST(!g.cancel());  // finished: too late
  BOOST_TEST(g.result() == 1);
}

BOOST_AUTO_TEST_CASE(cancel_racing_completion) {
  // Exactly one side wins, every time: either the future is cancelled and the producer
  // is told so, or the producer runs and the result is there.
  for (int i = 0; i < 2000; ++i) {
    Promise<int> p;
    auto f = p.get_future();
    std::atomic<bool> go{false};
    bool ran = false;
    std::thread producer([&] {
      while (!go.load()) {
      }
      if (p.set_running_or_notify_cancel()) {
        ran = true;
        p.set_result(i);
      }
    });
    go = true;
    const bool cancelled = f.cancel();
    producer.join();
    BOOST_REQUIRE(f.done());
    BOOST_REQUIRE(cancelled != ran);
    if (ran) BOOST_REQUIRE(f.result() == i);
    else BOOST_REQUIRE(f.cancelled());
  }
}

BOOST_AUTO_TEST_CASE(callbacks_before_and_after_completion) {
  Promise<int> p;
  auto f = p.get_future();
  std::vector<int> seen;
  f.add_done_callback([&](const Future<int>& g) { seen.push_back(g.result() * 1); });
  f.add_done_callback([&](const Future<int>& g) { seen.push_back(g.result() * 10); });
  BOOST_TEST(seen.empty());
  p.set_result(2);
  BOOST_TEST((seen == std::vector<int>{2, 20}));  // in registration order
  f.add_done_callback([&](const Future<int>& g) { seen.push_back(g.result() * 100); });
  BOOST_TEST((seen == std::vector<int>{2, 20, 200}));  // at once, when already done
}

BOOST_AUTO_TEST_CASE(throwing_callback_loses_nothing) {
  Promise<void> p;
  auto f = p.get_future();
  int after = 0;
  f.add_done_callback([](const Future<void>&) { throw std::runtime_error("callback failure (expected by the test)"); });
  f.add_done_callback([&](const Future<void>&) { ++after; });
  p.set_result();
  BOOST_TEST(after == 1);
  f.add_done_callback([](const Future<void>&) { throw 42; });
  f.add_done_callback([&](const Future<void>&) { ++after; });
  BOOST_TEST(after == 2);
}

BOOST_AUTO_TEST_CASE(callbacks_run_on_cancel) {
  Promise<int> p;
  auto f = p.get_future();
  bool saw_cancelled = false;
  f.add_done_callback([&](const Future<int>& g) { saw_cancelled = g.cancelled(); });
  f.cancel();
  BOOST_TEST(saw_cancelled);
}

BOOST_AUTO_TEST_CASE(callbacks_racing_completion_run_exactly_once) {
  for (int i = 0; i < 500; ++i) {
    Promise<int> p;
    auto f = p.get_future();
    std::atomic<int> calls{0};
    std::vector<std::thread> adders;
    for (int t = 0; t < 4; ++t)
      adders.emplace_back([&] {
        for (int k = 0; k < 8; ++k) f.add_done_callback([&](const Future<int>&) { calls.fetch_add(1); });
      });
    p.set_result(1);
    for (auto& t : adders) t.join();
    BOOST_REQUIRE(calls.load() == 32);
  }
}

BOOST_AUTO_TEST_CASE(many_concurrent_waiters) {
  Promise<int> p;
  auto f = p.get_future();
  std::atomic<int> ok{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 32; ++i)
    waiters.emplace_back([f, &ok] {
      if (f.result(deadlock_timeout) == 7) ok.fetch_add(1);
    });
  std::this_thread::sleep_for(10ms);
  p.set_result(7);
  for (auto& t : waiters) t.join();
  BOOST_TEST(ok.load() == 32);
}

BOOST_AUTO_TEST_CASE(void_future) {
  Promise<void> p;
  Future<void> f = p.get_future();
  BOOST_CHECK_THROW(f.result(1ms), parex::TimeoutError);
  p.set_result();
  f.result();
  BOOST_TEST(f.done());
  Promise<void> q;
  auto g = q.get_future();
  q.set_exception(std::make_exception_ptr(std::logic_error("void failure")));
  BOOST_CHECK_THROW(g.result(), std::logic_error);
}

BOOST_AUTO_TEST_CASE(move_only_results) {
  Future<std::unique_ptr<int>> f;
  {
    Promise<std::unique_ptr<int>> p;
    f = p.get_future();
    p.set_result(std::make_unique<int>(5));
    BOOST_CHECK_THROW(Future<std::unique_ptr<int>>(f).result(), parex::InvalidStateError);  // the promise holds it too
  }
  BOOST_TEST(*f.result() == 5);  // by const reference
  auto g = f;
  BOOST_CHECK_THROW(std::move(g).result(), parex::InvalidStateError);  // shared: cannot move out
  g = Future<std::unique_ptr<int>>();
  std::unique_ptr<int> owned = std::move(f).result();  // the only handle: moved out
  BOOST_TEST(*owned == 5);
}

BOOST_AUTO_TEST_CASE(moving_a_result_out_waits_for_running_callbacks) {
  // A callback may still be reading the value when the owner moves it out:
  // std::move(f).result() waits for the callbacks that completion started, then moves
  // (a move-only result is neither refused as shared nor read half-moved).
  using Text = std::unique_ptr<std::string>;
  Promise<Text> p;
  Future<Text> f = p.get_future();
  std::string seen;
  f.add_done_callback([&](const Future<Text>& g) {
    std::this_thread::sleep_for(30ms);  // the owner has called result() by now
    seen = *g.result();
  });
  std::thread setter([&] { p.set_result(std::make_unique<std::string>(4096, 'p')); });
  BOOST_REQUIRE(f.exception(deadlock_timeout) == nullptr);  // done; the callback is asleep
  const Text moved = std::move(f).result(deadlock_timeout);
  setter.join();
  BOOST_TEST(*moved == std::string(4096, 'p'));
  BOOST_TEST(seen == std::string(4096, 'p'));
}

BOOST_AUTO_TEST_CASE(a_callback_may_read_its_own_future_by_value) {
  // On the thread that runs the callbacks, nothing waits for them (it would wait for itself).
  Promise<std::string> p;
  Future<std::string> f = p.get_future();
  std::string seen;
  f.add_done_callback([&](const Future<std::string>& g) { seen = Future<std::string>(g).result() + "!"; });
  p.set_result("x");
  BOOST_TEST(seen == "x!");
}

BOOST_AUTO_TEST_CASE(waiters_learn_of_completion_before_callbacks_run) {
  // A done callback that blocks must not hold up wait() and as_completed() on the future.
  Promise<int> p;
  Future<int> f = p.get_future();
  Gate release;
  f.add_done_callback([&](const Future<int>&) { release.wait(); });
  std::thread setter([&] {
    std::this_thread::sleep_for(20ms);  // wait() below is registered by now
    p.set_result(1);
  });
  auto r = parex::wait(std::vector{f}, deadlock_timeout, parex::ReturnWhen::first_completed);
  BOOST_TEST(r.done.size() == 1u);
  std::size_t n = 0;
  for (auto& g : parex::as_completed(std::vector{f}, deadlock_timeout)) n += g.done();
  BOOST_TEST(n == 1u);
  release.open();
  setter.join();
}

BOOST_AUTO_TEST_CASE(empty_future_and_dropped_promise) {
  Future<int> empty;
  BOOST_TEST(!empty.valid());
  BOOST_CHECK_THROW(empty.result(), parex::InvalidStateError);
  BOOST_CHECK_THROW(empty.done(), parex::InvalidStateError);
  Future<int> f;
  {
    Promise<int> p;
    f = p.get_future();
  }
  BOOST_TEST(f.done());
  BOOST_CHECK_THROW(f.result(), parex::BrokenExecutor);
}

BOOST_AUTO_TEST_CASE(wait_all_first_completed_first_exception) {
  std::vector<Promise<int>> ps(4);
  std::vector<Future<int>> fs;
  for (auto& p : ps) fs.push_back(p.get_future());

  auto r = parex::wait(fs, 1ms);  // all_completed, times out: everything pending
  BOOST_TEST(r.done.size() == 0u);
  BOOST_TEST(r.not_done.size() == 4u);

  std::thread t([&] {
    std::this_thread::sleep_for(5ms);
    ps[2].set_result(2);
  });
  r = parex::wait(fs, deadlock_timeout, parex::ReturnWhen::first_completed);
  t.join();
  BOOST_TEST(r.done.size() == 1u);
  BOOST_TEST((r.done[0] == fs[2]));
  BOOST_TEST(r.not_done.size() == 3u);

  // first_exception: a plain completion does not end the wait, an exception does.
  std::thread u([&] {
    std::this_thread::sleep_for(2ms);
    ps[0].set_result(0);
    std::this_thread::sleep_for(2ms);
    ps[3].set_exception(std::make_exception_ptr(std::runtime_error("boom")));
  });
  r = parex::wait(fs, deadlock_timeout, parex::ReturnWhen::first_exception);
  u.join();
  BOOST_TEST(fs[3].done());
  BOOST_TEST(r.done.size() == 3u);
  BOOST_TEST(r.not_done.size() == 1u);
  BOOST_TEST((r.not_done[0] == fs[1]));

  ps[1].set_result(1);
  r = parex::wait(fs);
  BOOST_TEST(r.done.size() == 4u);
  BOOST_TEST(r.not_done.empty());
}

BOOST_AUTO_TEST_CASE(wait_dedups_like_python_sets) {
  Promise<int> p;
  auto f = p.get_future();
  p.set_result(1);
  std::vector<Future<int>> fs{f, f, f};
  auto r = parex::wait(fs);
  BOOST_TEST(r.done.size() == 1u);
}

BOOST_AUTO_TEST_CASE(as_completed_yields_in_completion_order) {
  std::vector<Promise<int>> ps(5);
  std::vector<Future<int>> fs;
  for (auto& p : ps) fs.push_back(p.get_future());
  ps[4].set_result(4);  // done before the call: yielded first
  const std::vector<int> order{2, 0, 3, 1};
  std::thread t([&] {
    for (int i : order) {
      std::this_thread::sleep_for(2ms);
      ps[i].set_result(i);
    }
  });
  std::vector<int> seen;
  for (const Future<int>& f : parex::as_completed(fs, deadlock_timeout)) seen.push_back(f.result());
  t.join();
  BOOST_TEST((seen == std::vector<int>{4, 2, 0, 3, 1}));
}

BOOST_AUTO_TEST_CASE(as_completed_times_out_with_a_count) {
  std::vector<Promise<int>> ps(3);
  std::vector<Future<int>> fs;
  for (auto& p : ps) fs.push_back(p.get_future());
  ps[1].set_result(1);
  int yielded = 0;
  auto e = expect_error<parex::TimeoutError>([&] {
    for (const auto& f : parex::as_completed(fs, 20ms)) {
      BOOST_TEST(f.result() == 1);
      ++yielded;
    }
  });
  BOOST_TEST(std::string(e.what()) == "2 (of 3) futures unfinished");
  BOOST_TEST(yielded == 1);
  // The watch is gone; completing the futures afterwards must touch nothing freed.
  ps[0].set_result(0);
  ps[2].set_result(2);
}

BOOST_AUTO_TEST_CASE(as_completed_while_futures_complete_concurrently) {
  // Stress the watch's tear-down against completions still running on other threads.
  for (int round = 0; round < 200; ++round) {
    std::vector<Promise<int>> ps(8);
    std::vector<Future<int>> fs;
    for (auto& p : ps) fs.push_back(p.get_future());
    std::thread t([&] {
      for (auto& p : ps) p.set_result(1);
    });
    {
      auto ac = parex::as_completed(fs, deadlock_timeout);
      auto it = ac.begin();  // take one, then drop the watch while others complete
      BOOST_REQUIRE(it->result() == 1);
    }
    t.join();
  }
}

BOOST_AUTO_TEST_SUITE_END()
