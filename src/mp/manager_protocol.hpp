// src/mp/manager_protocol.hpp - the Manager's socket, both sides: addresses, the
// challenge-response handshake, and message framing. The request and reply layouts are
// in include/parex/detail/mp/manager_link.hpp; this is everything under them.
//
// Handshake (HMAC-SHA256 over the authkey; the key itself never crosses):
//   server -> client  "PAREXMG1" + 32 random bytes S
//   client -> server  HMAC(key, "client" S) + 32 random bytes C
//   server -> client  1 byte: 0 refused (then close) / 1 accepted + HMAC(key, "server" C)
// A message: u32 little-endian length, then that many bytes.
#pragma once

#include <parex/detail/mp/manager_link.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <sys/types.h>
#include <vector>

namespace parex::detail {

/// A parsed address: a Unix socket path, or a loopback TCP host and port.
struct ManagerAddress {
  bool tcp = false;
  std::string path;  // unix
  std::string host;  // tcp
  std::uint16_t port = 0;
  static ManagerAddress parse(const std::string& address);  // @throws ValueError
  std::string str() const;
};

/// A listening socket (owner-only for a Unix path); fills in a TCP port 0.
/// @throws std::system_error.
int listen_at(ManagerAddress& a, int backlog);
/// A connected (blocking) socket. @throws ConnectionError; TimeoutError when connect()
/// does not complete by the deadline (a listener whose backlog is full).
int connect_to(const ManagerAddress& a,
               std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::now() + manager_handshake_timeout);

/// The server's side, within manager_handshake_timeout: true if the client knows the key
/// (the reply is sent either way).
bool server_handshake(int fd, const std::string& key);
/// The client's side. @throws AuthenticationError, ConnectionError; TimeoutError when the
/// server has not completed its side by the deadline.
void client_handshake(int fd, const std::string& key, const std::string& address,
                      std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::now() + manager_handshake_timeout);

/// The largest message the framing carries (its length is a u32).
inline constexpr std::size_t max_message = 0xffffffffu;
/// Sends [u32 length][body] in one call; false if the peer is gone or body > max_message.
bool send_message(int fd, std::span<const std::byte> body);

/// Reads messages from a socket through one buffer: one recv per message, usually.
class MessageReader {
 public:
  explicit MessageReader(std::size_t max_bytes) : max_(max_bytes) {}
  enum class Status { ok, closed, too_big };
  /// The next message, valid until the next call.
  Status next(int fd, std::span<const std::byte>& message);

 private:
  std::size_t max_;
  std::vector<std::byte> buf_;
  std::size_t begin_ = 0, end_ = 0;
};

/// recv, after a short spin (see the .cpp). <= 0: closed or failed.
ssize_t receive(int fd, std::byte* p, std::size_t n);
/// n bytes from the kernel's random source (challenges, keys, ids). @throws std::system_error.
void random_bytes(std::uint8_t* p, std::size_t n);
/// Reads or writes exactly n bytes; false at EOF, on error or timeout.
bool read_exact(int fd, void* p, std::size_t n);
bool read_exact_until(int fd, void* p, std::size_t n, std::chrono::steady_clock::time_point deadline);
bool write_all(int fd, const void* p, std::size_t n);

}  // namespace parex::detail
