// Pool and ThreadPool (include/parex/mp/pool.hpp): map order and chunks, exceptions by
// type, AsyncResult timeouts and callbacks, starmap, imap, a worker SIGKILLed mid-map,
// terminate with work running (no worker left), close/join, initializer and
// maxtasksperchild, inputs that throw (CPython's exception_throwing_generator). Worker threads record what they see in atomics; only this thread
// asserts (Boost.Test is not thread-safe).
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "mp/pool_functions.hpp"
#include "support/helpers.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <csignal>
#include <chrono>
#include <numeric>
#include <ranges>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using namespace pool_test;

namespace {
std::vector<int> squares(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i * i);
  return v;
}
bool gone(int pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }

// CPython's exception_throwing_generator(total, when): yields 0, 1, ... and throws when
// asked for item `when` (-1: before the first). Single pass, no size, like a generator;
// on_throw runs just before it throws.
struct SayWhenError : std::runtime_error {
  SayWhenError() : std::runtime_error("somebody said when") {}
};
class Generator {
 public:
  Generator(int total, int when, std::function<void()> on_throw = {})
      : total_(total), when_(when), on_throw_(std::move(on_throw)) {}
  class iterator {
   public:
    using value_type = int;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    int operator*() const { return i_; }
    iterator& operator++() {
      g_->reach(i_ + 1);
      ++i_;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.i_ >= it.g_->total(); }

   private:
    friend class Generator;
    explicit iterator(Generator* g) : g_(g) {}
    Generator* g_ = nullptr;
    int i_ = 0;
  };
  iterator begin() {
    reach(when_ == -1 ? -1 : 0);
    return iterator(this);
  }
  std::default_sentinel_t end() const { return {}; }
  int total() const { return total_; }

 private:
  void reach(int i) {
    if (i != when_ || i >= total_) return;
    if (on_throw_) on_throw_();
    throw SayWhenError();
  }
  int total_, when_;
  std::function<void()> on_throw_;
};
static_assert(std::ranges::input_range<Generator> && !std::ranges::sized_range<Generator>);

