// parex/mp/condition.hpp - Condition and Barrier shared by processes (Python's
// multiprocessing.Condition and Barrier).
//
//   parex::Condition cv;                                   // over a new RLock, as Python's
//   { std::unique_lock g(cv); cv.wait_for([&] { return ready.value(); }, 1s); }
//   { std::lock_guard g(cv); ready.value() = 1; cv.notify_all(); }
//   parex::Barrier b(4);   int i = b.wait();               // 0..3, arrival order
//
// Handles, like every multiprocessing object. Condition: wait() releases its lock however
// deep (an RLock), sleeps on a process-shared futex, and takes the lock back as deep as
// it was; it may wake more waiters than notify(n) asked for (as POSIX condition variables
// may): wait with a predicate (wait_for). Barrier: threading.Barrier's rules (abort, reset,
// n_waiting, broken, BrokenBarrierError), with the action a registered function run by the
// last party to arrive.
//
// What survives a SIGKILL: the Condition's lock as lock.hpp says. A Barrier party that
// dies before it arrives breaks the barrier for the others when their timeout passes (the
// Barrier's default timeout, or wait's): give a timeout where a party may die.
#pragma once

#include <parex/detail/mp/segment.hpp>
#include <parex/detail/remote/remote_call.hpp>
#include <parex/errors.hpp>
#include <parex/mp/lock.hpp>

#include <chrono>
#include <cstdint>
#include <memory>

namespace parex {

class Condition : public detail::HandleBase {
 public:
  using parex_shared_handle = void;
  /// Over a new RLock (Python's default).
  Condition();
  explicit Condition(Lock lock);
  explicit Condition(RLock lock);

  bool acquire() { return lock_.acquire(); }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return lock_.acquire(timeout);
  }
  void release() { lock_.release(); }
  void lock() { lock_.lock(); }
  void unlock() { lock_.unlock(); }
  bool try_lock() { return lock_.try_lock(); }

  /// Releases the lock, waits for a notify, takes the lock back. @throws ValueError if the
  /// lock is not held by this thread.
  void wait() { wait_ns(detail::no_timeout); }
  /// false if the timeout passed first.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_ns(detail::clamp_timeout(timeout));
  }
  /// Waits until pred() (checked with the lock held); returns its last value.
  template <class Pred>
  bool wait_for(Pred pred) {
    while (!pred()) wait();
    return true;
  }
  template <class Pred, class Rep, class Period>
  bool wait_for(Pred pred, std::chrono::duration<Rep, Period> timeout) {
    const auto until = std::chrono::steady_clock::now() + detail::clamp_timeout(timeout);
    for (bool r = pred();; r = pred()) {
      if (r) return true;
      const auto left = until - std::chrono::steady_clock::now();
      if (left <= left.zero()) return pred();
      wait(left);
    }
  }
  /// Wakes at least one waiter (up to n, maybe more). Call with the lock held, as in Python.
  void notify(unsigned n = 1) noexcept;
  void notify_all() noexcept;

  void encode_to(detail::Writer& w) const;
  static Condition decode_from(detail::Reader& r);

 private:
  struct Cell;
  Condition(std::shared_ptr<detail::Segment> s, detail::LockHandle lock);
  bool wait_ns(std::chrono::nanoseconds timeout);
  std::shared_ptr<detail::Segment> segment_;
  Cell* cell_ = nullptr;
  detail::LockHandle lock_;
};

class Barrier : public detail::HandleBase {
 public:
  using parex_shared_handle = void;
  /// parties: how many wait() calls release each other. action: a registered function
  /// (PAREX_REGISTER) without parameters, run by the last to arrive before the others are
  /// released; if it throws, the barrier breaks and that waiter gets the exception.
  /// timeout: the default for wait() (none by default).
  explicit Barrier(unsigned parties) : Barrier(parties, nullptr, detail::no_timeout) {}
  Barrier(unsigned parties, void (*action)()) : Barrier(parties, action, detail::no_timeout) {}
  template <class Rep, class Period>
  Barrier(unsigned parties, void (*action)(), std::chrono::duration<Rep, Period> timeout)
      : Barrier(parties, action, detail::clamp_timeout(timeout)) {}

  /// Waits for all parties; returns this one's arrival index (0 .. parties-1).
  /// @throws BrokenBarrierError if the barrier is or becomes broken, aborted, reset or
  /// timed out (a timeout breaks it for everyone, as in Python).
  unsigned wait() { return wait_ns(default_timeout()); }
  template <class Rep, class Period>
  unsigned wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_ns(detail::clamp_timeout(timeout));
  }
  /// Breaks the barrier: current and later waiters get BrokenBarrierError until reset().
  void abort();
  /// Back to empty: current waiters get BrokenBarrierError.
  void reset();
  unsigned parties() const noexcept;
  unsigned n_waiting() const;
  bool broken() const;

  void encode_to(detail::Writer& w) const { detail::encode_handle(w, segment_, 0); }
  static Barrier decode_from(detail::Reader& r);

  struct Cell;

 private:
  Barrier(unsigned parties, void (*action)(), std::chrono::nanoseconds timeout);
  explicit Barrier(std::shared_ptr<detail::Segment> s);
  std::chrono::nanoseconds default_timeout() const noexcept;
  unsigned wait_ns(std::chrono::nanoseconds timeout);
  std::shared_ptr<detail::Segment> segment_;
  Cell* cell_ = nullptr;
};

}  // namespace parex
