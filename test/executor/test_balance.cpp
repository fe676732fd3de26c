// Scheduling on the remote backends (remote/batching.hpp, process_pool/rebalance.cpp):
// tiny calls travel in batches, yet no call waits behind a slow one while a worker idles,
// whatever the executor ran before. Each case first warms the executor with tiny calls of
// the very function it then runs slowly, so that its estimate starts out wrong: the worst
// case for a scheduler that batches. Time bounds are generous (a noisy 2-core machine);
// what they catch is a call queued behind a 600 ms one (2-4x the ideal, issue 19).
// Runs on the process pool here, and on MpiExecutor under mpirun (parex_mpi_tests).
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <ranges>
#include <set>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

using namespace test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// Sleeps ms milliseconds, then returns this process's pid.
int sleep_then_pid(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return static_cast<int>(::getpid());
}
PAREX_REGISTER(sleep_then_pid);

namespace {
#ifdef PAREX_TEST_MPI
using RemoteBackends = std::tuple<parex::MpiExecutor>;
#else
using RemoteBackends = std::tuple<parex::ProcessPoolExecutor>;
#endif

// Two workers: the MPI suites run under mpirun -np 3.
constexpr std::size_t workers = 2;

template <class Pool>
Pool make_pool() {
  return Pool{{.max_workers = workers}};
}

// Thousands of tiny calls of fn (its estimate becomes tiny) and of square, by map and by submit.
template <class Fn>
void warm_up(parex::Executor& ex, Fn fn) {
  std::vector<int> zeros(3000, 0);
  long sum = 0;
  for (int y : ex.map(square, std::views::iota(0, 20000))) sum += y;
  BOOST_REQUIRE(sum > 0);
  std::vector<parex::Future<int>> fs;
  for (int z : zeros) fs.push_back(ex.submit(fn, z));
  for (auto& f : fs) f.result(deadlock_timeout);
  for (int y : ex.map(fn, zeros, {.chunksize = 1})) BOOST_REQUIRE(y >= 0);
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// 90 % of short items and 10 % of long ones (every tenth, from the fourth on), in ms.
std::vector<int> heavy_tailed(std::size_t n, int short_ms, int long_ms) {
  std::vector<int> v(n, short_ms);
  for (std::size_t i = 3; i < n; i += 10) v[i] = long_ms;
  return v;
}
double lower_bound_s(const std::vector<int>& ms) {
  const double sum = std::accumulate(ms.begin(), ms.end(), 0.0) / 1000;
  return std::max(sum / workers, *std::max_element(ms.begin(), ms.end()) / 1000.0);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(balance)

BOOST_AUTO_TEST_CASE_TEMPLATE(short_calls_beside_a_slow_one_do_not_wait_for_it, Pool, RemoteBackends) {
  auto pool = make_pool<Pool>();
  warm_up(pool, sleep_then_echo);
  const auto t0 = Clock::now();
  auto slow = pool.submit(sleep_then_echo, 600);
  std::vector<parex::Future<int>> quick;
  for (int i = 0; i < 3; ++i) quick.push_back(pool.submit(sleep_then_echo, 10));
  for (auto& f : quick) BOOST_TEST(f.result(deadlock_timeout) == 10);
  const double quick_s = seconds_since(t0);
  BOOST_TEST(!slow.done(), "the 600 ms call ended before the 10 ms ones: " << quick_s << " s");
  BOOST_TEST(quick_s < 0.3, "three 10 ms calls took " << quick_s << " s beside a 600 ms one");
  BOOST_TEST(slow.result(deadlock_timeout) == 600);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(calls_held_behind_a_stalled_call_are_taken_back, Pool, RemoteBackends) {
  auto pool = make_pool<Pool>();
  warm_up(pool, sleep_then_pid);
  auto slow = pool.submit(sleep_then_pid, 500);
  std::vector<parex::Future<int>> quick;
  for (int i = 0; i < 4; ++i) quick.push_back(pool.submit(sleep_then_pid, 5));
  std::set<int> pids;
  for (auto& f : quick) pids.insert(f.result(deadlock_timeout));
  BOOST_TEST(!slow.done(), "the short calls waited for the slow one");
  const int slow_pid = slow.result(deadlock_timeout);
  BOOST_TEST(!pids.contains(slow_pid), "a short call ran after the slow one, on its worker");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(an_unordered_map_yields_short_items_first, Pool, RemoteBackends) {
  auto pool = make_pool<Pool>();
  warm_up(pool, sleep_then_echo);
  std::vector<int> order;
  for (int y : pool.map(sleep_then_echo, std::vector{600, 10, 10, 10},
                        {.chunksize = 1, .timeout = deadlock_timeout, .ordered = false}))
    order.push_back(y);
  BOOST_TEST((order == std::vector{10, 10, 10, 600}));
}

// The makespan of a heavy-tailed map against max(sum / workers, longest item), in every
// way a user maps: ordered, unordered, one submit per item, and default options.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_heavy_tailed_map_ends_near_its_lower_bound, Pool, RemoteBackends) {
  auto pool = make_pool<Pool>();
  warm_up(pool, sleep_then_echo);
  const std::vector<int> ms = heavy_tailed(120, 2, 40);
  const double bound = lower_bound_s(ms);
  const long expect = std::accumulate(ms.begin(), ms.end(), 0L);
  auto check = [&](const char* how, auto&& run) {
    const auto t0 = Clock::now();
    BOOST_TEST(run() == expect, how);
    const double ratio = seconds_since(t0) / bound;
    BOOST_TEST_MESSAGE(how << ": " << ratio << "x the lower bound");
    BOOST_TEST(ratio < 1.6, how << ": " << ratio << "x the lower bound (" << bound << " s)");
  };
  check("ordered, chunksize 1", [&] {
    long s = 0;
    for (int y : pool.map(sleep_then_echo, ms, {.chunksize = 1})) s += y;
    return s;
  });
  check("unordered", [&] {
    long s = 0;
    for (int y : pool.map(sleep_then_echo, ms, {.chunksize = 1, .ordered = false})) s += y;
    return s;
  });
  check("submit each", [&] {
    std::vector<parex::Future<int>> fs;
    for (int m : ms) fs.push_back(pool.submit(sleep_then_echo, m));
    long s = 0;
    for (auto& f : fs) s += f.result(deadlock_timeout);
    return s;
  });
  check("default options", [&] {
    long s = 0;
    for (int y : pool.map(sleep_then_echo, ms)) s += y;
    return s;
  });
}

// A map without a chunksize batches tiny items (fewer calls than items) and keeps every
// item in its place.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_map_without_chunksize_batches_tiny_items, Pool, RemoteBackends) {
  auto pool = make_pool<Pool>();
  const int n = 40000;  // its squares fit in an int
#ifndef PAREX_TEST_MPI
  const std::size_t calls_before = pool.stats().done;
#endif
  long i = 0;
  bool in_order = true;
  for (int y : pool.map(square, std::views::iota(0, n))) {
    in_order &= y == static_cast<int>(i * i);
    ++i;
  }
  BOOST_TEST(i == n);
  BOOST_TEST(in_order);
#ifndef PAREX_TEST_MPI
  const std::size_t calls = pool.stats().done - calls_before;
  // Chunks hold ~100 us of estimated work: thousands of items on an optimised build, a
  // handful under a sanitizer (items cost 10-50x more); one item each without batching.
  BOOST_TEST(calls < static_cast<std::size_t>(n / 2), calls << " calls for " << n << " tiny items");
#endif
}

// The estimate follows the function: a function that turns slow is spread again.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_function_that_turns_slow_is_spread_over_the_workers, Pool, RemoteBackends) {
  auto pool = make_pool<Pool>();
  warm_up(pool, sleep_then_pid);
  std::vector<int> ms(12, 50);
  std::set<int> pids;
  const auto t0 = Clock::now();
  for (int pid : pool.map(sleep_then_pid, ms)) pids.insert(pid);
  const double s = seconds_since(t0);
  BOOST_TEST(pids.size() == workers);
  BOOST_TEST(s < 1.6 * 12 * 0.05 / workers, "12 x 50 ms on " << workers << " workers took " << s << " s");
}

BOOST_AUTO_TEST_SUITE_END()
