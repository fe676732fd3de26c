// src/mp/socket_protocol.cpp - parex's sockets, both sides (see socket_protocol.hpp).
#include "mp/socket_protocol.hpp"

#include "mp/hmac.hpp"
#include "sync/futex.hpp"

#include <parex/errors.hpp>

#include <algorithm>
#include <cstddef>
#include <chrono>
#include <arpa/inet.h>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace parex::detail {
void random_bytes(std::uint8_t* p, std::size_t n) {
  while (n) {
    const ssize_t got = ::getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "getrandom");
    }
    p += got;
    n -= static_cast<std::size_t>(got);
  }
}

namespace {
constexpr char magic[8] = {'P', 'A', 'R', 'E', 'X', 'M', 'G', '1'};

Digest256 answer(const std::string& key, const char* side, const std::uint8_t* challenge) {
  std::uint8_t msg[6 + 32];
  std::memcpy(msg, side, 6);
  std::memcpy(msg + 6, challenge, 32);
  return hmac_sha256(key, msg);
}

// An abstract name ('\0' first) is its bytes, no terminator: the length says where it ends.
socklen_t unix_address(const std::string& path, sockaddr_un& sa) {
  sa = {};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa.sun_path || (path[0] == '\0' && path.size() < 2))
    throw ValueError("a Unix socket address must have 1 to " + std::to_string(sizeof sa.sun_path - 1) +
                     " characters (an abstract one: '\\0' and a name): '" + path + "'");
  std::memcpy(sa.sun_path, path.data(), path.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '\0' ? 0 : 1));
}
sockaddr_in tcp_address(const SocketAddress& a) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(a.port);
  const std::string host = a.host == "localhost" ? "127.0.0.1" : a.host.empty() ? "0.0.0.0" : a.host;
  if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) throw ValueError("not an IPv4 address: '" + a.host + "'");
  return sa;
}
}  // namespace

SocketAddress SocketAddress::parse(const std::string& address) {
  SocketAddress a;
  const auto colon = address.rfind(':');
  if (!address.empty() && address[0] != '/' && address[0] != '.' && colon != std::string::npos) {
    a.tcp = true;
    a.host = address.substr(0, colon);
    if (a.host == "localhost") a.host = "127.0.0.1";
    if (a.host.rfind("127.", 0) != 0)
      throw ValueError("Manager: TCP is served on loopback only (127.x.x.x), not on '" + a.host +
                       "': messages after the handshake are neither encrypted nor signed");
    const std::string port = address.substr(colon + 1);
    char* end = nullptr;
    const unsigned long p = std::strtoul(port.c_str(), &end, 10);
    if (port.empty() || *end || p > 65535) throw ValueError("Manager: bad TCP port in '" + address + "'");
    a.port = static_cast<std::uint16_t>(p);
    return a;
  }
  a.path = address;
  return a;
}

std::string SocketAddress::str() const { return tcp ? host + ":" + std::to_string(port) : path; }

int listen_at(SocketAddress& a, int backlog, bool owner_only) {
  const int fd = ::socket(a.tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "Manager: socket");
  auto fail = [&](const char* what) {
    const int e = errno;
    ::close(fd);
    throw std::system_error(e, std::generic_category(), std::string("Manager: ") + what + " " + a.str());
  };
  if (a.tcp) {
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa;
    try {
      sa = tcp_address(a);
    } catch (...) {
      ::close(fd);
      throw;
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) fail("bind");
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    a.port = ntohs(sa.sin_port);
  } else {
    sockaddr_un sa;
    socklen_t len;
    try {
      len = unix_address(a.path, sa);
    } catch (...) {
      ::close(fd);
      throw;
    }
    const bool file = a.path[0] != '\0';
    // The umask is the process's: set only around the bind, and only for an owner-only file,
    // so that it is born owner-only (no window for others).
    const mode_t old = owner_only && file ? ::umask(0177) : 0;
    const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), len);
    if (owner_only && file) ::umask(old);
    if (rc != 0) fail("bind");
    if (owner_only && file) ::chmod(a.path.c_str(), 0600);
  }
  if (::listen(fd, backlog) != 0) fail("listen");
  return fd;
}

// Non-blocking, so that the deadline bounds it: a TCP connect to a listener whose backlog
// is full waits for SYN retries (minutes), a blocking Unix one for ever. The socket is
// blocking again once connected (the framing below relies on it).
namespace {
// poll()'s timeout until the deadline: `none` without one, 0 once it has passed, and at
// most INT_MAX ms (a deadline weeks away must not wrap to a negative, endless wait).
int poll_ms(std::chrono::steady_clock::time_point deadline, int none) {
  if (deadline == no_deadline) return none;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, INT_MAX));
}
}  // namespace

