// Future::then, when_all and when_any: results, errors and cancellation passed on,
// flattening, callbacks already done, and the same over real pools. Nothing here blocks
// a thread to wait: every completion below is driven by a Promise or a pool.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"

#include <parex/parex.hpp>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(continuations)

BOOST_AUTO_TEST_CASE(then_runs_on_the_value_and_chains) {
  parex::Promise<int> p;
  std::atomic<int> runs{0};
  auto f = p.get_future().then([&](int x) { ++runs; return x * 2; }).then([](int x) { return std::to_string(x); });
  BOOST_TEST(!f.done());
  BOOST_TEST(runs.load() == 0);
  p.set_result(21);
  BOOST_TEST(f.done());  // ran on the completing thread, at once
  BOOST_TEST(f.result() == "42");
  BOOST_TEST(runs.load() == 1);
  auto now = parex::Promise<int>();  // then on a future already done runs at once
  now.set_result(1);
  auto g = now.get_future().then([](int x) { return x + 1; });
  BOOST_TEST(g.done());
  BOOST_TEST(g.result() == 2);
}

BOOST_AUTO_TEST_CASE(then_passes_errors_and_cancellation_on_without_running) {
  parex::Promise<int> p;
  std::atomic<int> runs{0};
  auto f = p.get_future().then([&](int x) { ++runs; return x; });
  p.set_exception(std::make_exception_ptr(std::out_of_range("no")));
  BOOST_CHECK_THROW(f.result(), std::out_of_range);
  BOOST_TEST(runs.load() == 0);
  parex::Promise<int> c;
  auto src = c.get_future();
  auto g = src.then([&](int) { ++runs; });
  BOOST_TEST(src.cancel());
  BOOST_CHECK_THROW(g.result(), parex::CancelledError);
  BOOST_TEST(runs.load() == 0);
  parex::Promise<int> t;  // what the continuation throws is its future's error
  auto h = t.get_future().then([](int) -> int { throw std::invalid_argument("bad"); });
  t.set_result(1);
  BOOST_CHECK_THROW(h.result(), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(then_with_the_future_sees_every_outcome_and_flattens) {
  parex::Promise<int> p;
  auto f = p.get_future().then([](const parex::Future<int>& g) { return g.exception() ? -1 : g.result(); });
  p.set_exception(std::make_exception_ptr(std::runtime_error("x")));
  BOOST_TEST(f.result() == -1);
  parex::Promise<int> outer;
  parex::Promise<std::string> inner;
  auto inner_f = inner.get_future();
  auto flat = outer.get_future().then([inner_f](int) { return inner_f; });  // Future<std::string>, not nested
  static_assert(std::is_same_v<decltype(flat), parex::Future<std::string>>);
  outer.set_result(0);
  BOOST_TEST(!flat.done());
  inner.set_result("inner");
  BOOST_TEST(flat.result() == "inner");
  parex::Promise<void> v;
  std::atomic<int> ran{0};
  auto after_void = v.get_future().then([&] { ++ran; });
  static_assert(std::is_same_v<decltype(after_void), parex::Future<void>>);
  v.set_result();
  after_void.result();
  BOOST_TEST(ran.load() == 1);
}

BOOST_AUTO_TEST_CASE(cancelling_the_continuation_leaves_the_source_alone) {
  parex::Promise<int> p;
  auto src = p.get_future();
  std::atomic<int> runs{0};
  auto f = src.then([&](int x) { ++runs; return x; });
  BOOST_TEST(f.cancel());
  p.set_result(5);  // completing the source finds the continuation cancelled: fn never runs
  BOOST_TEST(src.result() == 5);
  BOOST_TEST(f.cancelled());
  BOOST_TEST(runs.load() == 0);
  parex::Promise<int> q;  // once fn has started, cancel() says no
  auto g = q.get_future().then([&](int x) {
    ++runs;
    return x;
  });
  q.set_result(1);
  BOOST_TEST(!g.cancel());
  BOOST_TEST(g.result() == 1);
}

BOOST_AUTO_TEST_CASE(a_continuation_may_move_out_an_earlier_result_of_its_chain) {
  // a's callbacks complete b, whose callbacks run inside them: moving a's result out
  // there must not wait for a's callbacks to end (they are this thread's).
  parex::Promise<int> p;
  auto a = p.get_future();
  auto b = a.then([](int x) { return x + 1; });
  auto c = b.then([a](int y) mutable { return std::move(a).result() + y; });
  p.set_result(1);
  BOOST_TEST(c.result(test::deadlock_timeout) == 3);
  std::vector<parex::Promise<int>> ps(2);
  std::vector<parex::Future<int>> fs{ps[0].get_future(), ps[1].get_future()};
  auto sum = parex::when_all(fs).then([fs](const std::vector<parex::Future<int>>&) mutable {
    return std::move(fs[0]).result() + std::move(fs[1]).result();
  });
  ps[0].set_result(2);
  ps[1].set_result(3);  // the last: when_all's callback runs inside ps[1]'s
  BOOST_TEST(sum.result(test::deadlock_timeout) == 5);
}

BOOST_AUTO_TEST_CASE(a_generic_lambda_gets_the_value) {
  parex::Promise<int> p;
  auto f = p.get_future().then([](auto v) { return v + 1; });
  p.set_result(1);
  BOOST_TEST(f.result() == 2);
}

BOOST_AUTO_TEST_CASE(when_all_and_when_any_under_concurrent_completions) {
  parex::ThreadPoolExecutor pool(parex::ThreadPoolOptions{.max_workers = 2});
  for (int round = 0; round < 300; ++round) {
    test::Gate gate;
    auto a = pool.submit([&gate] { gate.wait(); return 1; });
    auto b = pool.submit([&gate] { gate.wait(); return 2; });
    auto all = parex::when_all(std::vector<parex::Future<int>>{a, b});
    auto any = parex::when_any(std::vector<parex::Future<int>>{a, b});
    gate.open();
    BOOST_REQUIRE(all.result(test::deadlock_timeout).size() == 2u);
    const auto& r = any.result(test::deadlock_timeout);
    BOOST_REQUIRE(r.index < 2u);
    BOOST_REQUIRE(r.futures[r.index].done());
  }
}

BOOST_AUTO_TEST_CASE(when_all_completes_after_the_last_with_all_in_order) {
  std::vector<parex::Promise<int>> ps(3);
  std::vector<parex::Future<int>> fs;
  for (auto& p : ps) fs.push_back(p.get_future());
  auto all = parex::when_all(fs);
  ps[2].set_result(2);
  ps[0].set_exception(std::make_exception_ptr(std::runtime_error("zero")));
  BOOST_TEST(!all.done());
  ps[1].set_result(1);
  BOOST_TEST(all.done());
  const auto& got = all.result();
  BOOST_TEST(got.size() == 3u);
  BOOST_TEST((got[1] == fs[1] && got[2].result() == 2));
  BOOST_CHECK_THROW(got[0].result(), std::runtime_error);
  auto none = parex::when_all(std::vector<parex::Future<int>>{});
  BOOST_TEST(none.done());
  BOOST_TEST(none.result().empty());
  parex::Promise<int> a;
  parex::Promise<std::string> b;
  auto both = parex::when_all(a.get_future(), b.get_future());
  a.set_result(7);
  BOOST_TEST(!both.done());
  b.set_result("b");
  BOOST_TEST(std::get<1>(both.result()).result() == "b");
}

BOOST_AUTO_TEST_CASE(when_any_gives_the_first_index) {
  std::vector<parex::Promise<int>> ps(3);
  std::vector<parex::Future<int>> fs;
  for (auto& p : ps) fs.push_back(p.get_future());
  auto any = parex::when_any(fs);
  BOOST_TEST(!any.done());
  ps[1].set_result(10);
  ps[0].set_result(0);  // later ones change nothing
  BOOST_TEST(any.result().index == 1u);
  BOOST_TEST(any.result().futures.size() == 3u);
  auto empty = parex::when_any(std::vector<parex::Future<int>>{});
  BOOST_TEST(empty.result().index == std::numeric_limits<std::size_t>::max());
}

std::size_t callbacks_on(const parex::Future<int>& f) { return parex::detail::FutureAccess::state(f)->callback_count(); }

BOOST_AUTO_TEST_CASE(when_any_takes_its_callbacks_off_the_inputs_that_did_not_finish) {
  parex::Promise<int> never;  // a long-lived input that outlasts every when_any below
  const parex::Future<int> forever = never.get_future();
  BOOST_TEST(callbacks_on(forever) == 0u);
  for (int i = 0; i < 1000; ++i) {
    parex::Promise<int> p;
    auto any = parex::when_any(std::vector<parex::Future<int>>{forever, p.get_future()});
    BOOST_TEST_REQUIRE(callbacks_on(forever) == 1u);  // its node waits while the when_any does
    p.set_result(i);
    BOOST_TEST_REQUIRE(any.result().index == 1u);
    BOOST_TEST_REQUIRE(callbacks_on(forever) == 0u);  // and is gone once it completed
  }
  // An input done before when_any is called completes it while the nodes are added.
  parex::Promise<int> done;
  done.set_result(7);
  for (int i = 0; i < 100; ++i) {
    auto any = parex::when_any(std::vector<parex::Future<int>>{forever, done.get_future(), forever});
    BOOST_TEST_REQUIRE(any.result().index == 1u);
  }
  BOOST_TEST(callbacks_on(forever) == 0u);
  // Completions racing the registration and each other: still nothing left behind.
  for (int i = 0; i < 200; ++i) {
    std::vector<parex::Promise<int>> ps(3);
    std::vector<parex::Future<int>> fs{forever};
    for (auto& p : ps) fs.push_back(p.get_future());
    fs.push_back(forever);
    std::thread t([&] {
      for (auto& p : ps) p.set_result(1);
    });
    auto any = parex::when_any(fs);
    t.join();
    BOOST_TEST_REQUIRE(any.result(test::deadlock_timeout).index >= 1u);
    BOOST_TEST_REQUIRE(any.result().index <= 3u);
    BOOST_TEST_REQUIRE(callbacks_on(forever) == 0u);
  }
  // A when_any that never completes keeps its node (one each), and cancelling the input
  // later still completes it.
  auto pending = parex::when_any(std::vector<parex::Future<int>>{forever});
  BOOST_TEST(callbacks_on(forever) == 1u);
  BOOST_TEST(forever.cancel());
  BOOST_TEST(pending.result().index == 0u);
}

BOOST_AUTO_TEST_CASE(over_real_pools_nothing_waits) {
  parex::ThreadPoolExecutor threads(parex::ThreadPoolOptions{.max_workers = 2});
  parex::ProcessPoolExecutor procs(parex::ProcessPoolOptions{.max_workers = 2});
  std::vector<parex::Future<int>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(procs.submit(square, i).then([](int v) { return v + 1; }));
  for (int i = 0; i < 20; ++i) fs.push_back(threads.submit([i] { return i; }));
  auto all = parex::when_all(fs);
  long sum = 0;
  for (const auto& f : all.result(test::deadlock_timeout)) sum += f.result();
  BOOST_TEST(sum == 2470 + 20 + 190);  // sum of i*i for i < 20, plus 20 ones, plus sum of i
  parex::Promise<int> later;  // completes only after the check: the order is certain
  auto fast = procs.submit(square, 3);
  BOOST_TEST(parex::when_any(std::vector<parex::Future<int>>{later.get_future(), fast}).result(test::deadlock_timeout).index == 1u);
  later.set_result(0);
}

BOOST_AUTO_TEST_SUITE_END()
