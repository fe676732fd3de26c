// The failure matrix again (see test_failures.cpp), for a call's deadline and for
// Future::interrupt at each stage of the pipeline: queued in the pool, queued in a worker
// behind another call, decoding its arguments, running, encoding its result, and after its
// result is out. Each case checks the exact outcome of every call, that the pool goes on,
// and that a stopped worker is gone. (Decoding a result happens in the parent, on the
// reactor: no deadline covers it; a result decoder must not hang.)
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include <parex/parex.hpp>

#include "support/helpers.hpp"

#include <cerrno>
#include <csignal>
#include <chrono>
#include <string>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;

namespace stop_matrix {
// Hangs in the worker while it is decoded (v == -1) or encoded (v == -2).
struct Sticky {
  int v = 0;
  template <class Ar>
  void save(Ar& ar, unsigned) const {
    if (v == -2)
      for (;;) std::this_thread::sleep_for(1h);
    ar & v;
  }
  template <class Ar>
  void load(Ar& ar, unsigned) {
    ar & v;
    if (v == -1)
      for (;;) std::this_thread::sleep_for(1h);
  }
  BOOST_SERIALIZATION_SPLIT_MEMBER()
};
int take_sticky(Sticky s) { return s.v; }
Sticky give_sticky(int v) { return {v}; }
int pid_now(int) { return static_cast<int>(::getpid()); }
int nap_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
int stuck(int) {
  for (;;) std::this_thread::sleep_for(1h);
}
}  // namespace stop_matrix

using namespace stop_matrix;
PAREX_REGISTER_AS("stop_matrix::take_sticky", take_sticky);
PAREX_REGISTER_AS("stop_matrix::give_sticky", give_sticky);
PAREX_REGISTER_AS("stop_matrix::pid_now", pid_now);
PAREX_REGISTER_AS("stop_matrix::nap_ms", nap_ms);
PAREX_REGISTER_AS("stop_matrix::stuck", stuck);

// In the suite's namespace: test_hygiene.cpp, in the same unity unit, has a gone() of its own.
namespace stop_matrix {
namespace {
bool gone(int pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }
const parex::CallOptions deadline{.timeout = 150ms};
}  // namespace
}  // namespace stop_matrix

BOOST_AUTO_TEST_SUITE(stop_matrix)

BOOST_AUTO_TEST_CASE(queued_in_the_pool) {
  // Deadline: waiting in the pool is not charged. Interrupt: a plain cancel.
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  auto slow = pool.submit(nap_ms, 400);
  auto timed = pool.submit(deadline, nap_ms, 1);
  auto cancelled = pool.submit(nap_ms, 2);
  BOOST_TEST(cancelled.interrupt());
  BOOST_TEST(cancelled.cancelled());
  BOOST_TEST(slow.result(test::deadlock_timeout) == 400);
  BOOST_TEST(timed.result(test::deadlock_timeout) == 1);
}

BOOST_AUTO_TEST_CASE(decoding_the_arguments) {
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  const int pid = pool.submit(pid_now, 0).result(test::deadlock_timeout);
  auto e = test::expect_error<parex::TimeoutError>(
      [&] { pool.submit(deadline, take_sticky, Sticky{-1}).result(test::deadlock_timeout); });
  BOOST_TEST(std::string(e.what()).find("stop_matrix::take_sticky") != std::string::npos);
  BOOST_TEST(test::eventually([&] { return gone(pid); }));
  const int pid2 = pool.submit(pid_now, 0).result(test::deadlock_timeout);
  auto f = pool.submit(take_sticky, Sticky{-1});
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(f.interrupt());
  test::expect_error<parex::CancelledError>([&] { f.result(test::deadlock_timeout); });
  BOOST_TEST(test::eventually([&] { return gone(pid2); }));
  BOOST_TEST(pool.submit(take_sticky, Sticky{5}).result(test::deadlock_timeout) == 5);
}

BOOST_AUTO_TEST_CASE(running) {
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  auto timed = pool.submit(deadline, stuck, 0);
  auto other = pool.submit(nap_ms, 300);  // on the other worker: untouched
  test::expect_error<parex::TimeoutError>([&] { timed.result(test::deadlock_timeout); });
  auto f = pool.submit(stuck, 0);
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(f.interrupt());
  test::expect_error<parex::CancelledError>([&] { f.result(test::deadlock_timeout); });
  BOOST_TEST(other.result(test::deadlock_timeout) == 300);
}

BOOST_AUTO_TEST_CASE(encoding_the_result) {
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  test::expect_error<parex::TimeoutError>(
      [&] { pool.submit(deadline, give_sticky, -2).result(test::deadlock_timeout); });
  auto f = pool.submit(give_sticky, -2);
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(f.interrupt());
  test::expect_error<parex::CancelledError>([&] { f.result(test::deadlock_timeout); });
  BOOST_TEST(pool.submit(give_sticky, 7).result(test::deadlock_timeout).v == 7);
}

BOOST_AUTO_TEST_CASE(after_the_result_is_out) {
  // A finished call is not failed by a later stop: its deadline is over, and an interrupt
  // of it says no.
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  auto done = pool.submit(deadline, nap_ms, 10);
  BOOST_TEST(done.result(test::deadlock_timeout) == 10);
  BOOST_TEST(!done.interrupt());
  std::this_thread::sleep_for(200ms);  // past its deadline: nothing happens to it or the worker
  BOOST_TEST(done.result() == 10);
  BOOST_TEST(pool.stats().restarts == 0u);
}

BOOST_AUTO_TEST_CASE(a_map_chunk_with_a_deadline_and_an_interrupted_neighbour) {
  // 3 chunks of 4 on one worker: item 5 hangs (deadline); the rest of every chunk is right.
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  std::vector<int> ms{1, 1, 1, 1, -1, 1, 1, 1, 1, 1, 1, 1};
  std::size_t ok = 0, timeouts = 0;
  std::vector<Sticky> args;
  for (int m : ms) args.push_back({m});
  auto results = pool.map(take_sticky, args, {.chunksize = 4, .call_timeout = 150ms});
  std::size_t i = 0;
  for (auto it = results.begin(); it != results.end(); ++it, ++i) {
    try {
      BOOST_TEST(*it == ms[i]);
      ++ok;
    } catch (const parex::TimeoutError&) {
      BOOST_TEST(i == 4u);
      ++timeouts;
    }
  }
  BOOST_TEST(ok == 11u);
  BOOST_TEST(timeouts == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
