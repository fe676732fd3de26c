// parex/detail/wire/records.hpp - the records inside frames: one definition, used by the
// side that writes and the side that reads (a pool and its workers today, MPI ranks next).
//
//   hello payload   = u32 protocol version, u64 registry digest
//   calls payload   = call*
//   call            = varint (fn id << 1 | in_arena), varint n, then
//                       in_arena = 0: item * n
//                       in_arena = 1: varint offset, varint length  (the n items are there,
//                                     in the pool's shared argument arena)
//   item            = varint len, the encoded arguments (len bytes)
//   results payload = outcome*       (one per item, in the order the items were sent)
//   outcome         = u8 status, varint len, body (len bytes)
//                       ok:    the encoded result
//                       error: u8 stage, the encoded exception
//
// Outcomes are per item, not per call, so a worker can flush after any item and the
// reader maps them back by order. Readers are bounds-checked (a corrupt record is a
// ProtocolError, never a read past the end). Stateless functions; thread-safe.
#pragma once

#include <parex/detail/wire/buffer.hpp>
#include <parex/detail/wire/frame.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>

namespace parex::detail {

// ---- lengths -----------------------------------------------------------------------

/// Writes `encode_body(w)` preceded by its length as a varint. The prefix is reserved
/// before the body: 1 byte, or as many as `hint` (an estimate of the body's size) needs;
/// the body is shifted only if it outgrows the reservation.
template <class Body>
void put_length_prefixed(Writer& w, Body&& encode_body, std::size_t hint = 0) {
  std::size_t width = 1;
  for (std::size_t v = hint >> 7; v; v >>= 7) ++width;
  if (width > 1) width = std::min<std::size_t>(width + 1, 10);  // slack: the hint is an estimate
  const std::size_t at = w.size();
  w.prepare(width);
  w.advance(width);
  encode_body(w);
  const std::size_t len = w.size() - at - width;
  if (width == 1 && len < 0x80) {
    w.data()[at] = static_cast<std::byte>(len);
    return;
  }
  if (width > 1 && (width >= 10 || len >> (7 * width) == 0)) {
    w.patch_varint(at, len, width);
    return;
  }
  if (width > 1) {  // outgrew its reservation: collapse to one byte, then shift as below
    std::memmove(w.data() + at + 1, w.data() + at + width, len);
    w.truncate(at + 1 + len);
  }
  std::size_t extra = 0;
  for (std::size_t v = len >> 7; v; v >>= 7) ++extra;
  w.prepare(extra);
  std::memmove(w.data() + at + 1 + extra, w.data() + at + 1, len);
  w.advance(extra);
  std::size_t v = len;
  std::byte* p = w.data() + at;
  while (v >= 0x80) {
    *p++ = static_cast<std::byte>(v | 0x80);
    v >>= 7;
  }
  *p = static_cast<std::byte>(v);
}

// ---- hello: a worker's first frame -------------------------------------------------

/// hello payload = u32 protocol version | u64 registry digest (a different binary differs).
struct Hello {
  std::uint32_t version = 0;
  std::uint64_t digest = 0;
};
inline void put_hello(Writer& w, std::uint64_t digest) {
  w.put_raw<std::uint32_t>(protocol_version);
  w.put_raw<std::uint64_t>(digest);
}
inline Hello read_hello(Reader& r) {
  Hello h;
  h.version = r.get_raw<std::uint32_t>();
  h.digest = r.get_raw<std::uint64_t>();
  return h;
}

// ---- calls and items -----------------------------------------------------------------

struct CallHead {
  std::uint32_t fn_id = 0;
  std::uint64_t items = 0;
  bool in_arena = false;
  bool timed = false;  // the pool watches its items' run time: the worker stamps each start
};
struct ArenaRef {
  std::uint64_t offset = 0, length = 0;
};

inline void put_call_head(Writer& w, const CallHead& h) {
  w.put_varint(std::uint64_t{h.fn_id} << 2 | std::uint64_t{h.timed} << 1 | std::uint64_t{h.in_arena});
  w.put_varint(h.items);
}
inline CallHead read_call_head(Reader& r) {
  const std::uint64_t head = r.get_varint();
  if ((head >> 2) > UINT32_MAX) throw ProtocolError("function id out of range");
  return {static_cast<std::uint32_t>(head >> 2), r.get_varint(), (head & 1) != 0, (head & 2) != 0};
}
inline void put_arena_ref(Writer& w, const ArenaRef& a) {
  w.put_varint(a.offset);
  w.put_varint(a.length);
}
inline ArenaRef read_arena_ref(Reader& r) {
  const std::uint64_t offset = r.get_varint();
  return {offset, r.get_varint()};
}

/// The next item's encoded arguments (an item is written by encode_item, remote_call.hpp).
inline Reader read_item(Reader& r) { return Reader(r.take(r.get_varint())); }

// ---- outcomes --------------------------------------------------------------------------

/// An ok outcome whose body encode_body writes (hint: its expected size; fixed: its exact
/// size when known at compile time and below 128, else 0).
template <class Body>
void put_ok_outcome(Writer& w, Body&& encode_body, std::size_t hint, std::size_t fixed = 0) {
  w.put_byte(static_cast<std::uint8_t>(OutcomeStatus::ok));
  if (fixed != 0 && fixed < 0x80) {
    w.put_byte(static_cast<std::uint8_t>(fixed));
    encode_body(w);
  } else {
    put_length_prefixed(w, encode_body, hint);
  }
}
/// An error outcome: where it failed and the exception (wire/exceptions.cpp).
void put_error_outcome(Writer& w, Stage stage, const std::exception_ptr& e) noexcept;

struct OutcomeView {
  OutcomeStatus status;
  Reader body;
};
inline OutcomeView read_outcome(Reader& r) {
  const auto status = r.get_byte();
  if (status > static_cast<std::uint8_t>(OutcomeStatus::error)) throw ProtocolError("bad outcome status");
  Reader body(r.take(r.get_varint()));
  return {static_cast<OutcomeStatus>(status), body};
}

}  // namespace parex::detail