int connect_to(const SocketAddress& a, std::chrono::steady_clock::time_point deadline) {
  auto timed_out = [&] {
    return TimeoutError("cannot connect to " + a.str() + ": connect() did not complete in time");
  };
  // The address first: a bad one (ValueError) leaves no socket behind.
  sockaddr_in in{};
  sockaddr_un un{};
  socklen_t un_len = 0;
  if (a.tcp) in = tcp_address(a);
  else un_len = unix_address(a.path, un);
  for (auto pause = std::chrono::milliseconds(1);; pause = std::min(2 * pause, std::chrono::milliseconds(50))) {
    const int fd = ::socket(a.tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw ConnectionError("socket: " + std::string(std::strerror(errno)));
    const int rc = a.tcp ? ::connect(fd, reinterpret_cast<sockaddr*>(&in), sizeof in)
                         : ::connect(fd, reinterpret_cast<sockaddr*>(&un), un_len);
    int e = rc == 0 ? 0 : errno;
    if (e == EINPROGRESS) {  // TCP: wait until it completes or fails
      for (;;) {
        const int left = poll_ms(deadline, 1000);
        pollfd pfd{fd, POLLOUT, 0};
        const int n = left != 0 ? ::poll(&pfd, 1, left) : 0;
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 && deadline == no_deadline) continue;
        if (n <= 0) {
          ::close(fd);
          throw timed_out();
        }
        socklen_t len = sizeof e;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0) e = errno;
        break;
      }
    } else if (e == EAGAIN && !a.tcp) {  // a Unix listener's backlog is full: try again shortly
      ::close(fd);
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) throw timed_out();
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
      continue;
    }
    if (e != 0) {
      ::close(fd);
      throw ConnectionError("cannot connect to " + a.str() + ": " + std::strerror(e));
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (a.tcp) {
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
  }
}

