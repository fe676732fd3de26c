// The fault campaign, part 2: life and death of pools. Shutdowns with mixed flags racing
// many submitters (both backends), a parent SIGKILLed under its pool, SIGINT storms at
// the workers and at a whole process group, and pools created and destroyed by the
// hundred. Same rules as part 1 (test_faults.cpp): exact outcomes, bounded waits, rounds
// from the environment (fault_support.hpp).
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "faults/fault_functions.hpp"
#include "faults/fault_support.hpp"

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/io.hpp>
#include <boost/process/pipe.hpp>

#include <atomic>
#include <csignal>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using faults::Clock;
using parex::ProcessPoolExecutor;
using parex::ProcessPoolOptions;
using test::deadlock_timeout;
namespace bp = boost::process;

namespace {

// ---- 4. shutdown races -----------------------------------------------------------------

// What one submitter got: its futures, what each must yield, and when each submit
// returned (a tick of the round's clock), published one by one for the shutdown threads.
struct Slots {
  explicit Slots(std::size_t cap) : futures(cap), expect(cap), tick(cap) {}
  std::vector<parex::Future<int>> futures;
  std::vector<int> expect;
  std::vector<std::uint64_t> tick;
  std::atomic<std::size_t> published{0};
};

struct RaceTally {
  std::size_t accepted = 0, ran = 0, cancelled = 0, refused = 0;
  std::size_t not_done = 0, wrong = 0, early = 0, errors = 0;
  std::size_t early_then_cancelled = 0, early_then_ran = 0;  // what became of the early ones
  std::string first_problem;
  void problem(const std::string& what) {
    ++errors;
    if (first_problem.empty()) first_problem = what;
  }
};

// One round: n_submitters threads submit as fast as they can (cap calls each) while two
// threads call shutdown - one with cancel_futures=false, one with true, wait drawn at
// random - once every submitter is under way. A shutdown(wait=true) must return only when
// every call whose submit had returned before it was called is done; once the pool is
// destroyed every accepted future must be done: ran (right value) or cancelled.
template <class Pool, class Submit>
void shutdown_race(std::unique_ptr<Pool> pool, std::mt19937& rng, std::size_t n_submitters, std::size_t cap,
                   Submit submit, RaceTally& t) {
  std::vector<std::unique_ptr<Slots>> slots;
  for (std::size_t s = 0; s < n_submitters; ++s) slots.push_back(std::make_unique<Slots>(cap));
  std::atomic<std::uint64_t> clock{0};
  std::atomic<std::size_t> started{0};
  std::mutex m;  // guards t and early_futures from the threads
  std::vector<parex::Future<int>> early_futures;  // pending when a shutdown(wait=true) returned
  std::vector<std::thread> threads;
  for (std::size_t s = 0; s < n_submitters; ++s)
    threads.emplace_back([&, s] {
      Slots& my = *slots[s];
      for (std::size_t k = 0; k < cap; ++k) {
        const int v = static_cast<int>(s * cap + k);
        try {
          auto [f, expect] = submit(*pool, v);
          my.futures[k] = std::move(f);
          my.expect[k] = expect;
          my.tick[k] = clock.fetch_add(1);
          my.published.store(k + 1, std::memory_order_release);
        } catch (const parex::InvalidStateError&) {
          std::lock_guard lock(m);
          ++t.refused;
          break;
        } catch (const std::exception& e) {
          std::lock_guard lock(m);
          t.problem(std::string("submit threw: ") + e.what());
          break;
        }
        if (k == 0) ++started;
      }
      if (my.published.load() == 0) ++started;  // never got one in: do not hold the shutdowns back
    });
  for (int which = 0; which < 2; ++which) {
    const bool cancel = which == 1;
    const bool wait = rng() % 2 == 0;
    const auto delay = std::chrono::microseconds(rng() % 300);
    threads.emplace_back([&, cancel, wait, delay] {
      faults::within(deadlock_timeout, [&] { return started.load() >= n_submitters; });
      std::this_thread::sleep_for(delay);
      const std::uint64_t mark = clock.fetch_add(1);
      try {
        pool->shutdown(wait, cancel);
      } catch (const std::exception& e) {
        std::lock_guard lock(m);
        t.problem(std::string("shutdown threw: ") + e.what());
      }
      if (!wait) return;
      std::vector<parex::Future<int>> early;
      for (auto& sl : slots) {
        const std::size_t n = sl->published.load(std::memory_order_acquire);
        for (std::size_t k = 0; k < n; ++k)
          if (sl->tick[k] < mark && !sl->futures[k].done()) early.push_back(sl->futures[k]);
      }
      std::lock_guard lock(m);
      t.early += early.size();
      early_futures.insert(early_futures.end(), early.begin(), early.end());
    });
  }
  for (auto& th : threads) th.join();
  faults::destroy(pool, "after a shutdown race");
  for (auto& f : early_futures) {
    if (!f.done()) continue;
    if (f.cancelled()) ++t.early_then_cancelled;
    else ++t.early_then_ran;
  }
  for (auto& sl : slots)
    for (std::size_t k = 0; k < sl->published.load(); ++k) {
      const auto& f = sl->futures[k];
      ++t.accepted;
      if (!f.done()) {
        ++t.not_done;
      } else if (f.cancelled()) {
        ++t.cancelled;
      } else {
        try {
          if (f.result(0s) == sl->expect[k]) ++t.ran;
          else ++t.wrong;
        } catch (const std::exception& e) {
          ++t.wrong;
          if (t.first_problem.empty()) t.first_problem = std::string("a call failed: ") + e.what();
        }
      }
    }
}

void check_race(const RaceTally& t, const std::string& where) {
  BOOST_TEST(t.not_done == 0u, where << t.not_done << " of " << t.accepted << " accepted futures still pending");
  BOOST_TEST(t.wrong == 0u, where << t.wrong << " wrong results: " << t.first_problem);
  BOOST_TEST(t.early == 0u, where << "shutdown(wait=true) returned with " << t.early
                                  << " calls pending whose submit had returned before it was called (later "
                                  << t.early_then_cancelled << " of them were cancelled, " << t.early_then_ran
                                  << " ran)");
  BOOST_TEST(t.errors == 0u, where << t.first_problem);
  BOOST_TEST(t.ran + t.cancelled == t.accepted, where << t.ran << " ran + " << t.cancelled << " cancelled");
}

// ---- helpers for the host programs -------------------------------------------------------

// Waits (bounded) for a host program to end; kills it if it does not.
bool wait_host(bp::child& host, Clock::duration limit) {
  if (faults::within(limit, [&] { return !host.running(); })) return true;
  host.terminate();
  return false;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(faults, faults::QuietLibrary)

// 4a. ThreadPoolExecutor: 8-16 submitters, two mixed shutdowns, many rounds.
BOOST_AUTO_TEST_CASE(thread_pool_shutdowns_racing_submitters_leave_no_future_pending) {
  const auto seed = faults::seed();
  BOOST_TEST_MESSAGE("seed " << seed);
  std::mt19937 rng(seed);
  const std::size_t rounds = faults::rounds(100);
  RaceTally all;
  for (std::size_t round = 0; round < rounds; ++round) {
    RaceTally t;
    const std::size_t submitters = 8 + rng() % 9;
    auto pool = std::make_unique<parex::ThreadPoolExecutor>(parex::ThreadPoolOptions{.max_workers = 2 + round % 3});
    shutdown_race(std::move(pool), rng, submitters, 4096,
                  [](parex::ThreadPoolExecutor& p, int v) {
                    auto f = p.submit([v] {
                      if (v % 97 == 0) std::this_thread::sleep_for(50us);  // let a backlog build up
                      return v;
                    });
                    return std::pair{std::move(f), v};
                  },
                  t);
    check_race(t, "round " + std::to_string(round) + " (" + std::to_string(submitters) + " submitters): ");
    if (t.not_done || t.wrong || t.early || t.errors) break;  // one failing round says it
    all.accepted += t.accepted;
    all.cancelled += t.cancelled;
    all.refused += t.refused;
  }
  BOOST_TEST_MESSAGE(rounds << " rounds: " << all.accepted << " accepted, " << all.cancelled << " cancelled, "
                            << all.refused << " refused");
}

// 4b. ProcessPoolExecutor: the same with fewer rounds (each starts two workers).
BOOST_AUTO_TEST_CASE(process_pool_shutdowns_racing_submitters_leave_no_future_pending) {
  const auto seed = faults::seed();
  BOOST_TEST_MESSAGE("seed " << seed);
  std::mt19937 rng(seed);
  const std::size_t rounds = faults::rounds(5);
  for (std::size_t round = 0; round < rounds; ++round) {
    RaceTally t;
    auto pool = std::make_unique<ProcessPoolExecutor>(ProcessPoolOptions{.max_workers = 2});
    if (round % 2) pool->submit(square, 1).result(deadlock_timeout);  // half the rounds race workers coming up
    shutdown_race(std::move(pool), rng, 8, 1024,
                  [](ProcessPoolExecutor& p, int v) {
                    return std::pair{p.submit(square, v), v * v};
                  },
                  t);
    check_race(t, "round " + std::to_string(round) + ": ");
    const auto left = faults::leftovers();
    BOOST_TEST(left.empty(), "round " << round << ": processes left: " << faults::pid_list(left));
    if (t.not_done || t.wrong || t.early || t.errors) break;
  }
}

// 5. A program with a pool (test/programs/pool_host.cpp) is SIGKILLed: every one of its
// workers must be gone within 5 s.
BOOST_AUTO_TEST_CASE(workers_die_within_seconds_of_a_killed_parent) {
  const std::size_t rounds = faults::rounds(2);
  for (std::size_t round = 0; round < rounds; ++round) {
    bp::ipstream out;
    bp::child host(PAREX_POOL_HOST, bp::std_out > out);
    std::string line;
    BOOST_REQUIRE(std::getline(out, line));
    std::istringstream in(line);
    std::vector<int> workers;
    for (int pid; in >> pid;) workers.push_back(pid);
    BOOST_REQUIRE(workers.size() == 3u);
    ::kill(host.id(), SIGKILL);
    host.wait();
    const auto t0 = Clock::now();
    const bool all_gone = faults::within(5s, [&] {
      return std::all_of(workers.begin(), workers.end(), [](int pid) { return faults::gone(pid); });
    });
    std::vector<int> alive;
    for (int pid : workers)
      if (!faults::gone(pid)) alive.push_back(pid);
    BOOST_TEST(all_gone, "round " << round << ": workers alive " << faults::seconds_since(t0)
                                  << " s after their parent was killed: " << faults::pid_list(alive));
    for (int pid : alive) ::kill(pid, SIGKILL);  // do not let a failure leak them
    const auto left = faults::leftovers();
    BOOST_TEST(left.empty(), "processes left: " << faults::pid_list(left));
  }
}

// 6a. A SIGINT storm at every worker (every 1-3 ms) during maps: workers ignore SIGINT,
// so every item comes back right and no worker is replaced.
BOOST_AUTO_TEST_CASE(sigint_storm_at_the_workers_during_a_map) {
  const std::size_t rounds = faults::rounds(2);
  for (std::size_t round = 0; round < rounds; ++round) {
    auto pool = std::make_unique<ProcessPoolExecutor>(ProcessPoolOptions{.max_workers = 2});
    // Wait until both workers have answered: the storm must hit workers past parex::init.
    std::set<int> up;
    for (int tries = 0; tries < 50 && up.size() < 2; ++tries) {
      std::vector<parex::Future<std::pair<int, int>>> fs;
      for (int i = 0; i < 8; ++i) fs.push_back(pool->submit(fault_item, 10 * i));
      for (auto& f : fs) up.insert(f.result(deadlock_timeout).second);
    }
    BOOST_REQUIRE(up.size() == 2u);
    const auto before = faults::children();
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> sent{0};
    std::thread storm([&] {
      std::mt19937 r(static_cast<std::uint32_t>(round));
      while (!stop.load()) {
        for (int pid : faults::children())
          if (::kill(pid, SIGINT) == 0) ++sent;
        std::this_thread::sleep_for(std::chrono::microseconds(1000 + r() % 2000));
      }
    });
    std::vector<int> in(300);
    std::iota(in.begin(), in.end(), 0);
    std::size_t yielded = 0, ok = 0;
    std::string problem;
    try {
      auto results = pool->map(fault_item, in, {.chunksize = round % 2 ? 8u : 1u, .timeout = deadlock_timeout});
      for (auto it = results.begin(); it != results.end(); ++it, ++yielded) {
        try {
          if ((*it).first == 3 * in[yielded] + 1) ++ok;
        } catch (const std::exception& e) {
          if (problem.empty()) problem = "item " + std::to_string(yielded) + ": " + e.what();
        }
      }
    } catch (const std::exception& e) {
      problem = std::string("the map: ") + e.what();
    }
    stop = true;
    storm.join();
    const auto after = faults::children();
    faults::destroy(pool, "after a SIGINT storm");
    const std::string where = "round " + std::to_string(round) + " (" + std::to_string(sent.load()) + " SIGINTs): ";
    BOOST_TEST(ok == in.size(), where << ok << " of " << in.size() << " right, " << yielded << " yielded; " << problem);
    BOOST_TEST(before == after, where << "workers before " << faults::pid_list(before) << ", after "
                                      << faults::pid_list(after));
    BOOST_TEST(sent.load() > 0u);
    const auto left = faults::leftovers();
    BOOST_TEST(left.empty(), where << "processes left: " << faults::pid_list(left));
  }
}

// 6b. SIGINT to a whole process group during a map: test/programs/sigint_host.cpp puts
// itself in a group of its own (the storm reaches nobody else), installs a counting
// SIGINT handler (with and without SA_RESTART: the parent's system calls see EINTR) and
// storms its group - itself and its workers - every 1-5 ms; "warm": once its workers are
// up; "cold": from before the pool exists, so that workers start under fire. Every item
// must come back right, and no worker may die (the host watches its children).
BOOST_AUTO_TEST_CASE(sigint_storm_at_the_process_group_during_a_map) {
  const std::size_t rounds = faults::rounds(1);
  bool failed = false;
  for (std::size_t round = 0; round < rounds && !failed; ++round)
    for (const char* mode : {"warm", "cold"})
      for (const char* restart : {"restart", "norestart"}) {
        bp::ipstream out;
        bp::child host(PAREX_SIGINT_HOST, bp::args({mode, restart}), bp::std_out > out);
        const bool ended = wait_host(host, deadlock_timeout + 10s);
        std::string line, all;
        while (std::getline(out, line)) all += line + "\n";
        const std::string where = std::string(mode) + ", " + restart + ": ";
        BOOST_TEST(ended, where << "the host hung: " << all);
        if (ended) BOOST_TEST(host.exit_code() == 0, where << "exit code " << host.exit_code() << ": " << all);
        failed = failed || !ended || host.exit_code() != 0;  // one failing round says it
        if (round == 0) BOOST_TEST_MESSAGE(where << all);
        const auto left = faults::leftovers();
        BOOST_TEST(left.empty(), where << "processes left: " << faults::pid_list(left));
      }
}

// 7. Pools created and destroyed by the hundred (PAREX_FAULT_POOLS; the soak makes
// 2000), each ended a different way: after a call, shut down without waiting, with a
// worker SIGKILLed mid-map, with queued calls cancelled, before its workers are up. After
// each one no child is left (no worker, no zombie); at the end no descriptor is left.
BOOST_AUTO_TEST_CASE(many_pools_leak_no_fds_and_leave_no_children) {
  {
    auto warm = std::make_unique<ProcessPoolExecutor>(ProcessPoolOptions{.max_workers = 2});
    warm->submit(square, 1).result(deadlock_timeout);
    faults::destroy(warm, "warm-up");
  }
  const std::size_t fds = faults::open_fds();
  const std::size_t pools = faults::env_count("PAREX_FAULT_POOLS", 50);
  std::size_t leaky = 0;
  std::string first_leak, first_problem;
  std::vector<int> in(60);
  std::iota(in.begin(), in.end(), 0);
  for (std::size_t i = 0; i < pools; ++i) {
    auto pool = std::make_unique<ProcessPoolExecutor>(ProcessPoolOptions{.max_workers = 1 + i % 2});
    try {
      switch (i % 5) {
        case 0:
          if (pool->submit(square, int(i % 1000)).result(deadlock_timeout) != int(i % 1000) * int(i % 1000))
            throw std::runtime_error("wrong result");
          break;
        case 1:
          pool->submit(square, 3);
          pool->shutdown(false);
          break;
        case 2: {
          std::size_t crashed = 0, n = 0;
          auto results = pool->map(fault_item, in, {.timeout = deadlock_timeout});
          for (auto it = results.begin(); it != results.end(); ++it, ++n) {
            try {
              const auto [value, pid] = *it;
              if (n == 0) ::kill(pid, SIGKILL);
              if (value != 3 * in[n] + 1) throw std::runtime_error("misplaced item " + std::to_string(n));
            } catch (const parex::WorkerCrashed&) {
              ++crashed;
            }
          }
          if (n != in.size() || crashed > 1) throw std::runtime_error("map under a kill: " + std::to_string(n) +
                                                                      " items, " + std::to_string(crashed) + " crashed");
          break;
        }
        case 3:
          for (int k = 0; k < 20; ++k) pool->submit(sleep_then_echo, 1);
          pool->shutdown(true, true);
          break;
        case 4:
          break;  // destroyed before its workers are up
      }
    } catch (const std::exception& e) {
      if (first_problem.empty()) first_problem = "pool " + std::to_string(i) + ": " + e.what();
    }
    faults::destroy(pool, "pool " + std::to_string(i) + " of many");
    if (const auto left = faults::leftovers(); !left.empty()) {
      if (!leaky++) first_leak = "pool " + std::to_string(i) + " left " + faults::pid_list(left);
    }
  }
  BOOST_TEST(first_problem.empty(), first_problem);
  BOOST_TEST(leaky == 0u, leaky << " of " << pools << " pools left children behind; first: " << first_leak);
  BOOST_TEST(faults::open_fds() == fds, "fds before " << fds << ", after " << faults::open_fds());
}

BOOST_AUTO_TEST_SUITE_END()
