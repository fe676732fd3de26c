// Pipe and Connection (see include/parex/mp/connection.hpp).
//
// The ends segment holds, per end, a table of the processes that hold it (pid, count) and
// the number of its handles in transit. "The other end is gone" = no live pid in its table
// and nothing in transit. Slots are claimed and released with atomics; a dead holder's
// slot is cleared by whoever finds it dead. A table full of live holders (64 processes)
// marks the end `crowded`: it is then never taken for gone.
#include <parex/mp/connection.hpp>

#include "mp/liveness.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <new>
#include <unistd.h>

namespace parex {
namespace detail {

namespace {
constexpr std::uint32_t ends_magic = 0x50495045;  // "PIPE"
constexpr std::uint64_t pipe_queue_tag = 0x50495045'51554555ULL;
constexpr int holder_slots = 64;
constexpr auto eof_check_every = std::chrono::milliseconds(50);
// A handle in transit keeps its end alive this long at most: a receiver that dies before
// it decodes the handle must not make the other side wait for ever.
constexpr auto transit_grace = std::chrono::seconds(5);
// How often send() looks whether the other end is gone. A look costs a signal test and a
// read of /proc per holder (~10 us): on every send that would be most of a small send's
// cost. A message sent between two looks to a peer that died is lost, as it would be had
// it been sent just before the death.
constexpr auto send_check_every = std::chrono::milliseconds(10);

std::int64_t monotonic_ns() {  // system-wide: comparable between processes
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One slot: pid << 32 | count, changed only by compare-and-swap, so that a slot is never
// freed while a thread of the same process counts itself in.
using Holder = std::atomic<std::uint64_t>;
constexpr std::uint64_t slot(std::int32_t pid, std::uint32_t count) {
  return std::uint64_t(std::uint32_t(pid)) << 32 | count;
}
constexpr std::int32_t pid_of(std::uint64_t v) { return std::int32_t(v >> 32); }
constexpr std::uint32_t count_of(std::uint64_t v) { return std::uint32_t(v); }
}  // namespace

struct PipeEnds {
  std::uint32_t magic;
  std::atomic<std::uint32_t> in_transit[2];
  std::atomic<std::int64_t> transit_until[2];  // CLOCK_MONOTONIC ns: transit counts until then
  std::atomic<std::uint32_t> crowded[2];
  Holder holders[2][holder_slots];
};

namespace {
void register_holder(PipeEnds& e, int end) {
  const std::int32_t me = ::getpid();
  for (int pass = 0; pass < 2; ++pass)  // first: a slot of ours; then: an empty one
    for (Holder& h : e.holders[end]) {
      std::uint64_t v = h.load(std::memory_order_acquire);
      for (;;) {
        const bool ours = pid_of(v) == me && count_of(v) > 0;
        const bool empty = v == 0;
        if (!(pass == 0 ? ours : empty)) break;
        if (h.compare_exchange_weak(v, slot(me, count_of(v) + 1), std::memory_order_acq_rel)) return;
      }
    }
  e.crowded[end].store(1, std::memory_order_release);
}

void unregister_holder(PipeEnds& e, int end) {
  const std::int32_t me = ::getpid();
  for (Holder& h : e.holders[end]) {
    std::uint64_t v = h.load(std::memory_order_acquire);
    while (pid_of(v) == me && count_of(v) > 0) {
      const std::uint64_t next = count_of(v) == 1 ? 0 : slot(me, count_of(v) - 1);
      if (h.compare_exchange_weak(v, next, std::memory_order_acq_rel)) return;
    }
  }
}

}  // namespace

EndHold::EndHold(std::shared_ptr<Segment> s, int end, bool received) : segment_(std::move(s)), end_(end) {
  PipeEnds& e = ends();
  register_holder(e, end_);
  if (received) {
    std::uint32_t v = e.in_transit[end_].load(std::memory_order_relaxed);
    while (v != 0 && !e.in_transit[end_].compare_exchange_weak(v, v - 1, std::memory_order_acq_rel)) {
    }
  }
}

EndHold::~EndHold() { unregister_holder(ends(), end_); }

PipeEnds& EndHold::ends() const noexcept { return *reinterpret_cast<PipeEnds*>(segment_->data()); }

bool EndHold::peer_gone() const {
  PipeEnds& e = ends();
  const int other = 1 - end_;
  if (e.crowded[other].load(std::memory_order_acquire)) return false;
  if (e.in_transit[other].load(std::memory_order_acquire) != 0 &&
      monotonic_ns() < e.transit_until[other].load(std::memory_order_acquire))
    return false;
  for (Holder& h : e.holders[other]) {
    std::uint64_t v = h.load(std::memory_order_acquire);
    if (v == 0) continue;
    if (process_alive(pid_of(v))) return false;
    h.compare_exchange_strong(v, 0, std::memory_order_acq_rel);  // it died holding the end
  }
  return true;
}

bool EndHold::peer_gone_lately() const {
  const std::int64_t now = monotonic_ns();
  if (now < next_send_check_.load(std::memory_order_relaxed)) return false;
  next_send_check_.store(now + std::chrono::nanoseconds(send_check_every).count(), std::memory_order_relaxed);
  return peer_gone();
}

std::function<bool()> reader_gone_of(const std::shared_ptr<EndHold>& sender) {
  return [weak = std::weak_ptr<EndHold>(sender)] {
    const auto h = weak.lock();
    return h && h->peer_gone();
  };
}

void EndHold::send_handle(Writer& w) const {
  ends().transit_until[end_].store(monotonic_ns() + std::chrono::nanoseconds(transit_grace).count(),
                                   std::memory_order_release);
  ends().in_transit[end_].fetch_add(1, std::memory_order_acq_rel);
  encode_handle(w, segment_, static_cast<std::uint64_t>(end_));
}

}  // namespace detail

std::pair<Connection, Connection> Pipe(bool duplex) {
  auto seg = detail::Segment::create(sizeof(detail::PipeEnds), "pipe");
  new (seg->data()) detail::PipeEnds{};
  reinterpret_cast<detail::PipeEnds*>(seg->data())->magic = detail::ends_magic;
  auto forward = std::make_shared<detail::QueueCore>(0, detail::default_queue_bytes, detail::pipe_queue_tag);
  Connection a, b;
  a.hold_ = std::make_shared<detail::EndHold>(seg, 0, false);
  b.hold_ = std::make_shared<detail::EndHold>(seg, 1, false);
  if (duplex) {
    auto backward = std::make_shared<detail::QueueCore>(0, detail::default_queue_bytes, detail::pipe_queue_tag);
    a.out_ = forward;
    b.in_ = std::make_shared<detail::QueueCore>(*forward);
    b.out_ = backward;
    a.in_ = std::make_shared<detail::QueueCore>(*backward);
  } else {
    a.in_ = forward;  // Python: Pipe(False) returns (receiving end, sending end)
    b.out_ = std::make_shared<detail::QueueCore>(*forward);
  }
  // A sender stays a holder of its end while its feeder still has messages to move in.
  if (a.out_) a.out_->keepalive = a.hold_;
  if (b.out_) b.out_->keepalive = b.hold_;
  if (a.out_) a.out_->reader_gone = detail::reader_gone_of(a.hold_);
  if (b.out_) b.out_->reader_gone = detail::reader_gone_of(b.hold_);
  return {std::move(a), std::move(b)};
}

void Connection::send_raw(std::span<const std::byte> bytes) {
  if (sock_) [[unlikely]]
    return socket_send(bytes);
  if (!hold_) throw ValueError("this connection is closed");
  if (!out_) throw ValueError("this end of the pipe only receives");
  if (hold_->peer_gone_lately())
    throw BrokenPipeError("no live process holds the other end of this pipe: nobody can receive this message");
  out_->put(bytes, detail::no_timeout);
}

void Connection::recv_raw(detail::Buffer& out, std::size_t maxlength) {
  if (sock_) [[unlikely]]
    return socket_recv(out, maxlength);
  if (!hold_) throw ValueError("this connection is closed");
  if (!in_) throw ValueError("this end of the pipe only sends");
  for (;;) {
    if (in_->get(out, detail::eof_check_every) || (hold_->peer_gone() && in_->get(out, std::chrono::nanoseconds(0)))) {
      if (maxlength != 0 && out.size() > maxlength)
        throw ProtocolError("a message of " + std::to_string(out.size()) + " bytes, past maxlength " +
                            std::to_string(maxlength));
      return;
    }
    if (hold_->peer_gone()) throw EOFError();
  }
}

std::vector<std::byte> Connection::recv_bytes(std::size_t maxlength) {
  detail::Buffer b;
  recv_raw(b, maxlength);
  return {b.data(), b.data() + b.size()};
}

bool Connection::poll_for(std::chrono::nanoseconds timeout) {
  if (sock_) [[unlikely]]
    return socket_poll(timeout);
  if (!hold_) throw ValueError("this connection is closed");
  if (!in_) throw ValueError("this end of the pipe only sends");
  const bool bounded = timeout != detail::no_timeout;
  const auto deadline = bounded ? std::chrono::steady_clock::now() + timeout : std::chrono::steady_clock::time_point::max();
  for (;;) {
    const auto left = deadline - std::chrono::steady_clock::now();
    const auto slice = std::min<std::chrono::nanoseconds>(
        std::max<std::chrono::nanoseconds>(left, std::chrono::nanoseconds(0)), detail::eof_check_every);
    if (in_->wait_readable(slice) || hold_->peer_gone()) return true;
    if (bounded && std::chrono::steady_clock::now() >= deadline) return false;
  }
}

void Connection::check_tag(const detail::Buffer& b, std::uint64_t tag, const char* type) {
  std::uint64_t got = 0;
  if (b.size() >= sizeof got) std::memcpy(&got, b.data(), sizeof got);
  if (b.size() < sizeof got || got != tag)
    throw ProtocolError(std::string("the message is not a ") + detail::demangle(type) +
                        ": it was sent as another type, or by send_bytes()");
}

std::size_t Connection::recv_bytes_into(std::span<std::byte> buffer, std::size_t offset) {
  if (offset > buffer.size()) throw ValueError("offset " + std::to_string(offset) + " is past the buffer's end");
  detail::Buffer b;
  recv_raw(b, 0);
  if (b.size() > buffer.size() - offset)
    throw BufferTooShort("a message of " + std::to_string(b.size()) + " bytes, with room for " +
                             std::to_string(buffer.size() - offset),
                         std::vector<std::byte>(b.data(), b.data() + b.size()));
  if (b.size()) std::memcpy(buffer.data() + offset, b.data(), b.size());
  return b.size();
}

bool Connection::readable() const noexcept { return sock_ ? !!(socket_flags() & 1) : in_ != nullptr; }
bool Connection::writable() const noexcept { return sock_ ? !!(socket_flags() & 2) : out_ != nullptr; }

void Connection::close() noexcept {
  sock_.reset();
  hold_.reset();
  in_.reset();
  out_.reset();
}

void Connection::encode_to(detail::Writer& w) const {
  if (sock_)
    throw ValueError("a socket Connection cannot travel to another process: give the child the Listener's "
                     "address, or pass its descriptor with reduction::send_handle");
  if (!hold_) throw ValueError("cannot send a closed connection");
  hold_->send_handle(w);
  w.put_byte(static_cast<std::uint8_t>((in_ ? 1 : 0) | (out_ ? 2 : 0)));
  if (in_) in_->encode_to(w);
  if (out_) out_->encode_to(w);
}

Connection Connection::decode_from(detail::Reader& r) {
  std::uint64_t end = 0;
  auto seg = detail::decode_handle(r, end, 0);  // the offset names the end
  if (end > 1 || seg->size() < sizeof(detail::PipeEnds) || reinterpret_cast<detail::PipeEnds*>(seg->data())->magic != detail::ends_magic)
    throw SharedObjectError("this handle does not refer to a pipe's end");
  const std::uint8_t flags = r.get_byte();
  Connection c;
  c.hold_ = std::make_shared<detail::EndHold>(std::move(seg), static_cast<int>(end), true);
  if (flags & 1) c.in_ = std::make_shared<detail::QueueCore>(r, detail::pipe_queue_tag);
  if (flags & 2) {
    c.out_ = std::make_shared<detail::QueueCore>(r, detail::pipe_queue_tag);
    c.out_->keepalive = c.hold_;
    c.out_->reader_gone = detail::reader_gone_of(c.hold_);
  }
  return c;
}

}  // namespace parex
