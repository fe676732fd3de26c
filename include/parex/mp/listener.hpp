// parex/mp/listener.hpp - Python's multiprocessing.connection: Listener, Client, wait,
// deliver_challenge / answer_challenge, over Unix sockets (a path, or Linux's abstract
// namespace: a name starting with '\0') and TCP.
//
//   parex::connection::Listener l(std::string("/tmp/app.sock"), "", 1, "secret");
//   parex::Connection c = l.accept();          // in another process:
//   c.send(std::string("hi"));                 //   auto c = parex::connection::Client(
//                                              //       std::string("/tmp/app.sock"), "", "secret");
//
// Connections are parex::Connection, the type Pipe() returns (see connection.hpp for the
// message format and limits). Authentication: both sides prove they know the authkey
// with HMAC-SHA256 over fresh random challenges, the Manager's handshake (the key never
// crosses); an empty authkey on both sides means no handshake. After it, messages are
// neither encrypted nor signed: on TCP, listen on loopback or a trusted network.
// A Listener is used by one thread at a time; wait() by any thread.
#pragma once

#include <parex/mp/connection.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace parex::connection {

using parex::Connection;
using parex::Pipe;

/// How long either side of the handshake waits for the other before TimeoutError: a peer
/// that connects (or accepts) and never speaks does not hold accept() or Client() for ever.
inline constexpr std::chrono::milliseconds default_handshake_timeout{10000};

/// Where a Listener listens: a Unix socket path ("\0name"s: the abstract namespace, no
/// file), or a TCP host and port (port 0: the system picks one; address() then says which).
struct Address {
  std::string path;  // AF_UNIX
  std::string host;  // AF_INET: an IPv4 literal, "localhost", or "" for every interface
  std::uint16_t port = 0;
  bool inet = false;

  Address() = default;
  Address(std::string unix_path) : path(std::move(unix_path)) {}
  Address(const char* unix_path) : path(unix_path) {}
  Address(std::string tcp_host, std::uint16_t tcp_port) : host(std::move(tcp_host)), port(tcp_port), inet(true) {}
  /// "AF_UNIX" or "AF_INET" (Python's address_type).
  std::string family() const { return inet ? "AF_INET" : "AF_UNIX"; }
  bool abstract() const noexcept { return !inet && !path.empty() && path[0] == '\0'; }
  /// For messages: the path, "@name" for an abstract one, or "host:port".
  std::string str() const;
  bool operator==(const Address&) const = default;
};

/// A listening socket (Python's multiprocessing.connection.Listener). family: "" (from
/// the address), "AF_UNIX" or "AF_INET". No address: a fresh abstract Unix name (or
/// localhost:0 for "AF_INET"). A Unix path's file is removed by close() and the destructor.
/// @code
///   parex::connection::Listener l({"127.0.0.1", 0});
///   auto port = l.address().port;
///   parex::Connection c = l.accept();
/// @endcode
class Listener {
 public:
  /// @throws ValueError (bad address or family), std::system_error (bind, listen).
  explicit Listener(Address address = {}, std::string family = "", int backlog = 1, std::string authkey = "",
                    std::chrono::milliseconds handshake_timeout = default_handshake_timeout);
  ~Listener();
  Listener(Listener&& o) noexcept;
  Listener& operator=(Listener&& o) noexcept;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  /// The next connection, authenticated when the Listener has an authkey.
  /// @throws AuthenticationError (wrong key), TimeoutError (no answer within
  /// handshake_timeout), ConnectionError (the client left mid-handshake), ValueError if closed.
  Connection accept();
  void close() noexcept;
  bool closed() const noexcept { return fd_ < 0; }
  const Address& address() const noexcept { return address_; }
  /// The peer of the last accept(): host and port on TCP; on Unix usually "" (unnamed).
  const std::optional<Address>& last_accepted() const noexcept { return last_accepted_; }
  int fileno() const noexcept { return fd_; }

 private:
  int fd_ = -1;
  Address address_;
  std::string authkey_;
  std::chrono::milliseconds handshake_timeout_;
  std::optional<Address> last_accepted_;
  bool unlink_ = false;  // a Unix path this Listener bound: removed when it closes
};

/// Connects to a Listener (Python's multiprocessing.connection.Client).
/// @throws ConnectionError (nobody listens), AuthenticationError (the keys differ),
/// TimeoutError (the listener did not complete the handshake within handshake_timeout).
Connection Client(const Address& address, const std::string& family = "", const std::string& authkey = "",
                  std::chrono::milliseconds handshake_timeout = default_handshake_timeout);

/// The listening side of the handshake on a connected socket Connection. Unlike Python's
/// halves, each call is the whole mutual exchange: the server checks the client and the
/// client checks the server, so a Listener calls only this one and a Client only
/// answer_challenge. @throws AuthenticationError ("digest received was wrong"), TimeoutError,
/// ConnectionError; ValueError on a Pipe end.
void deliver_challenge(Connection& c, const std::string& authkey,
                       std::chrono::milliseconds timeout = default_handshake_timeout);
/// The connecting side of the handshake. @throws as deliver_challenge.
void answer_challenge(Connection& c, const std::string& authkey,
                      std::chrono::milliseconds timeout = default_handshake_timeout);

/// What wait() waits on: a Connection (Pipe end or socket), or a raw fd (a
/// Process::sentinel(), a pipe, a socket, an eventfd: ready when poll(2) says POLLIN,
/// hang-up or error).
class Waitable {
 public:
  Waitable(Connection& c) noexcept : conn_(&c) {}
  Waitable(int fd) noexcept : fd_(fd) {}
  Connection* connection() const noexcept { return conn_; }
  int fd() const noexcept { return fd_; }
  bool operator==(const Waitable&) const = default;

 private:
  Connection* conn_ = nullptr;
  int fd_ = -1;
};

}  // namespace parex::connection

namespace parex::detail {
std::vector<connection::Waitable> wait_ready(const std::vector<connection::Waitable>& objects,
                                             std::chrono::nanoseconds timeout);
}

namespace parex::connection {

/// The objects that are ready, in the order given (Python's multiprocessing.connection.wait):
/// a Connection with a message (or whose peer is gone: recv would not block), a fd that
/// polls readable. Waits until one is, or timeout passes (then: empty). Sockets and fds are
/// waited on with poll(2); Pipe ends have no fd (they are shared-memory queues), so with
/// any Pipe end in the list, wait polls them between short poll(2) slices, 1 ms growing to
/// 8 ms: a Pipe end's message is seen within ~8 ms, at a few wakeups per 10 ms.
/// @throws ValueError for a closed Connection or a send-only Pipe end.
/// @code
///   for (auto& w : parex::connection::wait({pipe_end, socket_conn, p.sentinel()}, 1s))
///     if (w.connection() == &pipe_end) ...
/// @endcode
inline std::vector<Waitable> wait(const std::vector<Waitable>& objects) {
  return parex::detail::wait_ready(objects, parex::detail::no_timeout);
}
template <class Rep, class Period>
std::vector<Waitable> wait(const std::vector<Waitable>& objects, std::chrono::duration<Rep, Period> timeout) {
  return parex::detail::wait_ready(objects, parex::detail::clamp_timeout(timeout));
}

}  // namespace parex::connection
