// connection::wait (listener.hpp) and reduction::send_handle / recv_handle (reduction.hpp).
//
// wait: sockets and raw fds go to one poll(2). A Pipe end has no fd: its queue wakes a
// futex, one per queue, and one thread cannot sleep on several futexes and fds at once.
// The alternatives were an eventfd every Pipe send would write (a system call on the path
// that today makes none) or a thread per Pipe end; instead, with Pipe ends in the list,
// wait looks at them between short poll(2) slices that grow from 1 ms to pipe_slice_max,
// so an idle wait costs a few wakeups per 10 ms and a Pipe message waits at most one slice.
#include "mp/socket_end.hpp"

#include <parex/mp/listener.hpp>
#include <parex/mp/reduction.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace parex {
namespace detail {
using connection::Waitable;
namespace {
constexpr auto pipe_slice_max = std::chrono::milliseconds(8);
}

std::vector<Waitable> wait_ready(const std::vector<Waitable>& objects, std::chrono::nanoseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const bool bounded = timeout != parex::detail::no_timeout;
  const auto deadline = bounded ? Clock::now() + timeout : Clock::time_point::max();
  std::vector<pollfd> fds;
  std::vector<std::size_t> fd_of;     // fds[i] is objects[fd_of[i]]
  std::vector<std::size_t> pipe_ends;  // indices of Pipe ends
  for (std::size_t i = 0; i < objects.size(); ++i) {
    Connection* c = objects[i].connection();
    if (!c) {
      fds.push_back({objects[i].fd(), POLLIN, 0});
      fd_of.push_back(i);
      continue;
    }
    if (!c->readable()) throw ValueError("wait: a connection that only sends is never ready");
    if (parex::detail::SocketEnd* s = parex::detail::ConnectionAccess::socket_of(*c)) {
      fds.push_back({s->fd, POLLIN, 0});
      fd_of.push_back(i);
    } else {
      pipe_ends.push_back(i);
    }
  }
  std::vector<bool> ready(objects.size(), false);
  auto collect = [&] {
    std::vector<Waitable> out;
    for (std::size_t i = 0; i < objects.size(); ++i)
      if (ready[i]) out.push_back(objects[i]);
    return out;
  };
  auto slice = std::chrono::milliseconds(pipe_ends.empty() ? 0 : 1);
  for (;;) {
    bool any = false;
    // A socket may hold a whole message in its reader already: poll(2) would not say so.
    for (std::size_t k = 0; k < fds.size(); ++k)
      if (Connection* c = objects[fd_of[k]].connection();
          c && parex::detail::ConnectionAccess::socket_of(*c)->reader.has_message())
        any = ready[fd_of[k]] = true;
    for (std::size_t i : pipe_ends)
      if (objects[i].connection()->poll()) any = ready[i] = true;
    int ms;
    if (any) ms = 0;  // still collect the fds that are ready too
    else if (!bounded && pipe_ends.empty()) ms = -1;
    else {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      ms = static_cast<int>(std::max<std::int64_t>(0, pipe_ends.empty() ? left.count() : std::min(left, slice).count()));
    }
    const int rc = ::poll(fds.data(), fds.size(), ms);
    if (rc < 0 && errno != EINTR) throw ConnectionError(std::string("wait: poll: ") + std::strerror(errno));
    for (std::size_t k = 0; rc > 0 && k < fds.size(); ++k)
      if (fds[k].revents) any = ready[fd_of[k]] = true;
    if (any) {
      for (std::size_t i : pipe_ends)  // a message that came during the slice
        if (!ready[i] && objects[i].connection()->poll()) ready[i] = true;
      return collect();
    }
    if (bounded && Clock::now() >= deadline) return {};
    slice = std::min<std::chrono::milliseconds>(slice * 2, pipe_slice_max);
  }
}
}  // namespace detail

namespace reduction {
namespace {
// A handle message: this tag alone (no value); its descriptor rides on its first byte.
constexpr std::uint64_t handle_tag = 0x50524558'48414e44ULL;  // "PREXHAND"

parex::detail::SocketEnd& unix_socket_of(Connection& conn, const char* what) {
  parex::detail::SocketEnd* s = parex::detail::ConnectionAccess::socket_of(conn);
  int domain = 0;
  socklen_t len = sizeof domain;
  if (!s || ::getsockopt(s->fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX)
    throw ValueError(std::string(what) + ": a descriptor travels only over a Unix-socket connection "
                     "(Listener/Client with a Unix address, or Connection(fd) of a socketpair); "
                     "a Pipe end is shared memory and a TCP socket cannot carry one");
  return *s;
}
}  // namespace

void send_handle(Connection& conn, int fd, pid_t /*destination_pid*/) {
  parex::detail::SocketEnd& s = unix_socket_of(conn, "send_handle");
  if (!s.writable) throw ValueError("this connection only receives");
  if (::fcntl(fd, F_GETFD) < 0) throw ValueError("send_handle: " + std::to_string(fd) + " is not an open descriptor");
  std::byte body[sizeof handle_tag];
  std::memcpy(body, &handle_tag, sizeof handle_tag);
  if (!parex::detail::send_message(s.fd, body, fd)) {
    const int e = errno;
    if (e == EPIPE || e == ECONNRESET || e == ENOTCONN) throw BrokenPipeError("the other end of the connection is closed");
    throw ConnectionError(std::string("send_handle: ") + std::strerror(e));
  }
}

int recv_handle(Connection& conn) {
  parex::detail::SocketEnd& s = unix_socket_of(conn, "recv_handle");
  const auto m = conn.recv_bytes();
  std::uint64_t tag = 0;
  if (m.size() == sizeof tag) std::memcpy(&tag, m.data(), sizeof tag);
  if (tag != handle_tag) throw ProtocolError("recv_handle: the next message is not a handle sent by send_handle");
  if (s.fds.empty()) throw ProtocolError("recv_handle: the handle message came without its descriptor");
  const int fd = s.fds.front();
  s.fds.pop_front();
  return fd;
}

}  // namespace reduction
}  // namespace parex
