// remote/batching.hpp - how much work a remote executor hands one worker at once, for
// every backend that batches calls (the process pool, MPI ranks): an estimate of the
// time per item, measured by the worker and averaged, against a target time in flight.
// Plain values; each estimate is owned by the one thread that dispatches to its worker.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace parex::detail {

// Work a worker may hold beyond what it is running, in estimated time. Larger: fewer,
// bigger frames; smaller: calls stay cancellable and balance better across workers.
inline constexpr double target_inflight_ns = 2e6;
// Until a worker has measured itself, assume its calls are slow: it gets one call, not a
// batch, so that slow calls spread over the workers as they come up (a batch would run
// them one after the other in the first worker ready); for tiny calls this costs one
// round trip, after which the estimate drops to the truth.
inline constexpr double initial_ns_per_item = target_inflight_ns;
// The per-item estimate never drops below this: a frame's busy time is counted in whole
// microseconds, so a batch of tiny calls can report 0; 20 ns is about the cheapest call.
inline constexpr double min_ns_per_item = 20.0;
// Weight of the newest frame in the running estimate: higher follows a change of call
// cost sooner, lower rides out one odd frame (a page fault, a preempted worker).
inline constexpr double estimate_weight = 0.5;
// A calls frame carries at most this many items and (beyond its first call) this many bytes.
inline constexpr std::uint32_t max_frame_items = 1u << 16;
inline constexpr std::size_t max_frame_bytes_out = std::size_t{16} << 20;  // a single bigger call still goes, alone

/// A worker's measured cost per item, and whether it should get more work now.
struct CostEstimate {
  double ns_per_item = initial_ns_per_item;

  /// Room for more: nothing outstanding, or what is outstanding is estimated to take less
  /// than target_inflight_ns.
  bool has_room(std::uint64_t items_outstanding) const noexcept {
    return items_outstanding == 0 || static_cast<double>(items_outstanding) * ns_per_item < target_inflight_ns;
  }
  /// A results frame of `items` on which the worker spent busy_us microseconds.
  void sample(std::uint32_t items, std::uint32_t busy_us) noexcept {
    if (!items) return;
    const double ns = std::max(min_ns_per_item, busy_us * 1000.0 / items);
    ns_per_item = (1 - estimate_weight) * ns_per_item + estimate_weight * ns;
  }
};

}  // namespace parex::detail
