// Frames: the header written and checked, and FrameReader reassembling frames from a
// byte stream (see parex/detail/wire/frame.hpp).
#include <parex/detail/wire/frame.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

namespace parex::detail {

// ---- frames ------------------------------------------------------------------------------

void validate_header(const FrameHeader& h, std::uint64_t max_payload_bytes) {
  if (h.magic != frame_magic) throw ProtocolError("bad frame magic: the stream is corrupt or not a parex channel");
  if (h.version != protocol_version)
    throw ProtocolError("frame protocol version " + std::to_string(h.version) + ", expected " +
                        std::to_string(protocol_version));
  if (h.kind < static_cast<std::uint16_t>(FrameKind::hello) || h.kind > static_cast<std::uint16_t>(FrameKind::shared_results))
    throw ProtocolError("unknown frame kind " + std::to_string(h.kind));
  if (h.length > max_payload_bytes)
    throw ProtocolError("frame of " + std::to_string(h.length) + " bytes exceeds the limit of " +
                        std::to_string(max_payload_bytes));
}

std::size_t begin_frame(Writer& w, FrameKind kind) {
  const std::size_t at = w.size();
  FrameHeader h;
  h.kind = static_cast<std::uint16_t>(kind);
  w.put_raw(h);
  return at;
}

void finish_frame(Writer& w, std::size_t at, std::uint32_t items, std::uint32_t busy_us, std::uint64_t elsewhere) noexcept {
  FrameHeader h;
  std::memcpy(&h, w.data() + at, sizeof h);
  h.length = w.size() - at - sizeof h + elsewhere;
  h.items = items;
  h.busy_us = busy_us;
  std::memcpy(w.data() + at, &h, sizeof h);
}

namespace {
// A reader keeps at most this much capacity while idle; a frame bigger than that is
// freed again once consumed.
constexpr std::size_t idle_capacity = std::size_t{4} << 20;
// How far past the bytes already received a header alone may make us allocate: a corrupt
// length costs at most this, and big frames still grow geometrically.
constexpr std::size_t trust_step = std::size_t{1} << 20;
}  // namespace

FrameReader::~FrameReader() { std::free(buf_); }

void FrameReader::drop_consumed() noexcept {
  if (consumed_) {
    // A buffer grown for big frames is kept while big frames keep coming (no page faults,
    // no zeroing for the next one) and freed after a run of small ones.
    small_frames_ = consumed_ * 8 < cap_ ? small_frames_ + 1 : 0;
    begin_ += consumed_;
    consumed_ = 0;
  }
  if (begin_ == end_) {
    begin_ = end_ = 0;
    if (cap_ > idle_capacity && small_frames_ >= 16) {
      std::free(buf_);
      buf_ = nullptr;
      cap_ = 0;
    }
  }
}

std::span<std::byte> FrameReader::prepare(std::size_t min_free) {
  drop_consumed();
  const std::size_t have = end_ - begin_;
  std::size_t need = min_free;
  if (want_ > have) need = std::max(need, std::min(want_ - have, std::max(have, trust_step)));
  if (cap_ - end_ < need && begin_ > 0) {
    std::memmove(buf_, buf_ + begin_, have);
    begin_ = 0;
    end_ = have;
  }
  if (cap_ - end_ < need) {
    const std::size_t cap = std::max(end_ + need, cap_ + cap_ / 2);
    void* p = std::realloc(buf_, cap);
    if (!p) throw std::bad_alloc();
    prefault(static_cast<std::byte*>(p) + end_, cap - end_);
    buf_ = static_cast<std::byte*>(p);
    cap_ = cap;
  }
  return {buf_ + end_, cap_ - end_};
}

std::optional<Frame> FrameReader::next() {
  drop_consumed();
  const std::size_t have = end_ - begin_;
  if (have < sizeof(FrameHeader)) return std::nullopt;
  Frame f;
  std::memcpy(&f.header, buf_ + begin_, sizeof f.header);
  validate_header(f.header, max_payload_);
  const std::size_t total = sizeof(FrameHeader) + static_cast<std::size_t>(f.header.length);
  if (have < total) {
    want_ = total;
    return std::nullopt;
  }
  want_ = 0;
  consumed_ = total;
  f.payload = {buf_ + begin_ + sizeof(FrameHeader), static_cast<std::size_t>(f.header.length)};
  return f;
}

}  // namespace parex::detail
