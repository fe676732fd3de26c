// parex/mp/queues.hpp - Queue, SimpleQueue, JoinableQueue shared by processes (Python's
// multiprocessing.Queue, SimpleQueue, JoinableQueue).
//
//   parex::Queue<std::string> q;             // maxsize 0: unbounded
//   q.put("hello");                          // from any process or thread holding a handle
//   std::string s = q.get();                 // q.get(1s) throws parex::Empty after a second
//
// T is any parex Serializable type. Items are encoded by the putter and decoded by the
// getter; an item of any size works (past a quarter of the ring it streams through in
// chunks). FIFO per producer; nothing lost, nothing duplicated.
//
// Underneath: a byte ring in a memfd (`capacity_bytes`, 4 MiB by default), two robust
// process-shared mutexes (one for putters, one for getters: the two ends never wait for
// each other's lock), and futex words for "data" and "space": a put or a get that need not
// wait makes no system call, and nothing passes through a pipe. An unbounded queue's
// put never waits: when the ring is full, the item waits in the putting process and a
// feeder thread moves it in as room appears (Python's design); as in Python, that
// process's normal exit waits until its waiting items are in the ring.
//
// What survives a SIGKILL: a putter or getter killed mid-operation corrupts nothing and
// blocks no one. A record becomes visible only when complete; a killed getter leaves the
// item it was reading in place, except an item streamed in chunks whose first chunk it had
// taken (that item is lost; the others go on). An item streamed by a putter that dies
// before its last chunk is dropped. Items still waiting in a putter that is SIGKILLed are
// lost, as Python's buffered items are.
#pragma once

#include <parex/detail/mp/segment.hpp>
#include <parex/errors.hpp>
#include <parex/mp/sharedctypes.hpp>
#include <parex/serialize.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

namespace parex {

namespace detail {
struct QueueState;
struct QueueFeeder;
// The ring's size: small enough to stay in memory the processes have already touched (a
// fresh page costs a fault in each process: with a 256 MiB ring, 1 KiB items ran at a
// third of the speed), large enough that a burst rarely waits.
inline constexpr std::size_t default_queue_bytes = std::size_t{4} << 20;

/// The byte queue under the typed ones. Thread-safe; one per handle.
class QueueCore {
 public:
  QueueCore(std::size_t maxsize, std::size_t capacity_bytes, std::uint64_t type_tag, bool joinable = false);
  QueueCore(Reader& r, std::uint64_t type_tag);
  /// Another handle to the same queue (with no waiting items of its own).
  QueueCore(const QueueCore& o)
      : keepalive(o.keepalive), reader_gone(o.reader_gone), segment_(o.segment_), state_(o.state_), ring_(o.ring_),
        closed_(o.closed_) {}
  QueueCore& operator=(const QueueCore&) = delete;

  /// timeout no_timeout: none. @throws Full when it ran out; ValueError if closed here.
  /// Unbounded queues never wait: past the ring's room, items wait in this process (a
  /// feeder thread moves them in as room appears, and the process's exit waits for it).
  void put(std::span<const std::byte> item, std::chrono::nanoseconds timeout);
  /// Into the ring, waiting at most timeout. counted: a JoinableQueue has counted the
  /// item already (count_unfinished, when put() gave it to the feeder).
  void put_in_ring(std::span<const std::byte> item, std::chrono::nanoseconds timeout, bool counted = false);
  void count_unfinished();
  /// Kept alive with every copy of this core, the feeder's included (a pipe's end: the
  /// sender stays a holder while its feeder still has messages).
  std::shared_ptr<void> keepalive;
  /// Whether nobody can ever read this queue again (a pipe's end: no live process holds
  /// the receiving end): an exit does not wait for the feeder then. Empty: ask /proc.
  std::function<bool()> reader_gone;
  /// Appends the next item's bytes to out. false when it ran out of time.
  bool get(Buffer& out, std::chrono::nanoseconds timeout);
  /// Waits until an item is there to get; false when it ran out of time.
  bool wait_readable(std::chrono::nanoseconds timeout);
  /// @throws ValueError if closed here.
  std::size_t qsize() const;
  std::size_t capacity() const noexcept;
  std::size_t maxsize() const noexcept;
  void task_done();
  bool join(std::chrono::nanoseconds timeout);
  void close() noexcept { closed_ = true; }
  bool closed() const noexcept { return closed_; }
  /// Python 3.13's shutdown (see BasicQueue::shutdown). For every handle, in every process.
  void shutdown(bool immediate);
  /// Waits until this handle's waiting items are in the ring, or can never be read
  /// (Python's join_thread). @throws ValueError unless closed.
  void join_thread();
  /// This process's exit does not wait for this handle's waiting items.
  void cancel_join_thread() noexcept;
  void encode_to(Writer& w) const;

