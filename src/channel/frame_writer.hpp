// channel/frame_writer.hpp - the transport's sending half: one frame at a time into a
// non-blocking pipe, resumed across partial writes. It knows bytes, not what they mean.
//
// A frame is built in frame() (copied bytes: header, records, small arguments) with
// pieces spliced in by reference (splice(): a call's own large argument bytes). Copied
// runs go out by writev, iov_batch pieces at a time; referenced pieces by vmsplice, so
// the pipe holds references to those pages instead of copies (they must stay unchanged
// and alive until the reader has consumed them; where vmsplice is refused - the fd is not
// a pipe, or the kernel says no - the piece is copied instead). write_some() never blocks: it
// says whether the frame is out, the pipe is full (wait for POLLOUT and call again), or the
// write failed; and it never raises SIGPIPE (a reader that is gone is EPIPE).
// Not thread-safe: one thread at a time (whichever runs a pool's loop).
#pragma once

#include <parex/detail/wire/buffer.hpp>

#include <cstddef>
#include <span>
#include <vector>

namespace parex::detail {

class FrameWriter {
 public:
  enum class Status { done, would_block, failed };

  FrameWriter() = default;
  // Not copyable or movable: a sealed frame's pieces point into frame_ (and its inline bytes).
  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;

  /// Starts a new frame: frame() is empty, nothing is spliced.
  void begin() noexcept;
  /// The copied bytes of the frame being built.
  Buffer& frame() noexcept { return frame_; }
  /// Places bytes (not copied) at the current end of frame().
  void splice(std::span<const std::byte> bytes);
  /// Bytes placed by splice() since begin().
  std::size_t spliced_bytes() const noexcept { return spliced_; }
  /// The frame is complete: write_some() sends it.
  void seal();
  /// Writes what fd takes now. `error` is errno when failed.
  Status write_some(int fd, int& error);
  /// Blocks SIGPIPE in the calling thread for good (a pool's reactor): its writes then need
  /// no blocking and unblocking around them, which write_some does in any other thread.
  static void block_sigpipe_here();
  /// After done: frees a frame buffer that grew past keep_bytes.
  void release(std::size_t keep_bytes);

  /// Copied pieces per writev (IOV_MAX is 1024; a frame has at most 2 per spliced piece + 1).
  static constexpr int iov_batch = 16;

 private:
  struct Splice {
    std::size_t at;                    // offset in frame_ where these bytes go
    std::span<const std::byte> bytes;  // referenced, not copied
  };
  struct Piece {
    const std::byte* p;
    std::size_t n;
    bool splice;
  };
  void advance(std::size_t written) noexcept;

  Buffer frame_;
  std::vector<Splice> splices_;
  std::size_t spliced_ = 0;
  std::vector<Piece> pieces_;  // the sealed frame, in order
  std::size_t next_ = 0;       // first piece not fully written
};

}  // namespace parex::detail
