// remote/batching.hpp - the scheduling policy of every backend whose calls run in other
// processes (the process pool, MPI ranks), in one place: what a call is estimated to cost,
// how much work a worker may hold beyond the call it runs, and how many items an adaptive
// map puts in one chunk. Taking back work a worker holds but has not started is the
// process pool's (process_pool/rebalance.cpp): it needs the worker's shared page.
//
// Why these rules (issue 19; tools/bench_balance measures them):
//  - Estimates follow the function, not the worker: the cost of a worker's last calls says
//    nothing about the next call of another function. A function not measured yet is taken
//    as slow (one call per worker), so that slow calls spread over the workers as they
//    come; for tiny calls this costs one round trip, after which the estimate is the truth.
//  - Tiny calls travel in batches (up to target_inflight_ns of estimated work per worker);
//    a call estimated at hold_below_ns or more travels alone: a worker holds nothing behind
//    it, so no call waits behind a slow one while another worker could start it. The price
//    is one round trip between slow calls, a small share of a call that slow.
//  - A map without a chunksize puts adaptive_chunk_ns of estimated work in each chunk:
//    one future and one record per chunk instead of per item for tiny items, one item per
//    chunk for anything slower (a chunk runs in one worker, in order). The map itself
//    (detail/executor/map_range.hpp) starts at one item and doubles, and never puts more
//    than a sized input's len / (4 x workers) in one chunk (Python's Pool.map rule): an
//    estimate from other calls of the function cannot lump a map's slow items together.
// Thread-safety: a CostTable is written by the one thread that dispatches (the pool's
// reactor, the MPI progress thread) and read by any (a map choosing its chunk size).
#pragma once

#include <parex/registry.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace parex::detail {

// Work a worker may hold beyond what it runs, in estimated time. Larger: fewer, bigger
// frames; smaller: calls stay cancellable and balance better across workers.
inline constexpr double target_inflight_ns = 2e6;
// A call estimated at this or more is held alone (see above): the round trip between two
// such calls (tools/bench_process_pool (c): tens of us) costs it a few per cent at most.
// Below it, a call may wait behind another estimated below it too, and the pool's
// take-back (process_pool/rebalance.cpp) bounds the wait where an estimate was wrong.
inline constexpr double hold_below_ns = 1e6;
// The estimate of a function not measured yet: slow (at least hold_below_ns).
inline constexpr double unmeasured_ns = target_inflight_ns;
// The per-item estimate never drops below this: a frame's busy time is counted in whole
// microseconds, so a batch of tiny calls can report 0; 20 ns is about the cheapest call.
inline constexpr double min_ns_per_item = 20.0;
// Weight of the newest frame in a function's running estimate: higher follows a change of
// call cost sooner, lower rides out one odd frame (a page fault, a preempted worker).
inline constexpr double estimate_weight = 0.5;
// Estimated work per chunk of a map without a chunksize, and the most items in one.
inline constexpr double adaptive_chunk_ns = 100e3;
inline constexpr std::size_t max_adaptive_chunk = std::size_t{1} << 14;
// A calls frame carries at most this many items and (beyond its first call) this many bytes.
inline constexpr std::uint32_t max_frame_items = 1u << 16;
inline constexpr std::size_t max_frame_bytes_out = std::size_t{16} << 20;  // a single bigger call still goes, alone

/// Estimated ns per item of each registered function (by id), learned from results frames.
class CostTable {
 public:
  CostTable() : n_(Registry::global().size()), ns_(std::make_unique<std::atomic<double>[]>(n_)) {}

  /// ns per item of function `id`; unmeasured_ns until it has been measured.
  double per_item(std::uint32_t id) const noexcept {
    const double v = id < n_ ? ns_[id].load(std::memory_order_relaxed) : 0.0;
    return v > 0 ? v : unmeasured_ns;
  }
  /// `items` of function `id` took busy_ns of a worker's time. The first sample replaces
  /// the unmeasured guess; later ones are averaged in. (Dispatching thread only.)
  void sample(std::uint32_t id, std::uint64_t items, double busy_ns) noexcept {
    if (!items || id >= n_) return;
    const double ns = std::max(min_ns_per_item, busy_ns / static_cast<double>(items));
    const double old = ns_[id].load(std::memory_order_relaxed);
    ns_[id].store(old > 0 ? (1 - estimate_weight) * old + estimate_weight * ns : ns, std::memory_order_relaxed);
  }
  /// An item of `id` has been running for ns and is not done: the estimate is at least
  /// that (a call taken back from behind it must not be estimated tiny again).
  void raise_to(std::uint32_t id, double ns) noexcept {
    if (id < n_ && per_item(id) < ns) ns_[id].store(ns, std::memory_order_relaxed);
  }
  /// Items per chunk for a map of function `id` without a chunksize.
  std::size_t chunk_for(std::uint32_t id) const noexcept {
    const double n = adaptive_chunk_ns / per_item(id);
    return n < 1 ? 1 : std::min(max_adaptive_chunk, static_cast<std::size_t>(n));
  }

 private:
  std::size_t n_;
  std::unique_ptr<std::atomic<double>[]> ns_;  // 0: not measured
};

/// The functions whose items one results frame answers, and how many of each: the frame's
/// busy time is shared among them in proportion to their estimates. A frame mixing more
/// functions than fit here teaches nothing.
struct FrameMix {
  static constexpr std::size_t max_parts = 4;
  struct Part {
    std::uint32_t fn = 0;
    std::uint64_t items = 0;
  };
  Part parts[max_parts];
  std::size_t n = 0;
  bool overflow = false;

  void add(std::uint32_t fn, std::uint64_t items) noexcept {
    for (std::size_t i = 0; i < n; ++i)
      if (parts[i].fn == fn) return void(parts[i].items += items);
    if (n == max_parts) return void(overflow = true);
    parts[n++] = {fn, items};
  }
  void teach(CostTable& costs, std::uint32_t busy_us) const noexcept {
    if (overflow || n == 0) return;
    if (n == 1) return costs.sample(parts[0].fn, parts[0].items, busy_us * 1000.0);
    double estimated = 0;
    for (std::size_t i = 0; i < n; ++i) estimated += costs.per_item(parts[i].fn) * static_cast<double>(parts[i].items);
    for (std::size_t i = 0; i < n; ++i) {
      const double share = costs.per_item(parts[i].fn) * static_cast<double>(parts[i].items) / estimated;
      costs.sample(parts[i].fn, parts[i].items, busy_us * 1000.0 * share);
    }
  }
};

/// What a worker holds, in estimated work: each call is charged its estimate when sent
/// (RemoteCall::charge_ns) and discharged when it completes or is taken back.
struct Load {
  double held_ns = 0;        // estimated work of the calls it holds
  std::size_t calls = 0;     // calls it holds
  std::size_t slow = 0;      // of those, calls charged hold_below_ns or more

  void charge(double ns) noexcept {
    held_ns += ns;
    ++calls;
    slow += ns >= hold_below_ns;
  }
  void discharge(double ns) noexcept {
    slow -= ns >= hold_below_ns;
    held_ns = --calls ? held_ns - ns : 0.0;  // no drift once empty
  }
  /// Whether a call estimated at next_ns may join what it holds.
  bool has_room(double next_ns) const noexcept {
    if (calls == 0) return true;
    return slow == 0 && next_ns < hold_below_ns && held_ns + next_ns <= target_inflight_ns;
  }
};

}  // namespace parex::detail
