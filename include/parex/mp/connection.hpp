// parex/mp/connection.hpp - Pipe() and Connection (Python's multiprocessing.Pipe and
// multiprocessing.connection.Connection).
//
//   auto [a, b] = parex::Pipe();              // duplex: both ends send and receive
//   parex::Process p(worker, b);   p.start();
//   a.send(std::string("hello"));   auto reply = a.recv<std::string>();
//   auto [rx, tx] = parex::Pipe(false);       // one way: rx receives, tx sends
//
// Each end is a handle: passed to a Process, a pool call or through a Queue it is the
// same end. Messages are any parex Serializable value (send/recv) or raw bytes
// (send_bytes/recv_bytes); a message of any size works. send<T> puts an 8-byte tag of T
// before the value, and recv<U> of a message that is not a U is a ProtocolError, never
// a reinterpretation (recv_bytes of a send()'s message gets the tag, then the encoding).
//
// End of file, as in Python: recv() throws EOFError once nothing is left and no process
// holds the other end any more (every holder closed it, dropped it, or died, SIGKILL
// included, reaped or not), so a recv() never waits for ever on a peer that is gone; and
// send() throws BrokenPipeError (Python's) once that is so. send() looks at most every
// 10 ms: a message sent to a peer that died since the last look is lost, as one sent just
// before its death would be. The same trap as in
// Python: a process that still holds the other end itself (the parent after passing `b`
// to a child) never sees EOF until it closes it. A handle in transit (sent, not yet
// received) counts as a holder for up to 5 seconds after its sending.
//
// Underneath: one shared queue per direction (queues.hpp), so a send that need not wait
// makes no system call; a small table of holder pids per end answers "is the other end
// gone".
//
// A Connection is also one end of a stream socket: from connection::Listener/Client
// (listener.hpp) or Connection(fd). Same API and message encoding (tag + value), each
// message framed as u32 length + bytes; a received message is bounded by
// max_message_size() (default_max_message_size), a larger announced length is a
// ProtocolError that closes the connection before anything of that size is allocated.
// EOFError once the peer closed or died (mid-message included), BrokenPipeError on a send
// to a closed peer (no SIGPIPE). The two backings are one type: the socket one is a
// pointer checked first in each call ([[unlikely]]), so a Pipe end pays one test, not a
// virtual call. A socket end cannot travel to another process as a handle (send its
// descriptor with reduction::send_handle, or give the child the Listener's address).
// Not thread-safe: one thread per direction at a time, as in Python.
#pragma once

#include <parex/detail/mp/segment.hpp>
#include <parex/errors.hpp>
#include <parex/mp/queues.hpp>
#include <parex/serialize.hpp>

#include <atomic>
#include <cstdint>
#include <typeinfo>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace parex {

namespace detail {
struct PipeEnds;
struct SocketEnd;
struct ConnectionAccess;
/// A socket Connection's receive limit unless set_max_message_size says otherwise.
inline constexpr std::size_t default_max_message_size = std::size_t{1} << 30;  // 1 GiB
/// This process's hold on one end of a pipe: registered while it lives.
class EndHold {
 public:
  EndHold(std::shared_ptr<Segment> s, int end, bool received);
  ~EndHold();
  EndHold(const EndHold&) = delete;
  EndHold& operator=(const EndHold&) = delete;
  PipeEnds& ends() const noexcept;
  int end() const noexcept { return end_; }
  const std::shared_ptr<Segment>& segment() const noexcept { return segment_; }
  /// True when no live process holds the other end and none is in transit.
  bool peer_gone() const;
  /// peer_gone(), asked at most every few ms (send's check); false in between.
  bool peer_gone_lately() const;
  void send_handle(Writer& w) const;

 private:
  std::shared_ptr<Segment> segment_;
  int end_;
  mutable std::atomic<std::int64_t> next_send_check_{0};
};
/// For a sending end's queue (QueueCore::reader_gone): whether the other end is gone.
std::function<bool()> reader_gone_of(const std::shared_ptr<EndHold>& sender);
}  // namespace detail

class Connection : public detail::HandleBase {
 public:
  using parex_shared_handle = void;

