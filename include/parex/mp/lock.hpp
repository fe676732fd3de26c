// parex/mp/lock.hpp - Lock and RLock shared by processes (Python's multiprocessing.Lock,
// RLock), robust where Python's hang.
//
// Each is a handle: copies, and copies passed to a Process, a pool call or through a
// Queue, are the same lock. Both meet the standard Lockable requirements, so
// std::lock_guard, std::unique_lock and std::scoped_lock work.
//
//   parex::Lock lock;
//   { std::lock_guard g(lock); ... }              // or lock.acquire() / lock.release()
//   if (lock.acquire(100ms)) { ...; lock.release(); }
//
// What survives a SIGKILL: a process (or thread) that dies holding the lock does not hang
// the others. The next acquire gets the lock, and previous_owner_died() then says so
// (true until the next acquisition): the data the lock guarded may be half-updated.
// Underneath: a process-shared robust pthread mutex in a memfd (EOWNERDEAD).
//
// Differences from Python, both stricter: release() by a thread that does not hold the
// lock throws ValueError (Python's Lock lets another process release it); acquire() of
// a Lock the calling thread already holds throws InvalidStateError instead of hanging for
// ever, and acquire(timeout) then returns false at once.
#pragma once

#include <parex/detail/mp/segment.hpp>

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <memory>

namespace parex {

namespace detail {
inline constexpr std::size_t lock_cell_bytes = 64;  // a LockCell's room in a segment

/// What Lock and RLock share; a handle to a lock cell inside a segment.
class LockHandle {
 public:
  /// Blocks until the lock is this thread's. Returns true.
  bool acquire();
  /// Waits at most `timeout` (zero or negative: only tries); false if the lock stayed taken.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_for(clamp_timeout(timeout));
  }
  /// @throws ValueError if this thread does not hold it.
  void release();
  /// True if the current acquisition took the lock over from a holder that died.
  /// Meaningful while you hold the lock.
  bool previous_owner_died() const noexcept;
  /// Whether some thread holds the lock now (Python 3.14's locked()); a snapshot. A
  /// holder that died does not count: the next acquire takes the lock at once.
  bool locked() const noexcept;
  /// Whether the calling thread holds it.
  bool is_mine() const noexcept;
  /// An RLock's depth of acquisitions by its holder (1 for a held Lock, 0 when free).
  unsigned count() const noexcept;

  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() { return acquire_for(std::chrono::nanoseconds(0)); }

  void encode_to(Writer& w) const { encode_handle(w, segment_, offset_); }
  /// The same lock (Python's == on lock objects): handles to one lock compare equal, in
  /// one process (a process maps a segment once).
  friend bool operator==(const LockHandle& a, const LockHandle& b) noexcept { return a.cell_ == b.cell_; }

  enum class Kind : std::uint32_t { plain = 1, recursive = 2 };

  // For Condition: give the lock up entirely (an RLock however deep), then take it back
  // as deep as it was. @throws ValueError if this thread does not hold it.
  unsigned release_all();
  void reacquire(unsigned depth);
  /// A Lock or RLock handle, whichever it is.
  static LockHandle decode_either(Reader& r);
  Kind kind() const noexcept;

 protected:
  explicit LockHandle(Kind kind);  // a new lock in its own segment
  LockHandle(std::shared_ptr<Segment> segment, std::uint64_t offset, Kind kind);  // a view, checked
  static LockHandle decode_as(Reader& r, Kind kind);
  bool acquire_for(std::chrono::nanoseconds timeout);  // no_timeout: no limit

 public:
  /// Builds a lock cell at `cell` (lock_cell_bytes of fresh shared memory).
  static void init_cell(std::byte* cell, Kind kind);

 private:
  std::shared_ptr<Segment> segment_;
  std::uint64_t offset_ = 0;
  void* cell_ = nullptr;
};
}  // namespace detail

/// A non-recursive lock shared by processes and threads.
class Lock : public detail::LockHandle {
 public:
  using parex_shared_handle = void;
  Lock() : LockHandle(Kind::plain) {}
  static Lock decode_from(detail::Reader& r) { return Lock(decode_as(r, Kind::plain)); }
  /// The lock at `offset` of `segment` (Value::get_lock and friends).
  Lock(std::shared_ptr<detail::Segment> segment, std::uint64_t offset) : LockHandle(std::move(segment), offset, Kind::plain) {}

 private:
  explicit Lock(LockHandle h) : LockHandle(std::move(h)) {}
};

/// A recursive lock: the thread that holds it may acquire it again, and must release it
/// as many times.
class RLock : public detail::LockHandle {
 public:
  using parex_shared_handle = void;
  RLock() : LockHandle(Kind::recursive) {}
  static RLock decode_from(detail::Reader& r) { return RLock(decode_as(r, Kind::recursive)); }
  RLock(std::shared_ptr<detail::Segment> segment, std::uint64_t offset)
      : LockHandle(std::move(segment), offset, Kind::recursive) {}

 private:
  explicit RLock(LockHandle h) : LockHandle(std::move(h)) {}
};

/// Python's repr: <Lock(owner=None)>, <Lock(owner=MainProcess)> when the calling thread
/// holds it, <Lock(owner=SomeOtherThread)> otherwise; <RLock(owner, count)> likewise.
std::ostream& operator<<(std::ostream& os, const Lock& l);
std::ostream& operator<<(std::ostream& os, const RLock& l);

}  // namespace parex
