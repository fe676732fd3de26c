// src/mp/socket_end.hpp - a socket Connection's state (connection_socket.cpp), for the
// few places that look inside it: wait() (a fd to poll, a message already buffered) and
// reduction's handle passing (descriptors that came with the bytes).
#pragma once

#include "mp/socket_protocol.hpp"

#include <parex/mp/connection.hpp>

#include <deque>

namespace parex::detail {

struct SocketEnd {
  SocketEnd(int fd, bool readable, bool writable, bool unix_domain);
  ~SocketEnd();
  SocketEnd(const SocketEnd&) = delete;
  SocketEnd& operator=(const SocketEnd&) = delete;

  int fd;
  bool readable, writable;
  MessageReader reader{default_max_message_size};
  // Descriptors received with the bytes (Unix sockets), oldest first; reduction::recv_handle
  // takes them. Owned here: closed with the connection if nobody took them.
  std::deque<int> fds;
};

struct ConnectionAccess {
  /// The socket end, or nullptr for a Pipe end. @throws ValueError if c is closed.
  static SocketEnd* socket_of(const Connection& c);
};

}  // namespace parex::detail
