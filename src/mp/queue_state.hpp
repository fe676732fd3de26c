// mp/queue_state.hpp - the shared state of the byte queue under Queue, SimpleQueue,
// JoinableQueue and Pipe (include/parex/mp/queues.hpp), and how its waiters sleep and wake.
// Who includes this: queue.cpp (put and get) and queue_joinable.cpp (the counts, join,
// shutdown); nothing else.
//
// Segment layout: [QueueState, one page][ring, capacity bytes (a power of two)].
// A record is [u32 length][u32 kind][payload, padded to 8]; head and tail are byte
// positions that only grow (the ring index is pos & (capacity - 1)), except that a dead
// streaming writer's uncommitted item is taken back (tail moves back to where it began).
//
// Two robust process-shared mutexes, one per end: putters hold `put_mutex` (it guards the
// tail, the streaming writer, the put count), getters hold `get_mutex` (the head, the
// reader, the get count, a JoinableQueue's consumers). A putter and a getter never wait for
// each other's lock: the bytes between head and tail belong to getters, the rest of the
// ring to putters, and each end publishes its position with one release store (the commit)
// that the other end reads without a lock. A record counts once `tail` passes it and is gone
// once `head` does, so a process killed while holding either mutex leaves the ring as it was
// before its operation. Known gap (as in the single-mutex version before): each end keeps
// an item count (`puts`, `gets`) that it updates one store before its position; a process
// killed between those two stores leaves that count one off for good (qsize() and maxsize
// then misjudge by one; a getter's makes qsize() wrap). A journal repaired on EOWNERDEAD
// would close it.
// The rare changes that touch both ends (a dead writer's item taken back, shutdown) hold
// both, always put_mutex first.
//
// Why two: with one mutex for both ends (until 2026-12), a putter and a getter running on
// two vCPUs spent most of their time taking the lock from each other; perf on the 2-vCPU
// AMD VM put ~45 % of a 1 KiB Queue's time in glibc's futex calls for that lock, and with
// a spin in front of it, half of what remained in the spin.
#pragma once

#include <parex/detail/mp/segment.hpp>

#include "mp/liveness.hpp"
#include "mp/robust_mutex.hpp"
#include "sync/futex.hpp"

#include <atomic>
#include <cstdint>
#include <optional>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

namespace parex::detail {

namespace queue {
constexpr std::uint32_t magic = 0x51554532;  // "QUE2": the two-lock layout
constexpr std::size_t state_bytes = 4096;
enum Kind : std::uint32_t { whole = 1, first = 2, middle = 3, last = 4 };
constexpr std::size_t record_header = 8;
constexpr auto liveness_slice = std::chrono::milliseconds(100);  // how often a waiter checks a named thread
constexpr int spin_before_sleep = 256;  // cpu_relax() rounds, then
constexpr int yield_before_sleep = 2;   // sched_yield() rounds, before a futex wait
// A JoinableQueue knows which process got each item not yet task_done, so that join() can
// tell a consumer that died owing some from a slow one; past this many consumer processes
// at once, the others go uncounted (join() waits for them, as Python's does).
constexpr int owed_slots = 64;
enum Shut : std::uint32_t { open = 0, shut_down = 1, shut_down_now = 2 };

inline std::size_t padded(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

struct Thread {
  std::int32_t pid = 0, tid = 0;
  bool none() const { return tid == 0; }
  bool is_me() const { return pid == ::getpid() && tid == ::gettid(); }
  bool alive() const { return thread_alive(pid, tid); }
  static Thread me() { return {::getpid(), ::gettid()}; }
  std::uint64_t word() const { return std::uint64_t{static_cast<std::uint32_t>(pid)} << 32 | static_cast<std::uint32_t>(tid); }
};

// A thread's name in one word: written under its end's mutex, read by the other end without.
struct ThreadWord {
  std::atomic<std::uint64_t> v{0};
  Thread load() const {
    const std::uint64_t x = v.load(std::memory_order_acquire);
    return {static_cast<std::int32_t>(x >> 32), static_cast<std::int32_t>(x & 0xffffffffu)};
  }
  void store(Thread t) { v.store(t.word(), std::memory_order_release); }
};

// An event count: sleepers announce themselves in `waiters`, then sleep on `seq`; a change
// made while nobody sleeps costs its maker one fence and one read of a line nobody writes.
struct Wake {
  std::atomic<std::uint32_t> seq{0};
  std::atomic<std::uint32_t> waiters{0};
};
}  // namespace queue

struct QueueState {
  // Fixed at creation.
  std::uint32_t magic;
  std::uint32_t joinable;  // a JoinableQueue: `unfinished` and the consumers' debts are kept
  std::uint64_t tag;       // the item type (and queue kind): a wrong handle fails to decode
  std::uint64_t capacity;  // ring bytes, a power of two
  std::uint64_t maxsize;   // items; 0: unbounded
  std::atomic<std::uint32_t> shut;  // open, shut_down, shut_down_now: changed under both mutexes

  // The putters' end.
  alignas(64) pthread_mutex_t put_mutex;
  queue::ThreadWord writer;      // streaming an item in chunks (put_mutex)
  std::uint64_t stream_start;    // where its first chunk is (put_mutex)
  std::atomic<std::uint64_t> puts;  // whole items and first chunks ever committed (put_mutex)
  std::atomic<std::uint64_t> tail;  // the commit (put_mutex); read by getters without it

