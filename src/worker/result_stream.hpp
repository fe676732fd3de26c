// worker/result_stream.hpp - the pipe worker's two channels to the pool besides its input
// pipe: the results stream (outcomes into the shared results buffer, sent as frames by the
// main thread or by a flusher thread while a call runs) and the argument arena's read-only
// view. Internal to worker.cpp, which includes it; see worker.cpp's header for the loop.
#pragma once

#include <parex/detail/wire/frame.hpp>
#include <parex/detail/wire/records.hpp>

#include "process/shared_page.hpp"
#include "sync/futex.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <fcntl.h>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <poll.h>
#include <span>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <thread>
#include <unistd.h>

namespace parex::detail::worker_io {

using Clock = std::chrono::steady_clock;

// Flush tunables (flush_bytes, flush_latency: worker/run_calls.hpp). While a call runs,
// the flusher thread sends results that have waited flusher_latency: a fast result never
// waits for a slow neighbour in its batch.
constexpr auto flusher_latency = std::chrono::microseconds(500);
// A results buffer filled past this many times its initial size gives the memory beyond
// its initial size back once drained (a hole punched; the file never shrinks, since the
// pool maps it and a shrink would fault there: process/memfd.hpp): one huge result must
// not pin its memory for the worker's life.
constexpr std::size_t keep_results_factor = 4;

[[noreturn]] inline void die(int code, const char* what) {
  std::fprintf(stderr, "parex worker %d: %s\n", static_cast<int>(::getpid()), what);
  std::_Exit(code);
}

inline void write_all(int fd, iovec* v, int n) {
  while (n > 0) {
    ssize_t w = ::writev(fd, v, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE) std::_Exit(0);  // the pool is gone: nobody wants our results
      die(exit_channel_lost, "writing to the pool failed (was its pipe closed by the code this worker ran?)");
    }
    while (n > 0 && static_cast<std::size_t>(w) >= v->iov_len) {
      w -= static_cast<ssize_t>(v->iov_len);
      ++v;
      --n;
    }
    if (n > 0) {
      v->iov_base = static_cast<char*>(v->iov_base) + w;
      v->iov_len -= static_cast<std::size_t>(w);
    }
  }
}

inline void write_all(int fd, const std::byte* p, std::size_t n) {
  iovec v{const_cast<std::byte*>(p), n};
  write_all(fd, &v, 1);
}

/// The worker's two pipes as it received them. The code it runs may close them or put
/// other files in their place (closing every fd, dup2 of /dev/null): then what is written
/// reaches nobody, and what is read is not the pool's. Checked before each results frame
/// (one fstat) and whenever the input fails.
class Channel {
 public:
  Channel(int in, int out) : in_(in), out_(out), in_id_(id_of(in)), out_id_(id_of(out)) {}
  bool intact() const noexcept { return id_of(in_) == in_id_ && output_intact(); }
  bool output_intact() const noexcept { return id_of(out_) == out_id_; }

 private:
  struct Id {
    dev_t dev = 0;
    ino_t ino = 0;
    bool operator==(const Id&) const = default;
  };
  static Id id_of(int fd) noexcept {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return {};
    return {st.st_dev, st.st_ino};
  }
  int in_, out_;
  Id in_id_, out_id_;
};

/// The results buffer, living in the memfd after the WorkerShared page, and the two
/// threads that send from it. The main thread appends outcomes (Writer) and commits them;
/// either thread sends [sent, committed) as one frame under mutex_, which also guards
/// moving the mapping (growth) and rewinding it once everything is sent and the pool has
/// read what it was sent by reference (a shared_results frame: the bytes stay here).
class ResultStream final : public Writer {
 public:
  /// shared_from: a frame of at least this many bytes stays in the buffer; the pool reads
  /// it there (FrameKind::shared_results) and acknowledges it (WorkerShared::acked).
  ResultStream(int shm_fd, int out_fd, std::size_t shared_from, const Channel& channel)
      : Writer(&grow), fd_(shm_fd), out_fd_(out_fd), shared_from_(shared_from), channel_(channel) {
    map(shm_header_bytes + shm_initial_data_bytes);
    flusher_ = std::thread([this] { flusher_main(); });
  }

  WorkerShared& shared() noexcept { return *static_cast<WorkerShared*>(base_); }

  /// After an item's outcome is complete in the buffer. Only the byte offset is shared
  /// with the sender (one atomic: a byte count and an item count could be read from two
  /// different moments); the sender counts the outcomes it sends itself.
  void commit(std::uint64_t finished) noexcept {
    if (committed_items_ == sent_items_.load(std::memory_order_acquire))
      pending_since_ = Clock::now();  // the first unsent result
    committed_items_ = finished;
    committed_.store(size_, std::memory_order_release);
    WorkerShared& sh = shared();
    sh.out_end.store(size_, std::memory_order_release);
    sh.finished.store(finished, std::memory_order_release);
  }
  bool pending() const noexcept { return committed_items_ != sent_items_.load(std::memory_order_acquire); }
  Clock::time_point pending_since() const noexcept { return pending_since_; }

