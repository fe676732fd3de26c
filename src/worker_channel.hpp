// What a pool and its worker processes agree on besides the frames: how a worker is told
// it is one, its exit codes, and the shared page through which the parent learns, after a
// crash, exactly which item was running and which results were computed but not yet sent.
//
//   memfd: [ WorkerShared (one page) | results buffer: outcomes ... ]
//
// The worker writes each outcome into the results buffer (which lives in the memfd) and
// then bumps `finished` and `out_end`; it bumps `started` before decoding an item; after
// sending bytes up to some offset it sets `out_begin`/`out_first`. A dead worker's stores
// are all visible to the parent, so: started > finished means item `finished` was
// running (it fails); the outcomes in [out_begin, out_end) are those of items out_first ..
// finished-1, computed but maybe not received (delivered, never re-run); items from
// `started` on never ran (re-queued).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace parex::detail {

/// The environment variable that marks a worker:
/// "2:<in fd>:<out fd>:<results shm fd>:<argument arena fd or -1>:<parent pid>".
inline constexpr const char* worker_env = "PAREX_WORKER";
/// argv[1] of a worker: shows in ps, and stops a program that parses its options before
/// parex::init.
inline constexpr const char* worker_arg = "--parex-worker";

/// Exit codes a worker uses before it can talk.
inline constexpr int exit_forgot_init = 97;     // marked as a worker, but main() did not call parex::init first
inline constexpr int exit_protocol_error = 98;  // the pool sent something unreadable
inline constexpr int exit_bad_setup = 99;       // bad marker, registry error, or the parent is gone

inline constexpr std::size_t shm_header_bytes = 4096;
inline constexpr std::size_t shm_initial_data_bytes = std::size_t{1} << 20;

struct WorkerShared {
  std::atomic<std::uint64_t> started{0};    // items whose decoding began
  std::atomic<std::uint64_t> finished{0};   // items whose outcome is complete in the buffer (or sent)
  std::atomic<std::uint64_t> out_first{0};  // item number of the outcome at out_begin
  std::atomic<std::uint64_t> out_begin{0};  // buffer offset of the first outcome not yet sent
  std::atomic<std::uint64_t> out_end{0};    // buffer offset after the last complete outcome
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared counters must be address-free");
static_assert(sizeof(WorkerShared) <= shm_header_bytes);

}  // namespace parex::detail
