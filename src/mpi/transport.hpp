// mpi/transport.hpp - frames as MPI messages, for both sides of an MPI job: the client's
// progress thread (engine.cpp) and the worker ranks (worker_rank.cpp).
//
// A frame (wire/frame.hpp) travels as one message, or as several on the same source and
// tag when it holds big argument or result bytes that are sent from where they lie
// (splice) or when it passes max_message_bytes (MPI counts are ints). MPI delivers the
// messages of one source and tag in order, so the receiver reads the first, learns the
// frame's length from its header and receives the rest into place. Sends are non-blocking
// only: a blocking send of a batch past the eager limit waits for a receive the other side
// may not post while it sends too (measured: such a job deadlocks).
// Not thread-safe: each object is used by one thread, under the rank's MPI discipline.
#pragma once

#include <parex/detail/wire/buffer.hpp>
#include <parex/detail/wire/frame.hpp>

#include <boost/mpi/communicator.hpp>
#include <boost/mpi/request.hpp>
#include <boost/mpi/status.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace parex::detail::mpi {

namespace bmpi = boost::mpi;

/// A receive buffer (the client's results, a worker rank's calls) that grew past this gives
/// its memory back after the frame: one huge argument or result must not pin it for the
/// rank's life.
inline constexpr std::size_t keep_input_bytes = std::size_t{16} << 20;

/// Message tags; the direction is in the name.
enum Tag : int {
  to_worker = 11,  // frames: calls
  to_client = 12,  // frames: hello, results
  heartbeat = 13,  // worker -> client, empty: alive while a long call runs
  stop = 14,       // client -> worker, empty: no more calls, finalize and exit
  revoke = 15,     // client -> worker, 8 bytes: take back what is unclaimed of the items before this count
  revoked = 16,    // worker -> client, 8 bytes: the items from this count on were taken back (remote/take_back.hpp)
};

/// The largest single message: MPI counts are ints, and 1 GiB keeps every piece far from
/// INT_MAX whatever the datatype arithmetic inside the library.
inline constexpr std::size_t max_message_bytes = std::size_t{1} << 30;

/// Spliced pieces at least this big are sent from where they are instead of copied into
/// the frame (below it, one message beats two).
inline constexpr std::size_t splice_threshold = std::size_t{64} << 10;

/// A frame being sent: its own bytes (header, records) and far pieces spliced in.
class OutgoingFrame {
 public:
  Buffer& bytes() noexcept { return bytes_; }
  /// Puts `far` at the current end of bytes(); it must stay alive and unchanged until
  /// done() or wait().
  void splice(std::span<const std::byte> far) {
    splices_.emplace_back(bytes_.size(), far);
    spliced_ += far.size();
  }
  std::uint64_t spliced_bytes() const noexcept { return spliced_; }
  /// Posts a non-blocking send of every piece, in frame order.
  void post(const bmpi::communicator& comm, int dest, int tag);
  /// True once every send has completed; the bytes may then be reused.
  bool done();
  void wait();

 private:
  void send_piece(const bmpi::communicator& comm, int dest, int tag, std::span<const std::byte> piece);
  Buffer bytes_;
  std::vector<std::pair<std::size_t, std::span<const std::byte>>> splices_;  // (offset in bytes_, far bytes)
  std::uint64_t spliced_ = 0;
  std::vector<bmpi::request> requests_;
};

/// Receives the frame whose first message `first` announces (probed, not yet received),
/// then the rest of its messages, into `into` (overwritten). The payload points into it.
/// @throws ProtocolError if the bytes are not a frame: a bad header, a payload above
///         max_payload, a first message shorter than a header or messages past the end.
Frame receive_frame(const bmpi::communicator& comm, const bmpi::status& first, Buffer& into,
                    std::uint64_t max_payload);

/// Receives the message `first` announces into scratch and forgets it (a control message
/// that carries nothing: heartbeat, stop; or one of a unknown tag).
void discard_message(const bmpi::communicator& comm, const bmpi::status& first, Buffer& scratch);

/// Pausing in a polling loop: MPI has no way to block on a message and on anything else
/// at once, so an idle loop polls. Yields first (the answer to a call is often a few
/// microseconds away), then sleeps, doubling up to max_sleep: an idle rank costs little
/// CPU and a busy one answers at once.
class Backoff {
 public:
  /// max_sleep: the longest pause, which is also how late a message may be noticed once
  /// the loop has been idle for a while.
  explicit Backoff(std::chrono::nanoseconds max_sleep) noexcept : max_sleep_ns_(max_sleep.count()) {}
  void reset() noexcept { rounds_ = 0; }
  void pause() noexcept;

 private:
  unsigned rounds_ = 0;
  long max_sleep_ns_;
};

}  // namespace parex::detail::mpi
