// Lock and RLock (see include/parex/mp/lock.hpp): a robust, process-shared pthread mutex.
//
// Robust: glibc puts a held mutex on the holding thread's robust list; when that thread
// dies, the kernel marks the mutex FUTEX_OWNER_DIED and wakes a waiter, whose lock call
// returns EOWNERDEAD with the mutex held. We make it consistent, record that in the cell,
// and go on. `depth` counts an RLock's nested acquisitions; it is touched by the holder
// only, and reset when a dead holder's count is taken over.
#include <parex/mp/lock.hpp>

#include <parex/errors.hpp>
#include <parex/mp/process.hpp>

#include "mp/robust_mutex.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <linux/futex.h>
#include <new>
#include <ostream>
#include <pthread.h>
#include <string>
#include <thread>
#include <unistd.h>

namespace parex::detail {

namespace {
struct LockCell {
  pthread_mutex_t mutex;
  std::uint32_t kind;         // LockHandle::Kind, checked when a handle is decoded
  std::uint32_t owner_died;   // the current acquisition took over from a dead holder
  std::uint32_t depth;        // nested acquisitions of the holder
  std::atomic<std::int32_t> holder;  // the holding thread's kernel tid, 0 when free
};
static_assert(sizeof(LockCell) <= lock_cell_bytes);

LockCell& cell(void* p) { return *static_cast<LockCell*>(p); }

// This thread's kernel tid without a system call per lock operation (glibc's gettid() is
// one). A fork()ed child's thread has a new tid: the cache is keyed by a fork generation.
std::atomic<unsigned> fork_generation{0};
pid_t my_tid() noexcept {
  static const bool hooked = [] {
    ::pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)hooked;
  thread_local unsigned generation = ~0u;
  thread_local pid_t tid = 0;
  const unsigned g = fork_generation.load(std::memory_order_relaxed);
  if (generation != g) {
    tid = static_cast<pid_t>(::gettid());
    generation = g;
  }
  return tid;
}

void check(int rc, const char* what) {
  if (rc != 0) throw Error(std::string("parex: ") + what + ": " + std::strerror(rc));
}

#if !defined(__SANITIZE_THREAD__)
timespec monotonic_deadline(std::chrono::nanoseconds timeout) {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const auto total = std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec) + timeout;
  const auto secs = std::chrono::floor<std::chrono::seconds>(total);
  return {static_cast<time_t>(secs.count()), static_cast<long>((total - secs).count())};
}
#endif
}  // namespace

void LockHandle::init_cell(std::byte* at, Kind kind) {
  auto* c = new (at) LockCell{};
  init_robust_mutex(c->mutex, kind == Kind::recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_ERRORCHECK, "a lock");
  c->kind = static_cast<std::uint32_t>(kind);
}

LockHandle::LockHandle(Kind kind) : segment_(Segment::create(lock_cell_bytes, "lock")), cell_(segment_->data()) {
  init_cell(segment_->data(), kind);
}

LockHandle::LockHandle(std::shared_ptr<Segment> segment, std::uint64_t offset, Kind kind)
    : segment_(std::move(segment)), offset_(offset), cell_(segment_->data() + offset) {
  if (offset > segment_->size() || segment_->size() - offset < lock_cell_bytes ||
      cell(cell_).kind != static_cast<std::uint32_t>(kind))
    throw SharedObjectError(kind == Kind::recursive ? "this handle does not refer to an RLock"
                                                    : "this handle does not refer to a Lock");
}

LockHandle LockHandle::decode_as(Reader& r, Kind kind) {
  std::uint64_t offset = 0;
  auto s = decode_handle(r, offset, lock_cell_bytes);
  return LockHandle(std::move(s), offset, kind);
}

bool LockHandle::acquire() { return acquire_for(no_timeout); }

