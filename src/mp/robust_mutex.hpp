// mp/robust_mutex.hpp - the process-shared robust pthread mutex under the toolbox's locks,
// queues and barriers: made in one place, held with one guard.
//
// Robust: a holder that dies leaves the mutex marked; the next lock gets it (EOWNERDEAD),
// makes it consistent and goes on. The structures it guards commit every change with one
// last store, so a dead holder's half-done change is simply not there.
// Who includes this: src/mp/*.cpp.
#pragma once

#include <parex/errors.hpp>

#include "sync/futex.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <linux/futex.h>
#include <pthread.h>
#include <string>
#include <utility>

namespace parex::detail {

/// Makes `m` (fresh shared memory) a process-shared robust mutex of `type`
/// (PTHREAD_MUTEX_NORMAL, _ERRORCHECK, _RECURSIVE). @throws Error naming `what`.
inline void init_robust_mutex(pthread_mutex_t& m, int type, const char* what) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&a, type);
  const int rc = pthread_mutex_init(&m, &a);
  pthread_mutexattr_destroy(&a);
  if (rc != 0) throw Error(std::string("parex: cannot make ") + what + ": " + std::strerror(rc));
}

/// How long a locker spins on a held mutex before glibc puts it to sleep. glibc's robust
/// mutexes never spin: a locker that finds one held goes straight into FUTEX_WAIT, and the
/// unlocker then makes a FUTEX_WAKE, two system calls per contended hand-off. A queue's or
/// a barrier's critical section is a few hundred nanoseconds, so the holder is nearly
/// always gone within the spin: perf on the 2-vCPU AMD VM (1 KiB Queue items, one putter,
/// one getter) put ~45 % of both processes' time in those futex calls before this spin.
inline constexpr int robust_lock_spins = 200;

/// pthread_mutex_lock, after spinning while the mutex is held by a live thread. Returns its
/// code (0, EOWNERDEAD, EDEADLK, ...). The spin reads the futex word (the holder's tid) and
/// tries the lock only when it reads free, so spinners do not bounce the line with writes.
inline int lock_robust_spinning(pthread_mutex_t& m) noexcept {
  std::atomic_ref<int> word(m.__data.__lock);
  for (int i = 0;; ++i) {
    // The first try is unconditional: a free mutex, or an RLock this thread holds.
    if (i == 0 || (static_cast<unsigned>(word.load(std::memory_order_relaxed)) & FUTEX_TID_MASK) == 0) {
      const int rc = pthread_mutex_trylock(&m);
      if (rc != EBUSY) return rc;
    }
    if (i == robust_lock_spins) return pthread_mutex_lock(&m);
    cpu_relax();
  }
}

/// Holds a robust mutex for a scope, taking it over from a dead holder; unlock() and
/// lock() let a waiter sleep without it.
class RobustHeld {
 public:
  explicit RobustHeld(pthread_mutex_t& m) : m_(m) { lock(); }
  ~RobustHeld() { pthread_mutex_unlock(&m_); }
  RobustHeld(const RobustHeld&) = delete;
  RobustHeld& operator=(const RobustHeld&) = delete;
  void lock() {
    const int rc = lock_robust_spinning(m_);
    if (rc == EOWNERDEAD) {
      pthread_mutex_consistent(&m_);
      took_over_ = true;
    } else if (rc != 0) {
      throw Error(std::string("parex: a shared lock failed: ") + std::strerror(rc));
    }
  }
  void unlock() { pthread_mutex_unlock(&m_); }
  /// True once (then reset) after a lock() that took the mutex over from a dead holder.
  bool took_over() noexcept { return std::exchange(took_over_, false); }

 private:
  pthread_mutex_t& m_;
  bool took_over_ = false;
};

}  // namespace parex::detail