 private:
  void check_open() const;
  void check_not_shut_down() const;
  std::shared_ptr<Segment> segment_;
  QueueState* state_ = nullptr;
  std::byte* ring_ = nullptr;
  bool closed_ = false;
  std::atomic<bool> exit_waits_{true};  // cancel_join_thread() clears it
  QueueFeeder* make_feeder();
  // Made the first time the ring is full; owned by the process's list of feeders.
  std::atomic<QueueFeeder*> feeder_{nullptr};
};

inline constexpr std::chrono::nanoseconds forever = no_timeout;
inline constexpr std::chrono::nanoseconds at_once{0};

// One thread's scratch buffers: a put encodes here, a get copies here, no allocation.
inline Buffer& queue_scratch() {
  thread_local Buffer b;
  b.clear();
  return b;
}

/// Queue and JoinableQueue's shared face.
template <class T, bool Joinable>
class BasicQueue {
  static_assert(Serializable<T>, "parex::Queue<T>: " PAREX_DETAIL_SERIALIZABLE_FIX);

 public:
  using parex_shared_handle = void;
  /// maxsize 0: unbounded (up to capacity_bytes of backlog).
  explicit BasicQueue(std::size_t maxsize = 0, std::size_t capacity_bytes = default_queue_bytes)
      : core_(std::make_shared<QueueCore>(maxsize, capacity_bytes, tag(), Joinable)) {}

  void put(const T& item) { put_for(item, forever); }
  /// @throws Full if no room came within timeout.
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout) {
    put_for(item, clamp_timeout(timeout));
  }
  void put_nowait(const T& item) { put_for(item, at_once); }

  T get() { return get_for(forever); }
  /// @throws Empty if no item came within timeout.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return get_for(clamp_timeout(timeout));
  }
  T get_nowait() { return get_for(at_once); }

  /// Items in the queue now (a snapshot, as Python's). @throws ValueError after close().
  std::size_t qsize() const { return core_->qsize(); }
  /// @throws ValueError after close() (Python: OSError "handle is closed", from its pipe).
  bool empty() const { return qsize() == 0; }
  /// @throws ValueError after close().
  bool full() const {
    const std::size_t n = qsize();  // first: an unbounded queue's closed handle throws too
    return core_->maxsize() != 0 && n >= core_->maxsize();
  }
  /// This handle is done: put, get, qsize, empty and full throw ValueError from now on,
  /// one type for "closed" (Python raises ValueError from put and get, OSError from empty,
  /// and answers qsize and full). Items it put still reach the queue; other handles, in
  /// this process (decoded ones) or others, go on. Closing twice is harmless.
  void close() noexcept { core_->close(); }

  /// Python 3.13's shutdown(), for the queue (every handle, every process): put() throws
  /// ShutDown from now on, as does get() once the queue is empty (getters waiting wake
  /// with it). immediate: the items in the queue are dropped now, counted as done for
  /// join(), and get() throws ShutDown at once.
  void shutdown(bool immediate = false) { core_->shutdown(immediate); }
  /// Waits until the items this handle put that wait in this process (the ring was
  /// full) are in the queue, or can never be read. @throws ValueError unless closed
  /// (Python asserts it).
  void join_thread() { core_->join_thread(); }
  /// This process's exit does not wait for the items this handle still holds back (they
  /// are lost), as Python's cancel_join_thread().
  void cancel_join_thread() noexcept { core_->cancel_join_thread(); }

  /// JoinableQueue: one item got earlier is done. @throws ValueError if more than put.
  void task_done()
    requires Joinable
  {
    core_->task_done();
  }
  /// JoinableQueue: blocks until every item put has been task_done(). Beyond Python:
  /// @throws ConsumerDiedError once a process that got items died before their
  /// task_done() (Python's join() would wait for ever). join(timeout) keeps Python's
  /// meaning: false once it ran out. A task_done() made by a process for items another
  /// got is counted against the dead consumers' debts: a dead consumer is blamed only for
  /// what such calls do not cover (so with that pattern a death can go unseen, and join()
  /// waits as Python's does, but no process is ever blamed for items it does not owe).
  void join()
    requires Joinable
  {
    core_->join(forever);
  }
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout)
    requires Joinable
  {
    return core_->join(clamp_timeout(timeout));
  }

  void encode_to(Writer& w) const { core_->encode_to(w); }
  static BasicQueue decode_from(Reader& r) { return BasicQueue(std::make_shared<QueueCore>(r, tag())); }

 private:
  explicit BasicQueue(std::shared_ptr<QueueCore> c) : core_(std::move(c)) {}
  static std::uint64_t tag() noexcept { return type_tag<T>() ^ (Joinable ? 0x9e3779b97f4a7c15ULL : 0); }
  void put_for(const T& item, std::chrono::nanoseconds timeout) {
    Buffer& b = queue_scratch();
    encode<T>(b, item);
    core_->put(b.bytes(), timeout);
  }
  T get_for(std::chrono::nanoseconds timeout) {
    Buffer& b = queue_scratch();
    if (!core_->get(b, timeout)) throw Empty();
    Reader r(b.bytes());
    T v = decode<T>(r);
    if (!r.empty()) throw ProtocolError("trailing bytes after a queue item");
    return v;
  }
  std::shared_ptr<QueueCore> core_;
};
}  // namespace detail

/// A FIFO queue between processes and threads (Python's multiprocessing.Queue).
template <class T>
using Queue = detail::BasicQueue<T, false>;
/// A Queue whose consumers confirm each item with task_done(), and join() waits for all.
template <class T>
using JoinableQueue = detail::BasicQueue<T, true>;
/// Python's SimpleQueue: here the same engine as Queue (put, get, empty, close).
template <class T>
using SimpleQueue = detail::BasicQueue<T, false>;

}  // namespace parex