bool read_exact_until(int fd, void* p, std::size_t n, std::chrono::steady_clock::time_point deadline) {
  auto* c = static_cast<char*>(p);
  while (n) {
    const int left = poll_ms(deadline, -1);
    if (left == 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    const int rc = ::poll(&pfd, 1, left);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return false;
    const ssize_t got = ::recv(fd, c, n, MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) return false;
    c += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

bool read_exact(int fd, void* p, std::size_t n) {
  auto* c = static_cast<char*>(p);
  while (n) {
    const ssize_t got = ::recv(fd, c, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    c += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

bool write_all(int fd, const void* p, std::size_t n) {
  const auto* c = static_cast<const char*>(p);
  while (n) {
    const ssize_t put = ::send(fd, c, n, MSG_NOSIGNAL);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return false;
    c += put;
    n -= static_cast<std::size_t>(put);
  }
  return true;
}

Handshake server_handshake(int fd, const std::string& key, std::chrono::steady_clock::time_point deadline) {
  std::uint8_t hello[8 + 32];
  std::memcpy(hello, magic, 8);
  random_bytes(hello + 8, 32);
  if (!write_all(fd, hello, sizeof hello)) return Handshake::gone;
  std::uint8_t reply[64];  // all of it by the deadline: a client that trickles bytes is dropped too
  if (!read_exact_until(fd, reply, sizeof reply, deadline))
    return std::chrono::steady_clock::now() >= deadline ? Handshake::timed_out : Handshake::gone;
  Digest256 got;
  std::memcpy(got.data(), reply, 32);
  if (!digests_equal(got, answer(key, "client", hello + 8))) {
    const std::uint8_t no = 0;
    write_all(fd, &no, 1);
    return Handshake::refused;
  }
  std::uint8_t yes[1 + 32];
  yes[0] = 1;
  const Digest256 mine = answer(key, "server", reply + 32);
  std::memcpy(yes + 1, mine.data(), 32);
  return write_all(fd, yes, sizeof yes) ? Handshake::accepted : Handshake::gone;
}

void client_handshake(int fd, const std::string& key, const std::string& peer,
                      std::chrono::steady_clock::time_point deadline) {
  auto fail = [&] {  // throws the error's own type (returning it as an Error would slice it)
    if (deadline != no_deadline && std::chrono::steady_clock::now() >= deadline)
      throw TimeoutError(peer + " did not complete the authentication handshake in time");
    throw ConnectionError(peer + " closed the connection during the handshake");
  };
  std::uint8_t hello[8 + 32];
  if (!read_exact_until(fd, hello, sizeof hello, deadline)) fail();
  if (std::memcmp(hello, magic, 8) != 0)
    throw ConnectionError(peer + " does not speak parex's handshake (not a parex server, or an authkey on one side only)");
  std::uint8_t reply[64];
  const Digest256 mine = answer(key, "client", hello + 8);
  std::memcpy(reply, mine.data(), 32);
  random_bytes(reply + 32, 32);
  if (!write_all(fd, reply, sizeof reply)) fail();
  std::uint8_t verdict = 0;
  if (!read_exact_until(fd, &verdict, 1, deadline)) fail();
  if (verdict != 1) throw AuthenticationError(peer + " refused the authkey");
  Digest256 theirs;
  if (!read_exact_until(fd, theirs.data(), theirs.size(), deadline)) fail();
  if (!digests_equal(theirs, answer(key, "server", reply + 32)))
    throw AuthenticationError(peer + " does not know the authkey");
}

bool send_message(int fd, std::span<const std::byte> body, int fd_to_pass) {
  if (body.size() > max_message) return false;
  const std::uint32_t len = static_cast<std::uint32_t>(body.size());
  iovec iov[2] = {{const_cast<std::uint32_t*>(&len), sizeof len}, {const_cast<std::byte*>(body.data()), body.size()}};
  msghdr m{};
  m.msg_iov = iov;
  m.msg_iovlen = 2;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd_to_pass >= 0) {
    std::memset(control, 0, sizeof control);
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd_to_pass, sizeof(int));
  }
  std::size_t left = sizeof len + body.size();
  while (left) {
    const ssize_t put = ::sendmsg(fd, &m, MSG_NOSIGNAL);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return false;
    m.msg_control = nullptr;  // the descriptor went with the first byte
    m.msg_controllen = 0;
    left -= static_cast<std::size_t>(put);
    std::size_t skip = static_cast<std::size_t>(put);
    while (m.msg_iovlen && skip >= m.msg_iov[0].iov_len) {
      skip -= m.msg_iov[0].iov_len;
      ++m.msg_iov;
      --m.msg_iovlen;
    }
    if (m.msg_iovlen) {
      m.msg_iov[0].iov_base = static_cast<char*>(m.msg_iov[0].iov_base) + skip;
      m.msg_iov[0].iov_len -= skip;
    }
  }
  return true;
}

// A blocking wakeup costs ~20 us each way on a small VM (a Unix socket ping-pong: ~40 us),
// while the other side usually answers within a few: poll without sleeping for a short
// while first, then block. Bounded, so an idle connection costs no CPU.
namespace {
// Descriptors received and not yet taken (reduction::recv_handle), per connection.
constexpr std::size_t max_held_fds = 64;
// recvmsg, keeping the descriptors that come with the bytes (MSG_CMSG_CLOEXEC: none leaks
// into a child spawned meanwhile).
ssize_t recv_with_fds(int fd, std::byte* p, std::size_t n, int flags, std::deque<int>& fds) {
  iovec iov{p, n};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  const ssize_t got = ::recvmsg(fd, &m, flags | MSG_CMSG_CLOEXEC);
  if (got < 0) return got;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int f;
        std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
        if (fds.size() < max_held_fds) fds.push_back(f);
        else ::close(f);  // a peer flooding us with descriptors must not exhaust our table
      }
    }
  return got;
}
}  // namespace

ssize_t receive(int fd, std::byte* p, std::size_t n, std::deque<int>* fds) {
  using Clock = std::chrono::steady_clock;
  auto once = [&](int flags) { return fds ? recv_with_fds(fd, p, n, flags, *fds) : ::recv(fd, p, n, flags); };
  const auto until = Clock::now() + std::chrono::microseconds(50);
  for (;;) {
    const ssize_t got = once(MSG_DONTWAIT);
    if (got >= 0) return got;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    if (Clock::now() >= until) break;
    cpu_relax();
  }
  for (;;) {
    const ssize_t got = once(0);
    if (got < 0 && errno == EINTR) continue;
    return got;
  }
}

bool MessageReader::has_message() const noexcept {
  const std::size_t have = end_ - begin_;
  if (have < 4) return false;
  std::uint32_t len;
  std::memcpy(&len, buf_.data() + begin_, 4);
  return len > max_ || have >= 4 + std::size_t{len};
}

MessageReader::Status MessageReader::next(int fd, std::span<const std::byte>& message) {
  if (begin_ == end_) begin_ = end_ = 0;
  for (;;) {
    const std::size_t have = end_ - begin_;
    std::size_t need = 4;
    if (have >= 4) {
      std::uint32_t len;
      std::memcpy(&len, buf_.data() + begin_, 4);
      if (len > max_) return Status::too_big;
      need = 4 + std::size_t{len};
      if (have >= need) {
        message = {buf_.data() + begin_ + 4, len};
        begin_ += need;
        return Status::ok;
      }
    }
    if (begin_ + need > buf_.size()) {  // make room: slide to the front, then grow
      if (begin_) {
        std::memmove(buf_.data(), buf_.data() + begin_, have);
        begin_ = 0;
        end_ = have;
      }
      // Grow only as the bytes come: a lying length cannot make us allocate it up front.
      constexpr std::size_t step = std::size_t{1} << 20;
      if (need > buf_.size()) buf_.resize(std::max({need > step ? end_ + step : need, std::size_t{4096}, buf_.size()}));
    }
    const ssize_t got = receive(fd, buf_.data() + end_, buf_.size() - end_, fds_);
    if (got <= 0) return Status::closed;
    end_ += static_cast<std::size_t>(got);
  }
}

}  // namespace parex::detail
