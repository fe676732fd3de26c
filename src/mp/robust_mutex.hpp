// mp/robust_mutex.hpp - the process-shared robust pthread mutex under the toolbox's locks,
// queues and barriers: made in one place, held with one guard.
//
// Robust: a holder that dies leaves the mutex marked; the next lock gets it (EOWNERDEAD),
// makes it consistent and goes on. The structures it guards commit every change with one
// last store, so a dead holder's half-done change is simply not there.
// Who includes this: src/mp/*.cpp.
#pragma once

#include <parex/errors.hpp>

#include <cerrno>
#include <cstring>
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

/// Holds a robust mutex for a scope, taking it over from a dead holder; unlock() and
/// lock() let a waiter sleep without it.
class RobustHeld {
 public:
  explicit RobustHeld(pthread_mutex_t& m) : m_(m) { lock(); }
  ~RobustHeld() { pthread_mutex_unlock(&m_); }
  RobustHeld(const RobustHeld&) = delete;
  RobustHeld& operator=(const RobustHeld&) = delete;
  void lock() {
    const int rc = pthread_mutex_lock(&m_);
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