  /// Before an item starts while results wait: let the flusher send them if it runs long.
  void arm() noexcept {
    if (!pending() || armed_.load(std::memory_order_relaxed)) return;
    deadline_ns_.store((pending_since_ + flusher_latency).time_since_epoch().count(), std::memory_order_relaxed);
    armed_.store(1, std::memory_order_release);
    futex_wake(armed_, 1);
  }

  void add_busy(Clock::duration d) noexcept { busy_ns_.fetch_add(d.count(), std::memory_order_relaxed); }

  /// Sends everything committed; then rewinds the buffer (main thread only). A buffer the
  /// pool still reads from is left as it is while it is small: outcomes are appended.
  void flush() {
    std::lock_guard lock(mutex_);
    send_locked();
    rewind_locked(false);
  }

  /// flush, then waits until the pool has read what it was sent by reference and rewinds:
  /// before the worker idles, so that an idle worker's buffer is small again.
  void settle() {
    std::lock_guard lock(mutex_);
    send_locked();
    rewind_locked(true);
  }

  /// After a flusher flush or a frame sent by reference, the main thread rewinds at its
  /// next call boundary.
  void maybe_rewind() {
    if (size_ != 0 && sent_bytes_.load(std::memory_order_acquire) == size_) {
      std::lock_guard lock(mutex_);
      rewind_locked(false);
    }
  }

 private:
  void send_locked() {
    const std::size_t to = committed_.load(std::memory_order_acquire);
    const std::size_t from = sent_bytes_.load(std::memory_order_relaxed);
    if (to == from) return;
    std::uint64_t n = 0;
    for (Reader r({data_ + from, to - from}); !r.empty(); ++n) read_outcome(r);
    // Results written to a pipe that is no longer ours would be lost, and counted as sent:
    // exit instead, and the pool salvages them from this buffer.
    if (!channel_.output_intact())
      die(exit_channel_lost, "its pipe to the pool was closed or replaced by the code it ran");
    const std::uint64_t items_from = sent_items_.load(std::memory_order_relaxed);
    const std::uint64_t items_to = items_from + n;
    const auto us = busy_ns_.exchange(0, std::memory_order_relaxed) / 1000;
    const auto busy_us = static_cast<std::uint32_t>(std::min<std::int64_t>(us, UINT32_MAX));
    if (to - from >= shared_from_) {  // the bytes stay here: the pool maps them
      std::uint64_t where[2] = {from, to - from};
      FrameHeader h = frame_header(FrameKind::shared_results, sizeof where, static_cast<std::uint32_t>(n), busy_us);
      iovec v[2] = {{&h, sizeof h}, {where, sizeof where}};
      write_all(out_fd_, v, 2);
      ++shared_sent_;
    } else {
      FrameHeader h = frame_header(FrameKind::results, to - from, static_cast<std::uint32_t>(n), busy_us);
      iovec v[2] = {{&h, sizeof h}, {data_ + from, to - from}};
      write_all(out_fd_, v, 2);
    }
    // Only now are these results the parent's: until the write completed, a crash would
    // have left them here for it to salvage.
    WorkerShared& sh = shared();
    sh.publish_unsent(items_to, to);
    sent_items_.store(items_to, std::memory_order_release);
    sent_bytes_.store(to, std::memory_order_release);
  }

