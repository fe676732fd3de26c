// A Connection over a stream socket, and connection::Listener / Client (listener.hpp).
//
// The wire is the Manager's (socket_protocol.hpp), one definition for both: the same
// handshake, and each message a u32 length + the bytes a Pipe end would carry (a send's
// 8-byte type tag + encoding, or send_bytes' bytes). A received message is read through a
// MessageReader, which grows its buffer only as bytes arrive: a peer announcing 4 GiB and
// sending nothing costs us nothing, and one past max_message_size() is refused from its
// header alone. Blocking sockets throughout; only the handshake has a deadline (poll).
#include "mp/socket_end.hpp"

#include <parex/mp/listener.hpp>

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace parex {
namespace detail {

SocketEnd::SocketEnd(int f, bool r, bool w, bool unix_domain) : fd(f), readable(r), writable(w) {
  if (unix_domain) reader.collect_fds(&fds);
}

SocketEnd::~SocketEnd() {
  ::close(fd);
  for (int f : fds) ::close(f);
}

SocketEnd* ConnectionAccess::socket_of(const Connection& c) {
  if (c.closed()) throw ValueError("this connection is closed");
  return c.sock_.get();
}

}  // namespace detail

Connection::Connection(int fd, bool readable, bool writable) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
    throw ValueError("Connection(fd): fd " + std::to_string(fd) + " is not a socket");
  int domain = 0;
  socklen_t len = sizeof domain;
  ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
  sock_ = std::make_shared<detail::SocketEnd>(fd, readable, writable, domain == AF_UNIX);
}

detail::SocketEnd& Connection::socket() const { return *sock_; }
unsigned Connection::socket_flags() const noexcept { return (sock_->readable ? 1u : 0u) | (sock_->writable ? 2u : 0u); }

int Connection::fileno() const {
  if (closed()) throw ValueError("this connection is closed");
  if (!sock_) throw ValueError("a Pipe end has no file descriptor (it is a shared-memory queue): wait on it with connection::wait");
  return sock_->fd;
}

std::size_t Connection::max_message_size() const {
  if (!sock_) throw ValueError("only a socket connection has a receive limit");
  return sock_->reader.max();
}

void Connection::set_max_message_size(std::size_t bytes) {
  if (!sock_) throw ValueError("only a socket connection has a receive limit");
  sock_->reader.set_max(std::min(bytes, detail::max_message));
}

void Connection::socket_send(std::span<const std::byte> bytes) {
  detail::SocketEnd& s = *sock_;
  if (!s.writable) throw ValueError("this connection only receives");
  if (bytes.size() > detail::max_message)
    throw ValueError("a message of " + std::to_string(bytes.size()) + " bytes: a socket connection carries up to 4 GiB - 1");
  if (detail::send_message(s.fd, bytes)) return;
  const int e = errno;
  if (e == EPIPE || e == ECONNRESET || e == ENOTCONN || e == 0) throw BrokenPipeError("the other end of the connection is closed");
  throw ConnectionError(std::string("send: ") + std::strerror(e));
}

void Connection::socket_recv(detail::Buffer& out, std::size_t maxlength) {
  detail::SocketEnd& s = *sock_;
  if (!s.readable) throw ValueError("this connection only sends");
  std::span<const std::byte> m;
  switch (s.reader.next(s.fd, m)) {
    case detail::MessageReader::Status::ok:
      break;
    case detail::MessageReader::Status::closed:
      throw EOFError();
    case detail::MessageReader::Status::too_big: {
      // The stream cannot be resynchronised past a message we refuse to read: close it
      // for every handle of this end, as Python's recv_bytes(maxlength) does.
      const std::size_t limit = s.reader.max();
      ::shutdown(s.fd, SHUT_RDWR);
      sock_.reset();
      throw ProtocolError("the peer announced a message past this connection's limit of " + std::to_string(limit) +
                          " bytes (set_max_message_size): the connection is closed");
    }
  }
  if (maxlength != 0 && m.size() > maxlength)
    throw ProtocolError("a message of " + std::to_string(m.size()) + " bytes, past maxlength " + std::to_string(maxlength));
  out.put(m.data(), m.size());
}

bool Connection::socket_poll(std::chrono::nanoseconds timeout) {
  detail::SocketEnd& s = *sock_;
  if (!s.readable) throw ValueError("this connection only sends");
  if (s.reader.has_message()) return true;
  const bool bounded = timeout != detail::no_timeout;
  const auto deadline = bounded ? std::chrono::steady_clock::now() + timeout : std::chrono::steady_clock::time_point::max();
  for (;;) {
    const int ms = bounded ? static_cast<int>(std::max<std::int64_t>(
                                 0, std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count()))
                           : -1;
    pollfd p{s.fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, ms);
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) throw ConnectionError(std::string("poll: ") + std::strerror(errno));
  }
}