bool LockHandle::acquire_for(std::chrono::nanoseconds timeout) {
  LockCell& c = cell(cell_);
  int rc;
  if (timeout == no_timeout) {
    // No spin here (unlike the toolbox's own short critical sections, robust_mutex.hpp): a
    // user's Lock guards code of any length, and two processes hammering one Lock ran at
    // 16M ops/s with the spin (each acquisition a hand-off) against 25M without it (medians
    // of 9, 2-vCPU AMD VM, 2026-12-07: a loser that sleeps lets the holder go on).
    rc = pthread_mutex_lock(&c.mutex);
  } else if (timeout == std::chrono::nanoseconds(0)) {
    rc = pthread_mutex_trylock(&c.mutex);
  } else {
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer (GCC 12) does not intercept pthread_mutex_clocklock, and its
    // timedlock interceptor does not record a lock taken with EOWNERDEAD: under TSan a
    // timed acquisition polls trylock (which it models fully) every 50 us instead.
    const auto until = std::chrono::steady_clock::now() + timeout;
    while ((rc = pthread_mutex_trylock(&c.mutex)) == EBUSY && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    if (rc == EBUSY) rc = ETIMEDOUT;
#else
    const timespec until = monotonic_deadline(timeout);
    rc = pthread_mutex_clocklock(&c.mutex, CLOCK_MONOTONIC, &until);
#endif
  }
  switch (rc) {
    case 0:
      if (c.depth++ == 0) {
        c.owner_died = 0;
        c.holder.store(my_tid(), std::memory_order_relaxed);
        segment_->hold();
      }
      return true;
    case EOWNERDEAD:
      check(pthread_mutex_consistent(&c.mutex), "pthread_mutex_consistent");
      c.owner_died = 1;
      c.depth = 1;
      c.holder.store(my_tid(), std::memory_order_relaxed);
      segment_->hold();
      return true;
    case EBUSY:
    case ETIMEDOUT:
      return false;
    case EDEADLK:
      if (timeout != no_timeout) return false;
      throw InvalidStateError("this thread already holds this Lock: acquiring it again would wait for ever "
                              "(use an RLock to acquire it more than once)");
    default:
      check(rc, "acquiring a lock");
      return false;
  }
}

void LockHandle::release() {
  LockCell& c = cell(cell_);
  // Only the holder may touch depth: ask `holder` first (a tid is unique while its thread
  // lives, and a dead holder's tid is replaced by the next acquisition).
  if (c.holder.load(std::memory_order_relaxed) != my_tid())
    throw ValueError("release of a lock this thread does not hold");
  const bool last = --c.depth == 0;
  if (last) c.holder.store(0, std::memory_order_relaxed);
  if (const int rc = pthread_mutex_unlock(&c.mutex); rc != 0) check(rc, "releasing a lock");
  if (last) segment_->unhold();
}

unsigned LockHandle::release_all() {
  LockCell& c = cell(cell_);
  if (c.holder.load(std::memory_order_relaxed) != my_tid())
    throw ValueError("wait() on a Condition whose lock this thread does not hold");
  const unsigned depth = c.depth;
  for (unsigned i = 0; i < depth; ++i) release();
  return depth;
}

void LockHandle::reacquire(unsigned depth) {
  for (unsigned i = 0; i < depth; ++i) acquire();
}

LockHandle::Kind LockHandle::kind() const noexcept { return static_cast<Kind>(cell(cell_).kind); }

LockHandle LockHandle::decode_either(Reader& r) {
  std::uint64_t offset = 0;
  auto s = decode_handle(r, offset, lock_cell_bytes);
  const auto k = static_cast<Kind>(cell(s->data() + offset).kind);
  if (k != Kind::plain && k != Kind::recursive) throw SharedObjectError("this handle does not refer to a lock");
  return LockHandle(std::move(s), offset, k);
}

bool LockHandle::previous_owner_died() const noexcept { return cell(cell_).owner_died != 0; }

// The futex word of glibc's robust mutex holds the holder's tid, and the kernel replaces
// it with FUTEX_OWNER_DIED alone when that thread dies: the tid bits say "held by a live
// thread" without touching the lock (a trylock would take a dead holder's lock over, and
// succeed on an RLock the caller holds).
bool LockHandle::locked() const noexcept {
  const auto word = std::atomic_ref<int>(cell(cell_).mutex.__data.__lock).load(std::memory_order_acquire);
  return (static_cast<unsigned>(word) & FUTEX_TID_MASK) != 0;
}

bool LockHandle::is_mine() const noexcept {
  return locked() && cell(cell_).holder.load(std::memory_order_relaxed) == my_tid();
}

unsigned LockHandle::count() const noexcept {
  if (!locked()) return 0;
  return is_mine() ? cell(cell_).depth : 1;  // another thread's depth is its own business
}

}  // namespace parex::detail

namespace parex {
namespace {
std::string owner_name(const detail::LockHandle& l) {
  if (!l.locked()) return "None";
  return l.is_mine() ? current_process().name : "SomeOtherThread";
}
}  // namespace

std::ostream& operator<<(std::ostream& os, const Lock& l) { return os << "<Lock(owner=" << owner_name(l) << ")>"; }
std::ostream& operator<<(std::ostream& os, const RLock& l) {
  return os << "<RLock(" << owner_name(l) << ", " << l.count() << ")>";
}
}  // namespace parex
