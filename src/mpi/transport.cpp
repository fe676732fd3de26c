// Frames as MPI messages (see transport.hpp).
#include "mpi/transport.hpp"

#include <parex/errors.hpp>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <sched.h>
#include <string>

namespace parex::detail::mpi {

namespace {
// Polling loop tunables (Backoff): yield this many rounds, then sleep from first_sleep_ns
// doubling to the loop's max_sleep. Yields keep a round trip at a few microseconds (a
// spin instead of yields made it 3-20x slower here, with more threads than cores); the
// sleeps cap an idle loop's CPU but delay the first message after a quiet spell.
constexpr unsigned yield_rounds = 256;
constexpr long first_sleep_ns = 5'000;

char* as_chars(const std::byte* p) noexcept { return reinterpret_cast<char*>(const_cast<std::byte*>(p)); }
}  // namespace

void OutgoingFrame::send_piece(const bmpi::communicator& comm, int dest, int tag, std::span<const std::byte> piece) {
  while (!piece.empty()) {
    const std::size_t n = std::min(piece.size(), max_message_bytes);
    requests_.push_back(comm.isend(dest, tag, as_chars(piece.data()), static_cast<int>(n)));
    piece = piece.subspan(n);
  }
}

void OutgoingFrame::post(const bmpi::communicator& comm, int dest, int tag) {
  std::size_t at = 0;
  for (const auto& [offset, far] : splices_) {
    send_piece(comm, dest, tag, bytes_.bytes().subspan(at, offset - at));
    send_piece(comm, dest, tag, far);
    at = offset;
  }
  send_piece(comm, dest, tag, bytes_.bytes().subspan(at));
}

bool OutgoingFrame::done() {
  while (!requests_.empty()) {
    if (!requests_.back().test()) return false;
    requests_.pop_back();
  }
  return true;
}

void OutgoingFrame::wait() {
  for (auto& r : requests_) r.wait();
  requests_.clear();
}

Frame receive_frame(const bmpi::communicator& comm, const bmpi::status& first, Buffer& into,
                    std::uint64_t max_payload) {
  const int count = first.count<char>().value_or(0);
  into.truncate(0);
  comm.recv(first.source(), first.tag(), as_chars(into.prepare(static_cast<std::size_t>(count))), count);
  into.advance(static_cast<std::size_t>(count));
  Frame f;
  if (into.size() < sizeof f.header) throw ProtocolError("an MPI message shorter than a frame header");
  std::memcpy(&f.header, into.data(), sizeof f.header);
  validate_header(f.header, max_payload);
  const std::size_t total = sizeof f.header + static_cast<std::size_t>(f.header.length);
  if (into.size() > total) throw ProtocolError("an MPI message longer than the frame it starts");
  if (into.size() < total) {
    // Grow once to the whole frame: its header passed the limit check above.
    into.reserve_more(total - into.size());
    while (into.size() < total) {
      const bmpi::status s = comm.probe(first.source(), first.tag());
      const auto n = static_cast<std::size_t>(s.count<char>().value_or(0));
      if (n == 0 || n > total - into.size()) throw ProtocolError("a frame's messages overrun its length");
      comm.recv(first.source(), first.tag(), as_chars(into.data() + into.size()), static_cast<int>(n));
      into.advance(n);
    }
  }
  f.payload = into.bytes().subspan(sizeof f.header);
  return f;
}

void discard_message(const bmpi::communicator& comm, const bmpi::status& first, Buffer& scratch) {
  const int count = first.count<char>().value_or(0);
  scratch.truncate(0);
  comm.recv(first.source(), first.tag(), as_chars(scratch.prepare(static_cast<std::size_t>(count) + 1)), count);
}

void Backoff::pause() noexcept {
  if (rounds_ < yield_rounds) {
    ++rounds_;
    sched_yield();
    return;
  }
  const unsigned doublings = std::min(rounds_++ - yield_rounds, 16u);
  const long ns = std::min(max_sleep_ns_, first_sleep_ns << doublings);
  timespec t{0, ns};
  nanosleep(&t, nullptr);
}

}  // namespace parex::detail::mpi