  // The getters' end.
  alignas(64) pthread_mutex_t get_mutex;
  queue::ThreadWord reader;      // reading a streamed item (get_mutex)
  std::atomic<std::uint64_t> gets;  // whole items and first chunks ever taken (get_mutex)
  std::atomic<std::uint64_t> head;  // get_mutex; read by putters without it
  std::uint64_t credits;         // task_done() calls made on another process's behalf (get_mutex)
  struct Owed {
    std::int32_t pid;     // a consumer process
    std::uint32_t count;  // items it got and has not task_done; 0: a free slot
  } owed[queue::owed_slots];  // get_mutex

  alignas(64) std::atomic<std::uint64_t> unfinished;  // JoinableQueue: put and not yet task_done
  alignas(64) queue::Wake data;   // getters wait for records (and for a reader to finish)
  alignas(64) queue::Wake space;  // putters wait for room (and for a writer to finish)
  alignas(64) queue::Wake done;   // join() waits for task_done()
};
static_assert(sizeof(QueueState) <= queue::state_bytes);

namespace queue {
// Holds one end's mutex, taken over from a dead holder if need be.
using Held = RobustHeld;
using Deadline = std::optional<Clock::time_point>;

// std::atomic_thread_fence(seq_cst), for the two sides of the handshake below ("announce,
// then look" against "change, then look for sleepers"). GCC's ThreadSanitizer does not
// support fences (-Wtsan: it may drop them, and a dropped fence loses wake-ups): its builds
// get a locked read-modify-write instead, which orders a store before a later load on x86.
inline void full_fence() noexcept {
#if defined(__SANITIZE_THREAD__)
  static thread_local std::atomic<unsigned> fence_word{0};
  fence_word.fetch_add(0, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// What a sleeper on `w` waits to see change: each change that is followed by a bump of w
// moves one of these first. Getters (data) watch the tail, the reader and the writer;
// putters (space) the head and the writer; join() (done) the unfinished count; all watch
// shut. Only what matters to one kind of sleeper: a join() must not wake at every get.
struct Seen {
  std::uint64_t a = 0, b = 0, c = 0;
  std::uint32_t shut = 0;
  bool operator==(const Seen&) const = default;
};
inline Seen look(const QueueState& s, const Wake& w) {
  constexpr auto acq = std::memory_order_acquire;
  Seen r;
  if (&w == &s.data) r = {s.tail.load(acq), s.reader.v.load(acq), s.writer.v.load(acq)};
  else if (&w == &s.space) r = {s.head.load(acq), s.writer.v.load(acq), 0};
  else r = {s.unfinished.load(acq), 0, 0};
  r.shut = s.shut.load(acq);
  return r;
}

// Sleeps (its end's mutex released) until the state moves from `seen`, the deadline, or a
// slice when `bounded` (a waiter that must look at a named thread's liveness now and then).
// `seen` must be looked at BEFORE the waiter reads what it decides on: the other end moves
// its fields without this end's mutex, and a change made between the decision and a later
// look would be taken for the starting point, and slept through.
inline void sleep_on(Held& held, Wake& w, const QueueState& s, const Seen& seen, const Deadline& deadline,
                     bool bounded) {
  held.unlock();
  // The other end is often about to move: catching that awake saves a futex wake on its
  // side and a sleep on ours (the difference between ~0.7 and ~2M items/s).
  for (int i = 0; i < spin_before_sleep; ++i) {
    if (look(s, w) != seen) return held.lock();
    cpu_relax();
  }
  for (int i = 0; i < yield_before_sleep; ++i) {
    if (look(s, w) != seen) return held.lock();
    sched_yield();
  }
  Clock::time_point until = deadline ? *deadline : Clock::time_point::max();
  if (bounded) until = std::min(until, Clock::now() + liveness_slice);
  // Announce, then look once more: a waker that missed the announcement made its change
  // before it looked (the fences order the two), so this look sees it.
  w.waiters.fetch_add(1, std::memory_order_seq_cst);
  full_fence();
  const std::uint32_t seq = w.seq.load(std::memory_order_acquire);
  if (look(s, w) == seen)
    futex_wait(w.seq, seq, until == Clock::time_point::max() ? nullptr : &until, FutexScope::shared);
  w.waiters.fetch_sub(1, std::memory_order_seq_cst);
  held.lock();
}

// After a change to the state: wakes up to `count` sleepers, if any sleep.
inline void bump(Wake& w, int count) {
  full_fence();
  if (w.waiters.load(std::memory_order_relaxed) == 0) return;
  w.seq.fetch_add(1, std::memory_order_release);
  futex_wake(w.seq, count, FutexScope::shared);
}

// One item of a JoinableQueue is done (or dropped): false if none was unfinished.
inline bool finish_one(QueueState& s) {
  if (!s.joinable) return true;
  std::uint64_t n = s.unfinished.load(std::memory_order_relaxed);
  do {
    if (n == 0) return false;
  } while (!s.unfinished.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel));
  if (n == 1) bump(s.done, INT32_MAX);
  return true;
}

// This process got one more item (+1), or dropped one it had begun to get (-1). get_mutex held.
void owe(QueueState& s, int delta);
}  // namespace queue

}  // namespace parex::detail