  // Back to an empty buffer once everything in it is sent and the pool has read what it
  // was sent by reference. Waits for that if `wait`, or if the buffer has grown past what
  // it keeps: a worker whose input never runs dry would otherwise grow it for ever, each
  // frame sent before the pool has read the previous one (size_ is the main thread's).
  void rewind_locked(bool wait) {
    if (sent_bytes_.load(std::memory_order_relaxed) != size_) return;
    if (!acked()) {
      if (!wait && size_ <= keep_results_factor * shm_initial_data_bytes) return;
      wait_acked();
    }
    WorkerShared& sh = shared();
    sh.out_end.store(0, std::memory_order_release);
    sh.publish_unsent(sent_items_.load(std::memory_order_relaxed), 0);
    // Everything written since the last rewind lies below size_, or below the capacity of
    // a growth since (an encode rolled back, a prefault past what was committed); the pool
    // has unmapped it: it acknowledged every frame sent by reference.
    const std::size_t written = std::max(size_, grown_to_);
    if (written > keep_results_factor * shm_initial_data_bytes)
      ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(shm_header_bytes + shm_initial_data_bytes),
                  static_cast<off_t>(written - shm_initial_data_bytes));
    grown_to_ = 0;
    size_ = 0;
    committed_.store(0, std::memory_order_release);
    sent_bytes_.store(0, std::memory_order_release);
  }

  bool acked() noexcept { return shared().acked.load(std::memory_order_acquire) == shared_sent_; }

  // The pool acknowledges as soon as it has read the frame; a pool that has gone away
  // (its end of the pipe closed) never will.
  void wait_acked() {
    while (!acked()) {
      const std::uint32_t seen = shared().acked.load(std::memory_order_acquire);
      const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(100);
      if (seen == shared_sent_ || futex_wait(shared().acked, seen, &deadline, FutexScope::shared)) continue;
      pollfd p{out_fd_, 0, 0};
      if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLERR | POLLHUP))) std::_Exit(0);
    }
  }

  void flusher_main() {
    for (;;) {
      while (armed_.load(std::memory_order_acquire) == 0) futex_wait(armed_, 0, nullptr);
      const Clock::time_point deadline{Clock::duration(deadline_ns_.load(std::memory_order_relaxed))};
      std::this_thread::sleep_until(deadline);
      armed_.store(0, std::memory_order_release);  // before sending: a re-arm from now on counts
      std::lock_guard lock(mutex_);
      send_locked();
    }
  }

  void map(std::size_t total) {
    void* p = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) die(exit_bad_setup, "cannot map the shared results buffer");
    set(p, total);
  }
  void remap(std::size_t total) {
    void* p = ::mremap(base_, mapped_, total, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) throw std::bad_alloc();
    set(p, total);
  }
  void set(void* p, std::size_t total) {
    base_ = p;
    mapped_ = total;
    data_ = static_cast<std::byte*>(p) + shm_header_bytes;
    cap_ = total - shm_header_bytes;
  }
  static void grow(Writer& w, std::size_t min_capacity) {
    auto& s = static_cast<ResultStream&>(w);
    std::lock_guard lock(s.mutex_);  // the flusher may be writing from the old mapping
    const std::size_t old_cap = s.cap_;
    const std::size_t cap = std::max(min_capacity, s.cap_ * 2);
    // The file only grows (it is sealed against shrinking); it may already be longer than
    // this mapping: after an earlier growth, or grown by the code this worker ran.
    struct stat st {};
    if (::fstat(s.fd_, &st) != 0) throw std::bad_alloc();
    if (static_cast<std::size_t>(st.st_size) < shm_header_bytes + cap &&
        ::ftruncate(s.fd_, static_cast<off_t>(shm_header_bytes + cap)) != 0)
      throw std::bad_alloc();
    s.remap(shm_header_bytes + cap);
    s.grown_to_ = s.cap_;
    prefault(s.data_ + old_cap, min_capacity - old_cap);  // what is about to be written, in one system call
  }

  int fd_;
  int out_fd_;
  std::size_t shared_from_;
  const Channel& channel_;
  std::uint32_t shared_sent_ = 0;  // shared_results frames sent (wraps, as WorkerShared::acked); under mutex_
  std::size_t grown_to_ = 0;       // capacity after a growth since the last rewind (0: none); under mutex_
  void* base_ = nullptr;
  std::size_t mapped_ = 0;
  std::mutex mutex_;  // sending, growing, rewinding
  std::atomic<std::size_t> committed_{0};   // bytes of complete outcomes
  std::uint64_t committed_items_ = 0;        // main thread
  std::atomic<std::size_t> sent_bytes_{0};
  std::atomic<std::uint64_t> sent_items_{0};
  std::atomic<std::int64_t> busy_ns_{0};
  Clock::time_point pending_since_{};  // main thread
  std::atomic<std::uint32_t> armed_{0};  // futex word: the flusher has a deadline
  std::atomic<Clock::rep> deadline_ns_{0};
  std::thread flusher_;  // never joined: the worker ends with exit()
};

/// The pool's argument arena, read-only here (process/arena.hpp).
class ArenaView {
 public:
  explicit ArenaView(int fd) {
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_size <= 0) return;
    void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) return;
    base_ = static_cast<const std::byte*>(p);
    size_ = static_cast<std::size_t>(st.st_size);
  }
  /// The bytes at [offset, offset + length), faulted in with one system call.
  std::span<const std::byte> at(std::uint64_t offset, std::uint64_t length) const {
    if (!base_ || offset > size_ || length > size_ - offset) throw ProtocolError("arguments outside the arena");
    const auto page = std::uintptr_t{4096};
    const auto b = reinterpret_cast<std::uintptr_t>(base_ + offset) & ~(page - 1);
    const auto e = reinterpret_cast<std::uintptr_t>(base_ + offset + length);
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
    ::madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_READ);
    return {base_ + offset, static_cast<std::size_t>(length)};
  }

 private:
  const std::byte* base_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace parex::detail::worker_io
