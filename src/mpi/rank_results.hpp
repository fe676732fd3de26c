// mpi/rank_results.hpp - a worker rank's results: outcomes that its main thread appends
// (run_calls writes them here), sent to rank 0 as results frames. The main thread flushes
// when its input runs dry, at flush_bytes, or once results have waited flush_latency
// between items; while one call runs long, a flusher thread sends the results that wait
// behind it (after flusher_latency), so a fast result never waits for a slow neighbour,
// and drives the sends that did not complete at once (past the eager limit, a transfer
// needs the sender to call into MPI while rank 0 waits to receive it).
//
// One byte stream, sent in regions: a frame is its header plus [sent, committed) of the
// stream, posted with MPI_Isend from where it lies (copied into the frame when small).
// The stream is rewound once everything in it is sent and those sends have completed;
// it grows (moves) only after waiting for the sends in flight.
// Threads: the main thread appends, commits and flushes; the flusher sends; both under
// mutex_ for sending, growing and rewinding, and under the rank's MPI mutex for MPI calls
// (always mutex_ first).
#pragma once

#include <parex/detail/wire/buffer.hpp>

#include "mpi/transport.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

namespace parex::detail::mpi {

class RankResults final : public Writer {
 public:
  using Clock = std::chrono::steady_clock;

  RankResults(const bmpi::communicator& comm, std::mutex& mpi);
  ~RankResults();
  RankResults(const RankResults&) = delete;
  RankResults& operator=(const RankResults&) = delete;

  /// After an item's outcome is complete in the stream (main thread).
  void commit() noexcept;
  bool pending() const noexcept { return committed_items_ != sent_items_.load(std::memory_order_acquire); }
  Clock::time_point pending_since() const noexcept { return pending_since_; }
  /// Bytes appended and not yet sent (main thread). Not size(): the stream keeps what it
  /// sent until those sends complete and it can rewind.
  std::size_t unsent_bytes() const noexcept { return size_ - sent_bytes_.load(std::memory_order_acquire); }
  void add_busy(Clock::duration d) noexcept { busy_ns_.fetch_add(d.count(), std::memory_order_relaxed); }
  /// Before an item starts while results wait: the flusher sends them if it runs long.
  void arm() noexcept;
  /// Sends everything committed (main thread).
  void flush();
  /// Back to an empty stream if everything is sent and those sends have completed
  /// (main thread, between calls).
  void maybe_rewind();
  /// Flushes, waits until every send has completed, and stops the flusher (the rank is
  /// leaving).
  void finish();
  /// When a frame last left (steady clock ticks): the heartbeat stays quiet meanwhile.
  Clock::rep last_sent() const noexcept { return last_sent_.load(std::memory_order_relaxed); }

 private:
  void send_locked();
  bool sends_done_locked(bool wait);
  void flusher_main();
  void stop_flusher();
  static void grow(Writer& w, std::size_t min_capacity);

  const bmpi::communicator& comm_;
  std::mutex& mpi_;
  std::mutex mutex_;  // sending, growing, rewinding
  std::deque<OutgoingFrame> in_flight_;  // under mutex_
  std::atomic<std::size_t> committed_{0};   // bytes of complete outcomes
  std::uint64_t committed_items_ = 0;        // main thread
  std::atomic<std::size_t> sent_bytes_{0};
  std::atomic<std::uint64_t> sent_items_{0};
  std::atomic<std::int64_t> busy_ns_{0};
  std::atomic<Clock::rep> last_sent_{0};
  Clock::time_point pending_since_{};  // main thread
  // The flusher's futex word: what it has to do.
  static constexpr std::uint32_t armed_bit = 1, progress_bit = 2, stop_bit = 4;
  std::atomic<std::uint32_t> state_{0};
  std::atomic<Clock::rep> deadline_{0};
  std::thread flusher_;
};

}  // namespace parex::detail::mpi
