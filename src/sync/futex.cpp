// Futex wait/wake, private and process-shared (see futex.hpp).
//
// Why a hand-rolled futex instead of std::mutex + std::condition_variable: a condvar costs
// ~88 bytes and a lock per wake-up; a futex word is 4 bytes, a wake is a syscall only when
// somebody is asleep (callers track that), and the same word works across processes,
// which std::condition_variable does not promise.
#include "sync/futex.hpp"

#include <cerrno>
#include <climits>
#include <ctime>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace parex::detail {

namespace {
int op(int base, FutexScope scope) noexcept {
  return scope == FutexScope::process_private ? (base | FUTEX_PRIVATE_FLAG) : base;
}
long futex(std::atomic<std::uint32_t>& word, int operation, std::uint32_t value, const timespec* ts,
           std::uint32_t bitset) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), operation, value, ts, nullptr, bitset);
}
}  // namespace

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, const Clock::time_point* deadline,
                FutexScope scope) noexcept {
  timespec ts{};
  timespec* tsp = nullptr;
  if (deadline) {
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, which is what
    // steady_clock reads on Linux: no drift from recomputing relative timeouts.
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch()).count();
    if (ns <= 0) return false;
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    tsp = &ts;
    if (Clock::now() >= *deadline) return false;
  }
  const long r = futex(word, op(FUTEX_WAIT_BITSET, scope), expected, tsp, FUTEX_BITSET_MATCH_ANY);
  return !(r == -1 && errno == ETIMEDOUT);
}

void futex_wake_all(std::atomic<std::uint32_t>& word, FutexScope scope) noexcept {
  futex(word, op(FUTEX_WAKE, scope), INT_MAX, nullptr, 0);
}

void futex_wake(std::atomic<std::uint32_t>& word, int count, FutexScope scope) noexcept {
  futex(word, op(FUTEX_WAKE, scope), static_cast<std::uint32_t>(count), nullptr, 0);
}

}  // namespace parex::detail
