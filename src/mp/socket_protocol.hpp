// src/mp/socket_protocol.hpp - the Manager's socket, both sides: addresses, the
// challenge-response handshake, and message framing. The request and reply layouts are
// in include/parex/detail/mp/manager_link.hpp; this is everything under them.
//
// Handshake (HMAC-SHA256 over the authkey; the key itself never crosses):
//   server -> client  "PAREXMG1" + 32 random bytes S
//   client -> server  HMAC(key, "client" S) + 32 random bytes C
//   server -> client  1 byte: 0 refused (then close) / 1 accepted + HMAC(key, "server" C)
// A message: u32 little-endian length, then that many bytes.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <sys/types.h>
#include <vector>

namespace parex::detail {

/// A parsed address: a Unix socket path (a leading '\0': Linux's abstract namespace, no
/// file), or a TCP host (IPv4 literal, "localhost", or "" for any) and port.
struct SocketAddress {
  bool tcp = false;
  std::string path;  // unix
  std::string host;  // tcp
  std::uint16_t port = 0;
  /// The Manager's string form "path" or "127.x.x.x:port" (loopback only). @throws ValueError
  static SocketAddress parse(const std::string& address);
  std::string str() const;
};

/// A listening socket; fills in a TCP port 0. owner_only: a Unix path is born mode 0600
/// (the Manager's). @throws std::system_error, ValueError.
int listen_at(SocketAddress& a, int backlog, bool owner_only = true);
/// No deadline.
inline constexpr std::chrono::steady_clock::time_point no_deadline = std::chrono::steady_clock::time_point::max();

/// now + t, or no_deadline for a t past a century (milliseconds::max() means "none", and
/// must not overflow).
inline std::chrono::steady_clock::time_point deadline_after(std::chrono::milliseconds t) {
  if (t >= std::chrono::hours(24 * 365 * 100)) return no_deadline;
  return std::chrono::steady_clock::now() + t;
}

/// A connected (blocking) socket. Non-blocking while it connects, so that the deadline
/// bounds it: a TCP connect to a listener whose backlog is full waits for SYN retries
/// (minutes), a blocking Unix one for ever. @throws ConnectionError, ValueError;
/// TimeoutError when connect() does not complete by the deadline.
int connect_to(const SocketAddress& a, std::chrono::steady_clock::time_point deadline);

enum class Handshake { accepted, refused, gone, timed_out };
/// The server's side: accepted if the client knows the key (the verdict is sent either way).
Handshake server_handshake(int fd, const std::string& key, std::chrono::steady_clock::time_point deadline);
/// The client's side; peer names the server in messages ("the manager at 127.0.0.1:5000").
/// @throws AuthenticationError, ConnectionError, TimeoutError (past deadline).
void client_handshake(int fd, const std::string& key, const std::string& peer, std::chrono::steady_clock::time_point deadline = no_deadline);
/// Reads exactly n bytes by deadline (no_deadline: none); false at EOF, on error or timeout.
bool read_exact_until(int fd, void* p, std::size_t n, std::chrono::steady_clock::time_point deadline);

/// The largest message the framing carries (its length is a u32).
inline constexpr std::size_t max_message = 0xffffffffu;
/// Sends [u32 length][body] in one call; false if the peer is gone or body > max_message.
/// fd_to_pass >= 0: that descriptor travels with the message's first byte (SCM_RIGHTS).
bool send_message(int fd, std::span<const std::byte> body, int fd_to_pass = -1);

/// Reads messages from a socket through one buffer: one recv per message, usually.
class MessageReader {
 public:
  explicit MessageReader(std::size_t max_bytes) : max_(max_bytes) {}
  enum class Status { ok, closed, too_big };
  /// The next message, valid until the next call.
  Status next(int fd, std::span<const std::byte>& message);
  void set_max(std::size_t max_bytes) noexcept { max_ = max_bytes; }
  std::size_t max() const noexcept { return max_; }
  /// True if a whole message (or a too-big header) is buffered: next() would not read.
  bool has_message() const noexcept;
  /// Read with recvmsg and append the descriptors that come with the bytes (SCM_RIGHTS)
  /// to *sink, in order; without it, the kernel closes any that arrive.
  void collect_fds(std::deque<int>* sink) noexcept { fds_ = sink; }

 private:
  std::size_t max_;
  std::deque<int>* fds_ = nullptr;
  std::vector<std::byte> buf_;
  std::size_t begin_ = 0, end_ = 0;
};

/// recv, after a short spin (see the .cpp); with fds, recvmsg collecting SCM_RIGHTS.
/// <= 0: closed or failed.
ssize_t receive(int fd, std::byte* p, std::size_t n, std::deque<int>* fds = nullptr);
/// n bytes from the kernel's random source (challenges, keys, ids). @throws std::system_error.
void random_bytes(std::uint8_t* p, std::size_t n);
/// Reads or writes exactly n bytes; false at EOF or on error.
bool read_exact(int fd, void* p, std::size_t n);
bool write_all(int fd, const void* p, std::size_t n);

}  // namespace parex::detail
