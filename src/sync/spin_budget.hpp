// sync/spin_budget.hpp - how long a waiter spins before it yields, learnt from its last waits.
//
// A waiter spins (cpu_relax) in the hope that the thread it waits for answers within a
// microsecond or two, which saves a sched_yield or a futex sleep on both sides. That only
// pays when the other thread runs on another core. When both share one core (a 2-core
// machine whose other core is busy: the scheduler keeps two threads that hand work back
// and forth together), every spin round is time taken from the very thread it waits for.
// On the 2-vCPU EPYC VM (one cpu_relax ~49 ns), a thread-pool round trip with the caller
// and the worker on one core took ~6.7 us, ~4.7 us of it in their two spins; run with
// `taskset -c 0` to reproduce it (tools/bench_thread_pool's round trip and the notes in
// the commit log).
//
// So each waiter keeps a budget: a wait that its spin ended doubles it (up to max_spins);
// a spin that ran out halves it (down to min_spins). Every probe_every-th wait at the
// floor spins the full max_spins, so that a waiter whose partner moved to another core
// finds out. Not thread-safe: one budget per waiting thread (thread_local, or a field
// that only one thread touches).
#pragma once

#include <algorithm>

namespace parex::detail {

class SpinBudget {
 public:
  // min_spins: the floor, a few rounds that still catch a partner already finishing.
  // probe_every: trades the cost of a futile full spin on a shared core (max_spins
  // rounds every probe_every waits) against how soon a separated pair speeds up again.
  static constexpr int min_spins = 4;
  static constexpr int probe_every = 8;

  explicit constexpr SpinBudget(int max_spins) noexcept : max_(max_spins), spins_(max_spins) {}

  /// How many rounds to spin in this wait.
  int budget() noexcept {
    if (spins_ > min_spins) return spins_;
    if (++since_probe_ < probe_every) return spins_;
    since_probe_ = 0;
    return max_;
  }
  /// The spin caught what it waited for after `rounds` rounds.
  void caught(int rounds) noexcept { spins_ = std::min(max_, std::max(spins_ * 2, 2 * (rounds + 1))); }
  /// The spin ran out.
  void ran_out() noexcept { spins_ = std::max(min_spins, spins_ / 2); }

 private:
  int max_;
  int spins_;
  int since_probe_ = 0;
};

}  // namespace parex::detail