  /// A Connection over a connected stream socket fd (Unix or TCP), which it now owns
  /// (Python's Connection(handle)). @throws ValueError if fd is not a socket.
  explicit Connection(int fd, bool readable = true, bool writable = true);

  /// Sends obj. @throws ValueError if this end is closed or receive-only; BrokenPipeError
  /// once no live process holds the other end (see above).
  template <class T>
  void send(const T& obj) {
    static_assert(Serializable<T>, "parex::Connection::send: " PAREX_DETAIL_SERIALIZABLE_FIX);
    detail::Buffer b;
    b.put_raw<std::uint64_t>(detail::type_tag<T>());
    detail::encode<T>(b, obj);
    send_raw(b.bytes());
  }
  /// Receives the next message as a T. @throws EOFError (see above), ProtocolError if it
  /// is not a T (sent as another type, or by send_bytes).
  template <class T>
  T recv() {
    detail::Buffer b;
    recv_raw(b, 0);
    check_tag(b, detail::type_tag<T>(), typeid(T).name());
    detail::Reader r(b.bytes().subspan(sizeof(std::uint64_t)));
    T v = detail::decode<T>(r);
    if (!r.empty()) throw ProtocolError("the message holds more than one value of the type asked for");
    return v;
  }
  void send_bytes(std::span<const std::byte> bytes) { send_raw(bytes); }
  /// The next message's bytes. maxlength (0: none): a longer message throws ProtocolError
  /// and is dropped, as Python's recv_bytes(maxlength) closes on one.
  std::vector<std::byte> recv_bytes(std::size_t maxlength = 0);
  /// Receives the next message into buffer at offset; returns its size.
  /// @throws BufferTooShort (holding the message) if it does not fit.
  std::size_t recv_bytes_into(std::span<std::byte> buffer, std::size_t offset = 0);
  /// True if a message is waiting, or the other end is gone (recv would not block).
  bool poll() { return poll_for(std::chrono::nanoseconds(0)); }
  template <class Rep, class Period>
  bool poll(std::chrono::duration<Rep, Period> timeout) {
    return poll_for(detail::clamp_timeout(timeout));
  }
  /// Closes this handle's end (other handles in this process keep theirs).
  void close() noexcept;
  bool closed() const noexcept { return !hold_ && !sock_; }
  bool readable() const noexcept;
  bool writable() const noexcept;
  /// The socket's descriptor. @throws ValueError for a Pipe end (shared memory, no fd:
  /// use connection::wait to wait on it) or a closed connection.
  int fileno() const;
  /// A socket connection's receive limit in bytes (default_max_message_size).
  /// @throws ValueError on a Pipe end (its peer shares memory with this process anyway).
  std::size_t max_message_size() const;
  void set_max_message_size(std::size_t bytes);

  void encode_to(detail::Writer& w) const;
  static Connection decode_from(detail::Reader& r);

 private:
  friend std::pair<Connection, Connection> Pipe(bool duplex);
  friend struct detail::ConnectionAccess;
  Connection() = default;
  // The socket backing (connection_socket.cpp): out of line, off the Pipe path.
  void socket_send(std::span<const std::byte> bytes);
  void socket_recv(detail::Buffer& out, std::size_t maxlength);
  bool socket_poll(std::chrono::nanoseconds timeout);
  detail::SocketEnd& socket() const;
  unsigned socket_flags() const noexcept;  // 1 readable, 2 writable
  void send_raw(std::span<const std::byte> bytes);
  static void check_tag(const detail::Buffer& b, std::uint64_t tag, const char* type);
  void recv_raw(detail::Buffer& out, std::size_t maxlength);
  bool poll_for(std::chrono::nanoseconds timeout);
  std::shared_ptr<detail::EndHold> hold_;
  std::shared_ptr<detail::QueueCore> in_, out_;  // empty where this end does not read / write
  std::shared_ptr<detail::SocketEnd> sock_;      // set for a socket end (then hold_ is empty)
};

/// A pair of connected ends. duplex: both ways; else the first receives, the second sends.
std::pair<Connection, Connection> Pipe(bool duplex = true);

}  // namespace parex
