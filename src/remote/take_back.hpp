// remote/take_back.hpp - taking back calls a worker holds but has not started, so that an
// idle worker can run them (issue 19). One protocol for both remote backends: the process
// pool runs it on two words of the worker's shared page (process/shared_page.hpp), an MPI
// rank on two atomics of its own, set by its heartbeat thread on rank 0's request.
//
//   worker, before each call of n items:   CAS claim: k -> k + n      (k: items claimed)
//   client, to take back [c, to):          revoke_to = to; CAS claim: c -> c | claim_fence
//
// Exactly one of the two swaps on `claim` wins, so both sides agree on what was taken
// back: a worker that finds the fence skips the items [c, revoke_to) unrun (their calls
// are whole: a claim moves by calls), then stores c, lifting the fence. Both then number
// the next item sent c: the calls taken back are as if never sent, and outcome k still
// belongs to the k-th item sent. At most one fence is up at a time (the client raises one
// only on a word without it). The client must take back only what it had finished
// sending (a call's arguments must stay alive while the worker may still read them).
#pragma once

#include <parex/errors.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace parex::detail {

// When to take back: only while nothing is pending and a worker idles, from a worker that
// holds calls behind the one it runs and has shown no progress for stall_after (the pool:
// its claim word did not move; MPI: no results came). Longer: fewer needless take-backs
// from a worker about to move on; shorter: less waiting behind a call estimated wrong. A
// few round trips (tools/bench_process_pool (c)).
inline constexpr auto stall_after = std::chrono::milliseconds(1);

inline constexpr std::uint64_t claim_fence = std::uint64_t{1} << 63;

/// The client's move: takes back the items [c, to) if the worker has claimed exactly c
/// items (none of them). False if it has moved on (nothing is taken back).
inline bool raise_fence(std::atomic<std::uint64_t>& claim, std::atomic<std::uint64_t>& revoke_to, std::uint64_t c,
                        std::uint64_t to) noexcept {
  if (c >= to) return false;
  revoke_to.store(to, std::memory_order_relaxed);  // published by the swap (release)
  return claim.compare_exchange_strong(c, c | claim_fence, std::memory_order_acq_rel);
}

/// The worker's side, one per worker (its loop's thread only). The words are passed to
/// each claim: a pipe worker's shared page moves when its results buffer is remapped.
class ClaimGate {
 public:
  /// Before a call of `items`: true to run it, false if it was taken back (skip it).
  /// @throws ProtocolError if the words hold what no client wrote.
  bool claim(std::atomic<std::uint64_t>& claim, const std::atomic<std::uint64_t>& revoke_to, std::uint64_t items) {
    if (skip_left_) {  // inside a range taken back
      if (items > skip_left_) throw ProtocolError("a call straddles the end of a range taken back");
      if ((skip_left_ -= items) == 0) claim.store(claimed_, std::memory_order_release);  // the fence lifted
      return false;
    }
    std::uint64_t seen = claimed_;
    if (claim.compare_exchange_strong(seen, claimed_ + items, std::memory_order_acq_rel)) {
      claimed_ += items;
      return true;
    }
    if (seen != (claimed_ | claim_fence)) throw ProtocolError("the claim word holds what no client wrote");
    const std::uint64_t to = revoke_to.load(std::memory_order_acquire);
    if (to < claimed_ + items) throw ProtocolError("a range taken back ends inside a call");
    skip_left_ = to - claimed_;
    return this->claim(claim, revoke_to, items);
  }

 private:
  std::uint64_t claimed_ = 0;    // items of the calls claimed (== the word without a fence)
  std::uint64_t skip_left_ = 0;  // items of a range taken back, still to skip
};

}  // namespace parex::detail
