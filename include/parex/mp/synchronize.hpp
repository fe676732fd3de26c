// parex/mp/synchronize.hpp - Semaphore, BoundedSemaphore and Event shared by processes
// (Python's multiprocessing.Semaphore, BoundedSemaphore, Event).
//
// Handles, like every multiprocessing object: copies, and copies passed to a Process, a
// pool call or through a Queue, are the same object. Each is a counter or a flag in a
// memfd and a process-shared futex: an acquire or a wait that can proceed makes no
// system call.
//
//   parex::Semaphore slots(3);
//   { std::lock_guard g(slots); ... }               // at most 3 inside at once
//   parex::Event ready;   ready.set();   ready.wait(1s);
//
// What survives a SIGKILL: nothing is corrupted and no one hangs because of it, but a
// semaphore has no owner (as in Python): a count taken by a process that dies is not
// given back. Use a Lock where the holder must be known.
#pragma once

#include <parex/detail/mp/segment.hpp>

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <memory>

namespace parex {

namespace detail {
struct SemaphoreCell;
class SemaphoreHandle {
 public:
  bool acquire();
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_for(clamp_timeout(timeout));
  }
  /// Adds n to the count. @throws ValueError past the initial value (BoundedSemaphore) or
  /// past 2^31 - 1.
  void release(unsigned n = 1);
  /// The count now (Python's get_value; a snapshot).
  unsigned get_value() const noexcept;

  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() { return acquire_for(std::chrono::nanoseconds(0)); }

  void encode_to(Writer& w) const { encode_handle(w, segment_, 0); }

 protected:
  SemaphoreHandle(unsigned value, bool bounded);
  SemaphoreHandle(Reader& r, bool bounded);
  bool acquire_for(std::chrono::nanoseconds timeout);

 private:
  std::shared_ptr<Segment> segment_;
  SemaphoreCell* cell_ = nullptr;
};
}  // namespace detail

/// A counting semaphore shared by processes and threads.
class Semaphore : public detail::SemaphoreHandle {
 public:
  using parex_shared_handle = void;
  explicit Semaphore(unsigned value = 1) : SemaphoreHandle(value, false) {}
  static Semaphore decode_from(detail::Reader& r) { return Semaphore(r); }

 private:
  explicit Semaphore(detail::Reader& r) : SemaphoreHandle(r, false) {}
};

/// A semaphore that may not be released past its initial value (ValueError).
class BoundedSemaphore : public detail::SemaphoreHandle {
 public:
  using parex_shared_handle = void;
  explicit BoundedSemaphore(unsigned value = 1) : SemaphoreHandle(value, true) {}
  static BoundedSemaphore decode_from(detail::Reader& r) { return BoundedSemaphore(r); }

 private:
  explicit BoundedSemaphore(detail::Reader& r) : SemaphoreHandle(r, true) {}
};

/// A flag processes and threads wait for.
class Event : public detail::HandleBase {
 public:
  using parex_shared_handle = void;
  Event();
  void set() noexcept;
  void clear() noexcept;
  bool is_set() const noexcept;
  /// Blocks until set. Returns true.
  bool wait();
  /// Waits at most `timeout`; true if set meanwhile (also if cleared again since, as in
  /// Python: a set() wakes every waiter of the moment).
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_for(detail::clamp_timeout(timeout));
  }

  void encode_to(detail::Writer& w) const { detail::encode_handle(w, segment_, 0); }
  static Event decode_from(detail::Reader& r);
  /// <Event(set)> or <Event(unset)>.
  friend std::ostream& operator<<(std::ostream& os, const Event& e);

 private:
  struct Cell;
  static std::uint32_t event_tag() noexcept;
  explicit Event(std::shared_ptr<detail::Segment> s) noexcept;
  bool wait_for(std::chrono::nanoseconds timeout);
  std::shared_ptr<detail::Segment> segment_;
  Cell* cell_ = nullptr;
};

}  // namespace parex
