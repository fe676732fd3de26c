// FrameWriter: see frame_writer.hpp.
#include "channel/frame_writer.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <ctime>
#include <fcntl.h>
#include <pthread.h>
#include <sys/uio.h>

namespace parex::detail {

namespace {
thread_local bool t_sigpipe_blocked = false;  // block_sigpipe_here

// A write to a pipe whose reader is gone raises SIGPIPE in the writing thread, which kills
// the program unless blocked. In a thread that has not blocked it for good (a waiting
// thread that runs a pool's loop), it is blocked for the writes, and a SIGPIPE they raised
// is taken back before the thread's mask is restored; one pending before is left alone.
class NoSigpipe {
 public:
  NoSigpipe() {
    if (t_sigpipe_blocked) return;
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    active_ = ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
    if (active_ && sigismember(&old_, SIGPIPE) == 1) {
      sigset_t pending;
      if (::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) pending_before_ = true;
    }
  }
  ~NoSigpipe() {
    if (!active_) return;
    if (raised_ && !pending_before_) {
      const timespec now{0, 0};
      while (::sigtimedwait(&pipe_, nullptr, &now) < 0 && errno == EINTR) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  NoSigpipe(const NoSigpipe&) = delete;
  NoSigpipe& operator=(const NoSigpipe&) = delete;
  void raised() noexcept { raised_ = true; }

 private:
  sigset_t pipe_{}, old_{};
  bool active_ = false, pending_before_ = false, raised_ = false;
};
}  // namespace

void FrameWriter::block_sigpipe_here() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  if (::pthread_sigmask(SIG_BLOCK, &set, nullptr) == 0) t_sigpipe_blocked = true;
}

void FrameWriter::begin() noexcept {
  frame_.clear();
  splices_.clear();
  spliced_ = 0;
  pieces_.clear();
  next_ = 0;
}

void FrameWriter::splice(std::span<const std::byte> bytes) {
  splices_.push_back({frame_.size(), bytes});
  spliced_ += bytes.size();
}

void FrameWriter::seal() {
  pieces_.clear();
  std::size_t at = 0;
  for (auto& s : splices_) {
    pieces_.push_back({frame_.data() + at, s.at - at, false});
    pieces_.push_back({s.bytes.data(), s.bytes.size(), true});
    at = s.at;
  }
  pieces_.push_back({frame_.data() + at, frame_.size() - at, false});
  next_ = 0;
  advance(0);  // skip empty pieces
}

FrameWriter::Status FrameWriter::write_some(int fd, int& error) {
  NoSigpipe no_sigpipe;
  while (next_ < pieces_.size()) {
    Piece& piece = pieces_[next_];
    ssize_t n;
    if (piece.splice) {
      iovec v{const_cast<std::byte*>(piece.p), piece.n};
      n = ::vmsplice(fd, &v, 1, SPLICE_F_NONBLOCK);
      // EBADF: not a pipe (a socket, a file; a bad fd fails in writev below); the others:
      // not allowed or no memory for the page references. Copy instead.
      if (n < 0 && (errno == EBADF || errno == EINVAL || errno == ENOSYS || errno == EPERM || errno == ENOMEM)) {
        piece.splice = false;
        continue;
      }
    } else {
      iovec v[iov_batch];
      int k = 0;
      for (std::size_t i = next_; i < pieces_.size() && k < iov_batch && !pieces_[i].splice; ++i, ++k)
        v[k] = {const_cast<std::byte*>(pieces_[i].p), pieces_[i].n};
      n = ::writev(fd, v, k);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return Status::would_block;
      error = errno;
      if (error == EPIPE) no_sigpipe.raised();
      return Status::failed;
    }
    advance(static_cast<std::size_t>(n));
  }
  return Status::done;
}

void FrameWriter::advance(std::size_t written) noexcept {
  while (next_ < pieces_.size()) {
    Piece& s = pieces_[next_];
    const std::size_t take = std::min(written, s.n);
    s.p += take;
    s.n -= take;
    written -= take;
    if (s.n != 0) return;
    ++next_;
  }
}

void FrameWriter::release(std::size_t keep_bytes) {
  begin();
  frame_.shrink(keep_bytes);
}

}  // namespace parex::detail
