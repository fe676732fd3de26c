// parex/detail/wire/frame.hpp - the frames of the batched channel between a pool and a worker.
//
//   frame   = header (24 bytes) + payload
//   header  = magic "PRX\1" | u16 protocol version | u16 kind | u64 payload length |
//             u32 items | u32 busy_us (results: microseconds the worker spent on them)
//   payload = by kind (below); the calls and results payloads are records (records.hpp)
//
// The transport (channel/) moves frames as bytes; what they hold is here. A corrupt,
// truncated or oversized frame is a ProtocolError, never a hang or a huge allocation:
// FrameReader grows its buffer as bytes arrive, not as a header claims.
// Not thread-safe: one FrameReader per stream, used by one thread.
#pragma once

#include <parex/detail/wire/buffer.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace parex::detail {

inline constexpr std::uint32_t frame_magic = 0x01585250;  // "PRX\1" little-endian
inline constexpr std::uint16_t protocol_version = 5;

enum class FrameKind : std::uint16_t {
  hello = 1,        // worker -> pool: protocol, registry digest
  init = 2,         // pool -> worker: the initializer call (or none)
  ready = 3,        // worker -> pool: initializer done
  init_failed = 4,  // worker -> pool: initializer threw (payload: exception)
  calls = 5,        // pool -> worker
  results = 6,      // worker -> pool
  shared_results = 7,  // worker -> pool: results left in its shared results buffer (payload:
                       // u64 offset from the buffer's start, after the header page; u64
                       // length; the pool acknowledges them: process/shared_page.hpp)
};

struct FrameHeader {
  std::uint32_t magic = frame_magic;
  std::uint16_t version = protocol_version;
  std::uint16_t kind = 0;
  std::uint64_t length = 0;
  std::uint32_t items = 0;
  std::uint32_t busy_us = 0;  // results: time the worker spent on these items
};
static_assert(sizeof(FrameHeader) == 24);

enum class OutcomeStatus : std::uint8_t { ok = 0, error = 1 };

/// Where a call failed, carried with its error so that the message can say it.
enum class Stage : std::uint8_t { run = 0, decode_args = 1, encode_result = 2 };

struct Frame {
  FrameHeader header;
  std::span<const std::byte> payload;
  FrameKind kind() const noexcept { return static_cast<FrameKind>(header.kind); }
};

/// Reassembles frames from a byte stream read in arbitrary pieces.
class FrameReader {
 public:
  /// Frames whose payload exceeds max_payload_bytes are a ProtocolError (so is one that
  /// this address space could not hold, whatever the limit: no length arithmetic wraps).
  explicit FrameReader(std::uint64_t max_payload_bytes) noexcept
      : max_payload_(std::min<std::uint64_t>(max_payload_bytes, SIZE_MAX / 2)) {}
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;
  ~FrameReader();

  /// Space to read into: at least min_free bytes (more when a big frame is arriving).
  std::span<std::byte> prepare(std::size_t min_free = 64 * 1024);
  /// Marks n bytes of the last prepare() as filled.
  void commit(std::size_t n) noexcept { end_ += n; }

  /// The next complete frame, or nullopt if more bytes are needed. The payload stays
  /// valid until the next call of next(), prepare() or commit().
  /// @throws ProtocolError on a bad magic, version, kind or an oversized length.
  std::optional<Frame> next();

  /// True if bytes of an incomplete frame are buffered (a stream that ends now is truncated).
  bool mid_frame() const noexcept { return end_ > begin_ + consumed_; }

 private:
  void drop_consumed() noexcept;
  std::byte* buf_ = nullptr;
  std::size_t cap_ = 0;
  std::size_t begin_ = 0;  // first unconsumed byte
  std::size_t end_ = 0;    // one past the last received byte
  std::size_t want_ = 0;   // size of the frame being assembled, once its header is in
  std::size_t consumed_ = 0;  // the frame last returned by next(), dropped on the next call
  std::size_t small_frames_ = 0;  // frames in a row much smaller than the buffer
  std::uint64_t max_payload_;
};

/// Checks a header on its own (magic, version, kind, length).
void validate_header(const FrameHeader& h, std::uint64_t max_payload_bytes);

/// Starts a frame in w: writes a header to patch later with finish_frame().
std::size_t begin_frame(Writer& w, FrameKind kind);
/// Patches the header begun at offset `at` with the payload length, items and busy time;
/// `elsewhere`: payload bytes that travel outside w (spliced into the stream by the sender).
void finish_frame(Writer& w, std::size_t at, std::uint32_t items, std::uint32_t busy_us = 0,
                  std::uint64_t elsewhere = 0) noexcept;
/// The header of a frame whose payload is written separately (length bytes).
inline FrameHeader frame_header(FrameKind kind, std::uint64_t length, std::uint32_t items, std::uint32_t busy_us) {
  FrameHeader h;
  h.kind = static_cast<std::uint16_t>(kind);
  h.length = length;
  h.items = items;
  h.busy_us = busy_us;
  return h;
}

}  // namespace parex::detail