// Iterates r until its end or a SayWhenError; what it yielded before.
template <class R>
std::vector<int> until_say_when(R& r, bool& threw) {
  std::vector<int> got;
  threw = false;
  try {
    for (int v : r) got.push_back(v);
  } catch (const SayWhenError&) {
    threw = true;
  }
  return got;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(mp_pool)

BOOST_AUTO_TEST_CASE(map_keeps_order_for_every_chunksize) {
  parex::Pool pool(2);
  BOOST_TEST(pool.processes() == 2u);
  for (std::size_t chunk : {0u, 1u, 7u, 1000u, 5000u}) {
    std::vector<int> got = pool.map(square, std::views::iota(0, 1000), chunk);
    BOOST_TEST((got == squares(1000)), "chunksize " << chunk);
  }
  std::vector<int> none = pool.map(square, std::vector<int>{});
  BOOST_TEST(none.empty());
}

BOOST_AUTO_TEST_CASE(map_rethrows_the_first_failure_by_type) {
  parex::Pool pool(2);
  std::vector<int> in(200);
  std::iota(in.begin(), in.end(), 0);
  std::vector<std::tuple<int, int>> args;
  for (int x : in) args.emplace_back(x, 150);
  BOOST_CHECK_THROW(pool.starmap(fail_at, args), std::invalid_argument);
  auto r = pool.starmap_async(fail_at, std::vector<std::tuple<int, int>>{{1, 5}, {5, 5}, {6, 5}});
  BOOST_CHECK_THROW(r.get(), std::invalid_argument);
  BOOST_TEST(r.ready());
  BOOST_TEST(!r.successful());
  BOOST_TEST(pool.apply(square, 9) == 81);  // the pool goes on
}

BOOST_AUTO_TEST_CASE(map_async_with_callbacks_runs_them_before_get_returns) {
  parex::Pool pool(2);
  std::atomic<long> seen{0};
  std::atomic<int> errors{0};
  auto r = pool.map_async(square, std::views::iota(0, 100), 10,
                          parex::Callbacks{[&](const std::vector<int>& v) { seen = std::accumulate(v.begin(), v.end(), 0L); },
                                           [&](std::exception_ptr) { ++errors; }});
  const std::vector<int> v = r.get(test::deadlock_timeout);
  BOOST_TEST((v == squares(100)));
  BOOST_TEST(seen.load() == 328350);
  BOOST_TEST(r.successful());
  auto e = pool.starmap_async(fail_at, std::vector<std::pair<int, int>>{{1, 2}, {2, 2}, {3, 2}}, 1, parex::Callbacks{parex::NoCallback{}, [&](std::exception_ptr p) {
                                                                  try {
                                                                    std::rethrow_exception(p);
                                                                  } catch (const std::invalid_argument&) {
                                                                    errors += 10;
                                                                  } catch (...) {
                                                                    ++errors;
                                                                  }
                                                                }});
  e.wait();
  BOOST_TEST(e.ready());
  BOOST_CHECK_THROW(e.get(), std::invalid_argument);
  BOOST_TEST(errors.load() == 10);  // the error_callback ran once, with the call's exception, before ready()
}

BOOST_AUTO_TEST_CASE(starmap_and_multi_range_apply_their_tuples) {
  parex::Pool pool(2);
  std::vector<std::tuple<int, int>> pairs;
  for (int i = 0; i < 300; ++i) pairs.emplace_back(i, 1000 * i);
  std::vector<int> sums = pool.starmap(add, pairs, 16);
  BOOST_TEST(sums.size() == 300u);
  for (int i = 0; i < 300; ++i) BOOST_TEST(sums[static_cast<std::size_t>(i)] == 1001 * i);
  std::vector<std::tuple<int, int, int>> triples{{1, 2, 3}, {4, 5, 6}};
  BOOST_TEST((pool.starmap_async(add3, triples).get() == std::vector<int>{6, 15}));
  std::vector<std::pair<int, int>> ps{{3, 4}};
  BOOST_TEST((pool.starmap(add, ps) == std::vector<int>{7}));
}

BOOST_AUTO_TEST_CASE(imap_is_ordered_and_imap_unordered_yields_in_completion_order) {
  parex::Pool pool(2);
  std::vector<int> in{3, 2, 1, 0};
  std::vector<int> ordered;
  for (int v : pool.imap(square, in)) ordered.push_back(v);
  BOOST_TEST((ordered == std::vector<int>{9, 4, 1, 0}));
  std::set<int> all;
  for (int v : pool.imap_unordered(square, std::views::iota(0, 500), 7)) all.insert(v);
  BOOST_TEST(all.size() == 500u);
  BOOST_TEST(*all.rbegin() == 499 * 499);
}

// CPython test_imap_handle_iterable_exception and its imap_unordered twin: the input
// throws at item 3; imap itself does not throw, items 0-2 are yielded, then the step that
// reaches item 3 throws the input's own exception. (It threw from imap() and lost them.)
BOOST_AUTO_TEST_CASE(imap_yields_what_was_read_before_an_input_error_then_throws_it) {
  parex::Pool pool(2);
  bool threw = false;
  for (int round = 0; round < 2; ++round) {  // "again, make sure it's reentrant"
    Generator first(1, -1);
    auto r = pool.imap(square, first);
    BOOST_CHECK_THROW(r.begin(), SayWhenError);
  }
  Generator g(10, 3);
  auto r = pool.imap(square, g);
  BOOST_TEST((until_say_when(r, threw) == std::vector<int>{0, 1, 4}));
  BOOST_TEST(threw);
  // Chunks: Python drops the part of a chunk read before the error; parex runs it.
  for (std::size_t chunk : {2u, 4u}) {
    Generator c(20, 7);
    auto rc = pool.imap(square, c, chunk);
    BOOST_TEST((until_say_when(rc, threw) == squares(7)), "chunksize " << chunk);
    BOOST_TEST(threw);
  }
  Generator u(10, 3);
  auto ru = pool.imap_unordered(square, u);
  std::vector<int> got = until_say_when(ru, threw);
  std::sort(got.begin(), got.end());
  BOOST_TEST((got == std::vector<int>{0, 1, 4}));
  BOOST_TEST(threw);
  parex::ThreadPool threads(2);  // the same face
  Generator t(10, 3);
  auto rt = threads.imap([](int x) { return x + 1; }, t);
  BOOST_TEST((until_say_when(rt, threw) == std::vector<int>{1, 2, 3}));
  BOOST_TEST(threw);
}

// Python's Pool.map lists its input first: an input that throws fails map with its own
// exception before any call runs.
BOOST_AUTO_TEST_CASE(map_over_an_input_that_throws_runs_no_call) {
  parex::Pool pool(2);
  Generator g(10, 3);
  BOOST_CHECK_THROW(pool.map(square, g), SayWhenError);
  std::atomic<int> calls{0};
  {
    parex::ThreadPool threads(2);
    // Before throwing, give calls already sent the time to start (they did, when map read
    // the input lazily).
    Generator slow(10, 3, [&] {
      const auto until = std::chrono::steady_clock::now() + 300ms;
      while (calls.load() == 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
    });
    BOOST_CHECK_THROW(threads.map(
                          [&](int x) {
                            ++calls;
                            return x;
                          },
                          slow),
                      SayWhenError);
    threads.close();
    threads.join();
  }
  BOOST_TEST(calls.load() == 0);
  BOOST_TEST((pool.map(square, std::views::iota(0, 5)) == squares(5)));
}

BOOST_AUTO_TEST_CASE(apply_async_times_out_waits_and_calls_back) {
  parex::Pool pool(2);
  std::atomic<int> got{0};
  auto slow = pool.apply_async(parex::Callbacks{[&](int v) { got = v; }}, slow_square, 6, 400);
  BOOST_CHECK_THROW(slow.get(20ms), parex::TimeoutError);
  BOOST_CHECK_THROW(slow.successful(), parex::ValueError);
  BOOST_TEST(!slow.ready());
  slow.wait(10ms);
  BOOST_TEST(!slow.ready());
  BOOST_TEST(slow.get(test::deadlock_timeout) == 36);  // the timeout did not cancel it
  BOOST_TEST(got.load() == 36);
  BOOST_TEST(slow.successful());
  BOOST_TEST(pool.apply_async(square, 5).get() == 25);
  std::atomic<int> failed{0};
  auto bad = pool.apply_async(parex::Callbacks{[&](int) { failed = -1; }, [&](std::exception_ptr) { failed = 1; }},
                              fail_at, 4, 4);
  BOOST_CHECK_THROW(bad.get(), std::invalid_argument);
  BOOST_TEST(failed.load() == 1);
}

BOOST_AUTO_TEST_CASE(a_worker_killed_mid_map_fails_that_call_only) {
  parex::Pool pool(2);
  auto other = pool.apply_async(slow_square, 7, 300);
  std::vector<int> in(100);
  std::iota(in.begin(), in.end(), 0);
  auto r = pool.starmap_async(pool_kill_self_at, [&] {
    std::vector<std::tuple<int, int>> t;
    for (int x : in) t.emplace_back(x, 40);
    return t;
  }());
  BOOST_CHECK_THROW(r.get(test::deadlock_timeout), parex::WorkerCrashed);
  BOOST_TEST(other.get(test::deadlock_timeout) == 49);
  std::vector<std::pair<int, int>> early;
  for (int x : in) early.emplace_back(x, 3);
  BOOST_CHECK_THROW(pool.starmap(pool_kill_self_at, early, 1), parex::WorkerCrashed);
  BOOST_TEST((pool.map(square, std::views::iota(0, 50)) == squares(50)));  // fresh workers
}

BOOST_AUTO_TEST_CASE(terminate_with_work_running_leaves_no_worker) {
  parex::Array<int> pids(2);
  std::vector<parex::AsyncResult<int>> rs;
  {
    parex::Pool pool(2);
    for (int i = 0; i < 2; ++i) rs.push_back(pool.apply_async(pid_then_sleep, pids, i, 30'000));
    rs.push_back(pool.apply_async(square, 3));  // queued behind the sleepers
    BOOST_TEST(test::eventually([&] { return pids[0] != 0 && pids[1] != 0; }));
    const auto t0 = std::chrono::steady_clock::now();
    pool.terminate();
    BOOST_TEST((std::chrono::steady_clock::now() - t0 < 10s));
    BOOST_CHECK_THROW(pool.apply(square, 1), parex::ValueError);
  }
  for (auto& r : rs) BOOST_TEST(r.ready());  // terminate waited: nothing left pending
  BOOST_CHECK_THROW(rs[0].get(), parex::BrokenProcessPool);  // running: its worker was killed
  BOOST_CHECK_THROW(rs[1].get(), parex::BrokenProcessPool);
  BOOST_CHECK_THROW(rs[2].get(), parex::CancelledError);     // queued: never started
  BOOST_TEST(gone(pids[0]));
  BOOST_TEST(gone(pids[1]));
}

BOOST_AUTO_TEST_CASE(the_destructor_terminates_and_reaps) {
  parex::Array<int> pids(2);
  const auto t0 = std::chrono::steady_clock::now();
  parex::AsyncResult<std::vector<int>> r;
  {
    parex::Pool pool(2);
    r = pool.starmap_async(pid_then_sleep, std::vector<std::tuple<parex::Array<int>, int, int>>{{pids, 0, 30'000}, {pids, 1, 30'000}}, 1);
    BOOST_TEST(test::eventually([&] { return pids[0] != 0 && pids[1] != 0; }));
  }
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < 20s));
  BOOST_TEST(gone(pids[0]));
  BOOST_TEST(gone(pids[1]));
  BOOST_TEST(r.ready());
  BOOST_CHECK_THROW(r.get(), parex::BrokenProcessPool);
}

BOOST_AUTO_TEST_CASE(join_or_terminate_from_a_callback_is_refused_not_a_hang) {
  parex::Pool pool(2);
  std::atomic<int> refused{0};
  auto r = pool.apply_async(parex::Callbacks{[&](int) {
                              try {
                                pool.terminate();
                              } catch (const parex::InvalidStateError&) {
                                ++refused;
                              }
                            }},
                            square, 2);
  BOOST_TEST(r.get(test::deadlock_timeout) == 4);
  auto m = pool.map_async(square, std::vector<int>{1, 2}, 1, parex::Callbacks{[&](const std::vector<int>&) {
                            try {
                              pool.join();
                            } catch (const parex::InvalidStateError&) {
                              ++refused;
                            }
                          }});
  BOOST_TEST(m.get(test::deadlock_timeout).size() == 2u);
  BOOST_TEST(refused.load() == 2);
  BOOST_TEST(pool.apply(square, 3) == 9);  // still running
}

BOOST_AUTO_TEST_CASE(close_then_join_finishes_the_work) {
  parex::Pool pool(2);
  BOOST_CHECK_THROW(pool.join(), parex::ValueError);
  std::vector<parex::AsyncResult<int>> rs;
  for (int i = 0; i < 20; ++i) rs.push_back(pool.apply_async(slow_square, i, 10));
  auto m = pool.map_async(square, std::views::iota(0, 100));
  pool.close();
  BOOST_CHECK_THROW(pool.apply_async(square, 1), parex::ValueError);
  BOOST_CHECK_THROW(pool.map(square, std::vector<int>{1}), parex::ValueError);
  pool.join();
  for (int i = 0; i < 20; ++i) {
    BOOST_TEST(rs[static_cast<std::size_t>(i)].ready());
    BOOST_TEST(rs[static_cast<std::size_t>(i)].get() == i * i);
  }
  BOOST_TEST(m.ready());
  BOOST_TEST((m.get() == squares(100)));
}

BOOST_AUTO_TEST_CASE(initializer_and_maxtasksperchild) {
  parex::Value<int> inits(0);
  parex::Pool pool(1, parex::Initializer(set_ready, inits), 2);
  std::vector<int> flags = pool.map(ready_flag, std::views::iota(0, 6), 1);
  BOOST_TEST((flags == std::vector<int>(6, 1)));
  std::vector<int> pids = pool.map(worker_pid, std::views::iota(0, 6), 1);
  BOOST_TEST(std::set<int>(pids.begin(), pids.end()).size() == 3u);  // a fresh worker every 2 calls
  BOOST_TEST(inits.value() >= 6);
}

// Python: maxtasksperchild must be a positive int or None. 0 was taken for "no limit".
BOOST_AUTO_TEST_CASE(maxtasksperchild_zero_is_a_value_error_and_nullopt_no_limit) {
  test::expect_error<parex::ValueError>([] { parex::Pool p(1, {}, 0); });
  parex::Pool pool(1, {}, std::nullopt);
  std::vector<int> pids = pool.map(worker_pid, std::views::iota(0, 6), 1);
  BOOST_TEST(std::set<int>(pids.begin(), pids.end()).size() == 1u);  // one worker did all
}

BOOST_AUTO_TEST_CASE(thread_pool_has_the_same_face) {
  parex::ThreadPool pool(3);
  BOOST_TEST(pool.processes() == 3u);
  // 300 ms then 10 ms calls on three threads: the short one is reported first.
  std::vector<int> first_done;
  for (int v : pool.imap_unordered(sleep_then_return, std::vector<int>{300, 10}, 1)) first_done.push_back(v);
  BOOST_TEST((first_done == std::vector<int>{10, 300}));
  BOOST_TEST((pool.map([](int x) { return x * x; }, std::views::iota(0, 1000), 9) == squares(1000)));
  std::vector<std::pair<int, int>> ps{{1, 2}, {3, 4}};
  BOOST_TEST((pool.starmap([](int a, int b) { return a * b; }, ps) == std::vector<int>{2, 12}));
  std::atomic<int> got{0};
  auto r = pool.apply_async(parex::Callbacks{[&](int v) { got = v; }}, [](int x) { return x + 1; }, 41);
  BOOST_TEST(r.get() == 42);
  BOOST_TEST(got.load() == 42);
  auto v = pool.apply_async([] {});
  v.get();
  BOOST_TEST(v.successful());
  auto e = pool.map_async([](int x) { if (x == 3) throw std::out_of_range("3"); return x; }, std::vector<int>{1, 2, 3});
  BOOST_CHECK_THROW(e.get(), std::out_of_range);
  pool.close();
  pool.join();
}

BOOST_AUTO_TEST_SUITE_END()