namespace connection {
namespace {
std::string hex(std::uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

// Python's address_type(): a (host, port) is AF_INET, a string AF_UNIX.
void check_family(const Address& a, const std::string& family) {
  if (family.empty()) return;
  if (family != "AF_UNIX" && family != "AF_INET")
    throw ValueError("unknown family '" + family + "': AF_UNIX or AF_INET (AF_PIPE is Windows')");
  if (family != a.family()) throw ValueError("family " + family + " does not match the address " + a.str());
}

detail::SocketAddress to_socket(const Address& a) {
  detail::SocketAddress s;
  s.tcp = a.inet;
  s.path = a.path;
  s.host = a.host;
  s.port = a.port;
  return s;
}

std::chrono::steady_clock::time_point after(std::chrono::milliseconds t) { return detail::deadline_after(t); }
}  // namespace

std::string Address::str() const {
  if (inet) return host + ":" + std::to_string(port);
  return abstract() ? "@" + path.substr(1) : path;
}

Listener::Listener(Address address, std::string family, int backlog, std::string authkey,
                   std::chrono::milliseconds handshake_timeout)
    : address_(std::move(address)), authkey_(std::move(authkey)), handshake_timeout_(handshake_timeout) {
  if (address_ == Address{}) {  // Python's arbitrary_address(family)
    if (family == "AF_INET") address_ = Address("127.0.0.1", 0);
    else {
      static std::atomic<std::uint64_t> n{0};
      std::uint64_t r;
      detail::random_bytes(reinterpret_cast<std::uint8_t*>(&r), sizeof r);
      address_ = Address(std::string(1, '\0') + "parex-listener-" + std::to_string(::getpid()) + "-" +
                         std::to_string(n++) + "-" + hex(r));
    }
  }
  check_family(address_, family);
  detail::SocketAddress s = to_socket(address_);
  fd_ = detail::listen_at(s, backlog, /*owner_only=*/false);
  address_.port = s.port;  // port 0: the one the system picked
  unlink_ = !address_.inet && !address_.abstract();
}

Listener::~Listener() { close(); }

Listener::Listener(Listener&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), address_(std::move(o.address_)), authkey_(std::move(o.authkey_)),
      handshake_timeout_(o.handshake_timeout_), last_accepted_(std::move(o.last_accepted_)),
      unlink_(std::exchange(o.unlink_, false)) {}

Listener& Listener::operator=(Listener&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    address_ = std::move(o.address_);
    authkey_ = std::move(o.authkey_);
    handshake_timeout_ = o.handshake_timeout_;
    last_accepted_ = std::move(o.last_accepted_);
    unlink_ = std::exchange(o.unlink_, false);
  }
  return *this;
}

void Listener::close() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  if (unlink_) ::unlink(address_.path.c_str());
  unlink_ = false;
}

Connection Listener::accept() {
  if (fd_ < 0) throw ValueError("this Listener is closed");
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  int fd;
  do fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
  while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "accept on " + address_.str());
  if (peer.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(peer);
    char host[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
    last_accepted_ = Address(host, ntohs(in.sin_port));
  } else {
    const auto& un = reinterpret_cast<const sockaddr_un&>(peer);
    const std::size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    std::string path(un.sun_path, n);
    if (!path.empty() && path[0] != '\0') path = path.c_str();  // a file path ends at its NUL
    last_accepted_ = Address(std::move(path));
  }
  Connection c(fd);
  if (!authkey_.empty()) deliver_challenge(c, authkey_, handshake_timeout_);
  return c;
}

Connection Client(const Address& address, const std::string& family, const std::string& authkey,
                  std::chrono::milliseconds handshake_timeout) {
  check_family(address, family);
  Connection c(detail::connect_to(to_socket(address), after(handshake_timeout)));
  if (!authkey.empty()) answer_challenge(c, authkey, handshake_timeout);
  return c;
}

void deliver_challenge(Connection& c, const std::string& authkey, std::chrono::milliseconds timeout) {
  switch (detail::server_handshake(c.fileno(), authkey, after(timeout))) {
    case detail::Handshake::accepted:
      return;
    case detail::Handshake::refused:
      throw AuthenticationError("digest received was wrong: the client does not know the authkey");
    case detail::Handshake::timed_out:
      throw TimeoutError("the client did not answer the authentication challenge within " +
                         std::to_string(timeout.count()) + " ms");
    case detail::Handshake::gone:
      break;
  }
  throw ConnectionError("the client closed the connection during the handshake");
}

void answer_challenge(Connection& c, const std::string& authkey, std::chrono::milliseconds timeout) {
  detail::client_handshake(c.fileno(), authkey, "the listener", after(timeout));
}

}  // namespace connection
}  // namespace parex
