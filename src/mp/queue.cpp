// The byte queue under Queue, SimpleQueue and JoinableQueue (see include/parex/mp/queues.hpp).
//
// Segment layout: [QueueState, one page][ring, capacity bytes (a power of two)].
// A record is [u32 length][u32 kind][payload, padded to 8]; head and tail are byte
// positions that only grow (the ring index is pos & (capacity - 1)). Everything but the
// futex words and `tail` (read without the lock by a getter about to sleep) changes under
// `mutex`, a robust process-shared pthread mutex. A record counts once `tail` passes it and
// is gone once `head` does: a process killed while holding the mutex leaves both as they
// were before its operation, and EOWNERDEAD needs no repair beyond what follows.
//
// Items larger than a quarter of the ring stream as chunks (first, middle..., last). While
// one streams, `writer` names its thread and other putters wait; while one is being read,
// `reader` names the getter and other getters wait. A putter or getter that finds the named
// thread dead takes over: a dead writer's chunks are taken back if no getter has started
// on them, else that getter drops what it has of the item once it has drained the ring;
// a dead reader's remaining chunks are skipped.
#include <parex/mp/queues.hpp>

#include "mp/liveness.hpp"
#include "mp/robust_mutex.hpp"
#include "sync/futex.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <vector>
#include <new>
#include <pthread.h>
#include <sched.h>
#include <string>
#include <sys/syscall.h>
#include <unistd.h>

