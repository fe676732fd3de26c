// What a pool and its worker processes agree on besides the frames and the marker
// (marker.hpp): the worker's exit codes, and the shared page through which the parent learns, after a
// crash, exactly which item was running and which results were computed but not yet sent.
//
//   memfd: [ WorkerShared (one page) | results buffer: outcomes ... ]
//
// The worker writes each outcome into the results buffer (which lives in the memfd) and
// then bumps `finished` and `out_end`; it bumps `started` before decoding an item; after
// sending bytes up to some offset it publishes the pair (first item, offset) of what is
// not yet sent. A dead worker's stores are all visible to the parent, so: started >
// finished means item `finished` was running (it fails); the outcomes in [begin, out_end)
// are those of items first .. finished-1, computed but maybe not received (delivered,
// never re-run); items from `started` on never ran (re-queued).
//
// Taking back calls a worker holds but has not started (process_pool/rebalance.cpp): the
// two words `claim` and `revoke_to`, under remote/take_back.hpp's protocol.
//
// Big results are not copied through the pipe: the worker sends a shared_results frame
// naming their bytes in the buffer, the pool reads them from its own mapping of the memfd
// and then bumps `acked`; the worker rewrites those bytes only after that. The pool holds
// the memfd open, so such a frame is readable even after the worker died.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace parex::detail {

/// Exit codes a worker uses before it can talk.
inline constexpr int exit_channel_lost = 94;    // its pipes to the pool were closed or replaced (user code)
inline constexpr int exit_rss_limit = 95;       // past max_rss_per_child, between calls: replace it
inline constexpr int exit_no_memory = 96;       // out of memory receiving calls (before running any)
inline constexpr int exit_forgot_init = 97;     // marked as a worker, but main() did not call parex::init first
inline constexpr int exit_protocol_error = 98;  // the pool sent something unreadable
inline constexpr int exit_bad_setup = 99;       // bad marker, registry error, or the parent is gone

/// The fix for a program whose workers never reach parex::init, in every message about it.
inline constexpr const char* init_advice =
    "main() must call parex::init(argc, argv) first (a worker is this program re-executed)";

inline constexpr std::size_t shm_header_bytes = 4096;
inline constexpr std::size_t shm_initial_data_bytes = std::size_t{1} << 20;

struct WorkerShared {
  /// Where the unsent outcomes start: item number and buffer offset, one consistent pair.
  struct Unsent {
    std::uint64_t first;  // item number of the outcome at `begin`
    std::uint64_t begin;  // buffer offset of the first outcome not yet sent
  };

  std::atomic<std::uint64_t> started{0};   // items whose decoding began
  std::atomic<std::uint64_t> finished{0};  // items whose outcome is complete in the buffer (or sent)
  std::atomic<std::uint64_t> out_end{0};   // buffer offset after the last complete outcome
  /// When the last timed item started (steady_clock, which is CLOCK_MONOTONIC: one clock
  /// for every process): written before `started`, read by the pool's deadline watch.
  std::atomic<std::int64_t> started_ns{0};

  /// The two halves of the pair are written into the slot not in use, then `unsent_gen`
  /// flips to it: a worker that dies between the stores leaves the previous pair intact
  /// and current (two separate atomics could be caught half-updated, matching one item's
  /// number with another's offset). One writer at a time (the worker's stream mutex).
  void publish_unsent(std::uint64_t first, std::uint64_t begin) noexcept {
    const std::uint64_t g = unsent_gen.load(std::memory_order_relaxed) + 1;
    unsent_first[g & 1].store(first, std::memory_order_relaxed);
    unsent_begin[g & 1].store(begin, std::memory_order_relaxed);
    unsent_gen.store(g, std::memory_order_release);
  }
  /// Read by the parent once the worker is dead (nothing changes any more).
  Unsent unsent() const noexcept {
    const std::uint64_t g = unsent_gen.load(std::memory_order_acquire);
    return {unsent_first[g & 1].load(std::memory_order_relaxed), unsent_begin[g & 1].load(std::memory_order_relaxed)};
  }

  std::atomic<std::uint64_t> unsent_gen{0};
  std::atomic<std::uint64_t> unsent_first[2]{};
  std::atomic<std::uint64_t> unsent_begin[2]{};
  /// Set by the worker as soon as parex::init has seen its marker: a worker that dies
  /// before its handshake without it never got there (the program forgot init).
  std::atomic<std::uint32_t> reached_init{0};
  /// shared_results frames the pool has read (wraps; a futex word the worker waits on
  /// before it reuses their bytes). The only field the pool writes.
  std::atomic<std::uint32_t> acked{0};
  /// remote/take_back.hpp: items of the calls the worker has claimed, or c | claim_fence;
  /// with the fence, the end of the items taken back (written by the pool before it).
  std::atomic<std::uint64_t> claim{0};
  std::atomic<std::uint64_t> revoke_to{0};
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared counters must be address-free");
static_assert(sizeof(WorkerShared) <= shm_header_bytes);

}  // namespace parex::detail
