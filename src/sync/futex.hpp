// sync/futex.hpp - waiting on a 32-bit word, the one blocking primitive below the futures,
// the thread pool, the worker loop and (next) the multiprocessing toolbox.
//
// Two scopes. process_private: the word lives in this process (FUTEX_*_PRIVATE, the
// kernel's fast path). shared: the word lives in memory that several processes map (a
// memfd, a MAP_SHARED page); waiters in any of them are woken. A shared word must not
// move (no mremap of its page while anyone waits) and should be aligned to 4 bytes.
// All functions are thread-safe and never throw; waits may return spuriously.
//
// Who includes this: src/ only (the future, the thread pool, the worker, mp/). Nothing
// public depends on it: a user never includes futexes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace parex::detail {

using Clock = std::chrono::steady_clock;

enum class FutexScope : bool { process_private, shared };

/// Blocks while *word == expected, until woken or the deadline (nullptr: none) passes.
/// Returns false on timeout. Spurious returns are allowed; callers re-check.
bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, const Clock::time_point* deadline,
                FutexScope scope = FutexScope::process_private) noexcept;
/// Wakes up to count waiters on word.
void futex_wake(std::atomic<std::uint32_t>& word, int count, FutexScope scope = FutexScope::process_private) noexcept;
void futex_wake_all(std::atomic<std::uint32_t>& word, FutexScope scope = FutexScope::process_private) noexcept;
/// A pause for spin loops (x86 PAUSE, ARM YIELD).
void cpu_relax() noexcept;

}  // namespace parex::detail