namespace parex::detail {

namespace {
constexpr std::uint32_t queue_magic = 0x51554531;  // "QUE1"
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

std::size_t padded(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

struct Thread {
  std::int32_t pid = 0, tid = 0;
  bool none() const { return tid == 0; }
  bool is_me() const { return pid == ::getpid() && tid == ::gettid(); }
  bool alive() const { return thread_alive(pid, tid); }
  static Thread me() { return {::getpid(), ::gettid()}; }
};
}  // namespace

struct QueueState {
  pthread_mutex_t mutex;
  std::uint32_t magic;
  std::uint64_t tag;       // the item type (and queue kind): a wrong handle fails to decode
  std::uint64_t capacity;  // ring bytes, a power of two
  std::uint64_t maxsize;   // items; 0: unbounded
  std::uint64_t head;      // guarded by mutex
  std::atomic<std::uint64_t> tail;  // written under mutex; read without it before sleeping
  std::uint64_t items;       // whole items and first chunks in the ring
  std::uint64_t unfinished;  // JoinableQueue: put and not yet task_done
  Thread writer;             // streaming an item in chunks
  std::uint64_t stream_start;  // where its first chunk is
  Thread reader;             // reading one
  std::uint32_t joinable;    // a JoinableQueue: get() and task_done() keep `owed`
  struct Owed {
    std::int32_t pid;        // a consumer process
    std::uint32_t count;     // items it got and has not task_done; 0: a free slot
  } owed[owed_slots];        // guarded by mutex
  std::uint64_t credits;     // task_done() calls made on another process's behalf
  std::atomic<std::uint32_t> shut;  // 0, shut_down, shut_down_now: changed under mutex
  alignas(64) std::atomic<std::uint32_t> data_seq;
  std::atomic<std::uint32_t> data_waiters;
  alignas(64) std::atomic<std::uint32_t> space_seq;
  std::atomic<std::uint32_t> space_waiters;
  alignas(64) std::atomic<std::uint32_t> done_seq;
  std::atomic<std::uint32_t> done_waiters;
};
static_assert(sizeof(QueueState) <= state_bytes);

namespace {
// Held: the queue's mutex, taken over from a dead holder if need be.
struct Held : RobustHeld {
  explicit Held(QueueState& s) : RobustHeld(s.mutex) {}
};

using Deadline = std::optional<Clock::time_point>;

// Sleeps on word (lock released) until it moves, the deadline, or a slice when `bounded`.
void sleep_on(Held& held, std::atomic<std::uint32_t>& word, std::atomic<std::uint32_t>& waiters, std::uint32_t seen,
              const Deadline& deadline, bool bounded) {
  held.unlock();
  // The other side is often about to move the word: catching that awake saves a futex
  // wake on its side and a sleep on ours (the difference between ~0.7 and ~2M items/s).
  for (int i = 0; i < spin_before_sleep; ++i) {
    if (word.load(std::memory_order_acquire) != seen) return held.lock();
    cpu_relax();
  }
  for (int i = 0; i < yield_before_sleep; ++i) {
    if (word.load(std::memory_order_acquire) != seen) return held.lock();
    sched_yield();
  }
  Clock::time_point until = deadline ? *deadline : Clock::time_point::max();
  if (bounded) until = std::min(until, Clock::now() + liveness_slice);
  waiters.fetch_add(1, std::memory_order_seq_cst);
  futex_wait(word, seen, until == Clock::time_point::max() ? nullptr : &until, FutexScope::shared);
  waiters.fetch_sub(1, std::memory_order_seq_cst);
  held.lock();
}

void bump(std::atomic<std::uint32_t>& word, std::atomic<std::uint32_t>& waiters, int count) {
  word.fetch_add(1, std::memory_order_seq_cst);
  if (waiters.load(std::memory_order_seq_cst) != 0) futex_wake(word, count, FutexScope::shared);
}

void copy_in(std::byte* ring, std::uint64_t cap, std::uint64_t pos, const void* src, std::size_t n) {
  const std::size_t off = pos & (cap - 1), first = std::min<std::size_t>(n, cap - off);
  std::memcpy(ring + off, src, first);
  std::memcpy(ring, static_cast<const std::byte*>(src) + first, n - first);
}
void copy_out(const std::byte* ring, std::uint64_t cap, std::uint64_t pos, void* dst, std::size_t n) {
  const std::size_t off = pos & (cap - 1), first = std::min<std::size_t>(n, cap - off);
  std::memcpy(dst, ring + off, first);
  std::memcpy(static_cast<std::byte*>(dst) + first, ring, n - first);
}

// ---- a JoinableQueue's consumers (mutex held in all of these) -------------------------
// This process got one more item (+1), or dropped one it had begun to get (-1).
void owe(QueueState& s, int delta) {
  if (!s.joinable) return;
  const std::int32_t me = ::getpid();
  QueueState::Owed* free_slot = nullptr;
  for (auto& o : s.owed) {
    if (o.count != 0 && o.pid == me) {
      o.count = static_cast<std::uint32_t>(static_cast<std::int64_t>(o.count) + delta);
      return;
    }
    if (o.count == 0 && !free_slot) free_slot = &o;
  }
  if (delta > 0 && free_slot) *free_slot = {me, 1};
}

// One task_done(): from this process's count if it owes any; else it is made on another
// process's behalf (which one cannot be known), and counts as a credit against the
// counts of dead consumers: join() then blames a dead consumer only for what the credits
// do not cover, and never a process that owes nothing.
void settle(QueueState& s) {
  if (!s.joinable) return;
  const std::int32_t me = ::getpid();
  for (auto& o : s.owed)
    if (o.count != 0 && o.pid == me) {
      --o.count;
      return;
    }
  ++s.credits;
}

// A consumer that died owing task_done() calls that no credit covers: join() would wait
// for it for ever.
std::optional<QueueState::Owed> dead_consumer(QueueState& s) {
  std::uint64_t dead_owe = 0;
  std::optional<QueueState::Owed> first;
  for (auto& o : s.owed)
    if (o.count != 0 && !process_alive(o.pid)) {
      dead_owe += o.count;
      if (!first) first = o;
    }
  if (!first || dead_owe <= s.credits) return std::nullopt;
  first->count = static_cast<std::uint32_t>(std::min<std::uint64_t>(first->count, dead_owe - s.credits));
  return first;
}
bool anyone_owes(const QueueState& s) {
  for (auto& o : s.owed)
    if (o.count != 0) return true;
  return false;
}
}  // namespace

QueueCore::QueueCore(std::size_t maxsize, std::size_t capacity_bytes, std::uint64_t type_tag, bool joinable) {
  std::size_t cap = 4096;
  while (cap < capacity_bytes && cap < (std::size_t{1} << 40)) cap <<= 1;
  segment_ = Segment::create(state_bytes + cap, "queue");
  state_ = new (segment_->data()) QueueState{};
  init_robust_mutex(state_->mutex, PTHREAD_MUTEX_NORMAL, "a queue's lock");
  state_->magic = queue_magic;
  state_->tag = type_tag;
  state_->capacity = cap;
  state_->maxsize = maxsize;
  state_->joinable = joinable ? 1 : 0;
  ring_ = segment_->data() + state_bytes;
}

QueueCore::QueueCore(Reader& r, std::uint64_t type_tag) {
  std::uint64_t offset = 0;
  segment_ = decode_handle(r, offset, state_bytes);
  state_ = reinterpret_cast<QueueState*>(segment_->data());
  if (offset != 0 || state_->magic != queue_magic || state_->tag != type_tag ||
      state_->capacity > segment_->size() - state_bytes)
    throw SharedObjectError("this handle does not refer to a queue of this item type");
  ring_ = segment_->data() + state_bytes;
}

void QueueCore::encode_to(Writer& w) const { encode_handle(w, segment_, 0); }

void QueueCore::check_open() const {
  if (closed_) throw ValueError("this queue handle was closed");
}

void QueueCore::check_not_shut_down() const {
  if (state_->shut.load(std::memory_order_acquire) != open) throw ShutDown();
}

std::size_t QueueCore::qsize() const {
  check_open();
  Held h(*state_);
  return state_->items;
}
std::size_t QueueCore::maxsize() const noexcept { return state_->maxsize; }
std::size_t QueueCore::capacity() const noexcept { return state_->capacity; }

void QueueCore::count_unfinished() {
  Held held(*state_);
  ++state_->unfinished;
}

void QueueCore::put_in_ring(std::span<const std::byte> item, std::chrono::nanoseconds timeout, bool counted) {
  QueueState& s = *state_;
  const std::uint64_t cap = s.capacity;
  const std::size_t chunk_max = cap / 4 - record_header - 8;
  const bool chunked = item.size() > chunk_max;
  // Streaming waits for getters chunk by chunk: an unbounded put (at_once) hands a big
  // item to the feeder instead, a bounded put_nowait refuses it.
  if (chunked && timeout == std::chrono::nanoseconds(0)) throw Full();
  const Deadline deadline = deadline_of(timeout);
  Held held(s);
  auto free_bytes = [&] { return cap - (s.tail.load(std::memory_order_relaxed) - s.head); };
  auto write = [&](Kind kind, std::span<const std::byte> body, const std::uint64_t* total) {
    const std::uint32_t len = static_cast<std::uint32_t>(body.size() + (total ? 8 : 0));
    std::uint64_t pos = s.tail.load(std::memory_order_relaxed);
    const std::uint32_t head[2] = {len, kind};
    copy_in(ring_, cap, pos, head, record_header);
    if (total) copy_in(ring_, cap, pos + record_header, total, 8);
    copy_in(ring_, cap, pos + record_header + (total ? 8 : 0), body.data(), body.size());
    s.tail.store(pos + record_header + padded(len), std::memory_order_release);  // the commit
    if (kind == whole || kind == first) {
      ++s.items;
      if (!counted) ++s.unfinished;  // a feeder's item was counted when put() took it
    }
  };
  // Wait for: no other streaming writer, room under maxsize, bytes for the first record.
  const std::size_t first_body = chunked ? chunk_max : item.size();
  for (;;) {
    if (s.shut.load(std::memory_order_relaxed) != open) {
      if (counted && s.unfinished != 0 && --s.unfinished == 0) bump(s.done_seq, s.done_waiters, INT32_MAX);
      throw ShutDown();
    }
    if (!s.writer.none() && !s.writer.is_me()) {
      if (!s.writer.alive() && s.head <= s.stream_start) {
        // It died mid-stream and no getter has started its item: take its chunks back
        // (its first chunk, and the counts with it, may not have been committed).
        if (s.tail.load(std::memory_order_relaxed) > s.stream_start) {
          --s.items;
          --s.unfinished;
        }
        s.tail.store(s.stream_start, std::memory_order_release);
        s.writer = {};
        bump(s.space_seq, s.space_waiters, INT32_MAX);
        continue;
      }
      if (!s.writer.alive() && (s.reader.none() || !s.reader.alive())) {
        // It died mid-stream, and the getter that took its first chunk died too: its
        // remaining chunks are skipped by getters.
        s.writer = {};
        --s.unfinished;
        bump(s.space_seq, s.space_waiters, INT32_MAX);
        continue;
      }
      // Alive, or dead with a live getter assembling its item: that getter ends it.
    } else if ((s.maxsize == 0 || s.items < s.maxsize) && free_bytes() >= record_header + padded(first_body + 8)) {
      break;
    }
    if (passed(deadline)) throw Full();
    sleep_on(held, s.space_seq, s.space_waiters, s.space_seq.load(std::memory_order_seq_cst), deadline,
             !s.writer.none());
    // A seq read after unlocking could miss a bump: read it under the lock (above), and the
    // bumps happen under the lock too.
  }
  if (!chunked) {
    write(whole, item, nullptr);
    bump(s.data_seq, s.data_waiters, 1);
    return;
  }
  // Streaming: name ourselves, then chunk by chunk as room appears (no deadline past the
  // first chunk: a half-sent item is worse than a late one).
  s.writer = Thread::me();
  s.stream_start = s.tail.load(std::memory_order_relaxed);
  const std::uint64_t total = item.size();
  std::size_t sent = 0;
  while (sent < item.size()) {
    const std::size_t n = std::min(chunk_max, item.size() - sent);
    while (free_bytes() < record_header + padded(n + 8))
      sleep_on(held, s.space_seq, s.space_waiters, s.space_seq.load(std::memory_order_seq_cst), std::nullopt, false);
    const Kind kind = sent == 0 ? first : (sent + n == item.size() ? last : middle);
    write(kind, item.subspan(sent, n), kind == first ? &total : nullptr);
    sent += n;
    bump(s.data_seq, s.data_waiters, INT32_MAX);
  }
  s.writer = {};
  bump(s.space_seq, s.space_waiters, INT32_MAX);  // putters waiting for the stream to end
}

bool QueueCore::get(Buffer& out, std::chrono::nanoseconds timeout) {
  check_open();
  // Named the reader of a chunked item and then failed (no memory, a corrupt record):
  // let the others go on.
  struct Unname {
    QueueState& s;
    ~Unname() {
      if (std::uncaught_exceptions() == 0) return;
      try {
        RobustHeld held(s.mutex);  // get()'s own hold ended before this runs
        if (!s.reader.is_me()) return;
        s.reader = {};
        bump(s.data_seq, s.data_waiters, INT32_MAX);
      } catch (...) {  // the lock itself failed: nothing more can be done
      }
    }
  } unname{*state_};
  QueueState& s = *state_;
  const std::uint64_t cap = s.capacity;
  const Deadline deadline = deadline_of(timeout);
  bool assembling = false;
  const std::size_t base = out.size();
  Held held(s);
  auto consumed = [&](std::uint64_t bytes) {
    s.head += bytes;
    bump(s.space_seq, s.space_waiters, INT32_MAX);
  };
  auto stop_assembling = [&] {
    assembling = false;
    owe(s, -1);  // the item it had begun to get is dropped
    out.truncate(base);
    s.reader = {};
    bump(s.data_seq, s.data_waiters, INT32_MAX);
  };
  for (;;) {
    if (!assembling && !s.reader.none() && !s.reader.is_me()) {
      if (s.reader.alive()) {
        if (passed(deadline)) return false;
        sleep_on(held, s.data_seq, s.data_waiters, s.data_seq.load(std::memory_order_seq_cst), deadline, true);
        continue;
      }
      s.reader = {};  // the rest of its item's chunks are skipped below
    }
    const std::uint64_t tail = s.tail.load(std::memory_order_relaxed);
    const std::uint32_t shut = s.shut.load(std::memory_order_relaxed);
    // Shut down: once empty, but an item being assembled still gets its last chunks (its
    // writer streams them to the end) unless shut down now, which dropped them.
    if (shut == shut_down_now || (s.head == tail && shut != open && !assembling)) {
      if (assembling) {  // its remaining chunks were dropped: so is the item
        stop_assembling();
        if (s.unfinished != 0 && --s.unfinished == 0) bump(s.done_seq, s.done_waiters, INT32_MAX);
      }
      throw ShutDown();
    }
    if (s.head == tail) {
      if (assembling && !s.writer.none() && !s.writer.alive()) {  // its writer died mid-item
        s.writer = {};
        --s.unfinished;
        stop_assembling();
        bump(s.space_seq, s.space_waiters, INT32_MAX);
        continue;
      }
      if (!assembling && (passed(deadline))) {
        return false;
      }
      sleep_on(held, s.data_seq, s.data_waiters, s.data_seq.load(std::memory_order_seq_cst),
               assembling ? std::nullopt : deadline, assembling);
      continue;
    }
    std::uint32_t head[2];
    copy_out(ring_, cap, s.head, head, record_header);
    const std::uint32_t len = head[0], kind = head[1];
    if (kind < whole || kind > last || record_header + padded(len) > tail - s.head)
      throw ProtocolError("a corrupt record in a shared queue");
    const std::uint64_t body = s.head + record_header, bytes = record_header + padded(len);
    switch (kind) {
      case whole:
        if (assembling) stop_assembling();  // cannot happen with live writers; be safe
        out.reserve_more(len);
        copy_out(ring_, cap, body, out.data() + out.size(), len);
        out.advance(len);
        --s.items;
        consumed(bytes);
        owe(s, +1);
        return true;
      case first: {
        if (assembling) stop_assembling();
        std::uint64_t total = 0;
        if (len < 8) throw ProtocolError("a corrupt record in a shared queue");
        copy_out(ring_, cap, body, &total, 8);
        out.reserve_more(total);
        copy_out(ring_, cap, body + 8, out.data() + out.size(), len - 8);
        out.advance(len - 8);
        assembling = true;
        s.reader = Thread::me();
        --s.items;
        consumed(bytes);
        owe(s, +1);  // taken: if this process dies before the last chunk, it owes the item
        continue;
      }
      case middle:
      case last:
        if (!assembling) {  // a dead reader's or a dropped item's chunk
          consumed(bytes);
          continue;
        }
        out.reserve_more(len);
        copy_out(ring_, cap, body, out.data() + out.size(), len);
        out.advance(len);
        consumed(bytes);
        if (kind == last) {
          s.reader = {};
          bump(s.data_seq, s.data_waiters, INT32_MAX);
          return true;
        }
        continue;
    }
  }
}

bool QueueCore::wait_readable(std::chrono::nanoseconds timeout) {
  QueueState& s = *state_;
  const Deadline deadline = deadline_of(timeout);
  Held held(s);
  while (s.head == s.tail.load(std::memory_order_relaxed)) {
    if (passed(deadline)) return false;
    sleep_on(held, s.data_seq, s.data_waiters, s.data_seq.load(std::memory_order_seq_cst), deadline, false);
  }
  // A put wakes one waiter: if it was this one, which takes nothing, pass the wake on to
  // a getter that would take the item.
  if (s.data_waiters.load(std::memory_order_seq_cst) != 0) bump(s.data_seq, s.data_waiters, 1);
  return true;
}

void QueueCore::shutdown(bool immediate) {
  QueueState& s = *state_;
  Held held(s);
  s.shut.store(std::max<std::uint32_t>(s.shut.load(std::memory_order_relaxed), immediate ? shut_down_now : shut_down),
               std::memory_order_relaxed);
  if (immediate) {  // as Python: the items dropped count as done for join()
    s.unfinished -= std::min(s.unfinished, s.items);
    s.items = 0;
    s.head = s.tail.load(std::memory_order_relaxed);
  }
  bump(s.data_seq, s.data_waiters, INT32_MAX);
  bump(s.space_seq, s.space_waiters, INT32_MAX);
  if (s.unfinished == 0) bump(s.done_seq, s.done_waiters, INT32_MAX);
}

void QueueCore::task_done() {
  QueueState& s = *state_;
  Held held(s);
  if (s.unfinished == 0) throw ValueError("task_done() called more times than there were items");
  settle(s);
  if (--s.unfinished == 0) bump(s.done_seq, s.done_waiters, INT32_MAX);
}

bool QueueCore::join(std::chrono::nanoseconds timeout) {
  QueueState& s = *state_;
  const Deadline deadline = deadline_of(timeout);
  Held held(s);
  while (s.unfinished != 0) {
    // Only a join() without a timeout gives up on a dead consumer: one with a timeout
    // keeps Python's meaning (false once it ran out).
    if (!deadline)
      if (auto dead = dead_consumer(s)) throw ConsumerDiedError(dead->pid, dead->count);
    if (passed(deadline)) return false;
    sleep_on(held, s.done_seq, s.done_waiters, s.done_seq.load(std::memory_order_seq_cst), deadline,
             !deadline && anyone_owes(s));
  }
  return true;
}

}  // namespace parex::detail
