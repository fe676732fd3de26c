// parex/detail/mp/segment.hpp - the shared memory under every multiprocessing object, and
// the handle that travels instead of the object.
//
// A Segment is a memfd mapped MAP_SHARED: no name in /dev/shm, so the kernel frees it
// with its last user, also when every process that used it was SIGKILLed. Another
// process reaches it through /proc/<pid>/fd/<fd> of a process that holds it (same user,
// no ptrace attach needed), and checks a random 64-bit nonce in the header, so a reused
// fd number can never be taken for the segment.
//
// Sending a handle pins the segment in the sender until one receiver has attached (a
// counter in the header): `q.put(parex::Lock())` or `submit(f, parex::Value<int>(0))`
// with a temporary works. A handle sent and never received stays pinned until the
// sender exits, except those sent to a Process: its pins go when it ends without having
// received them (or is destroyed unstarted). A segment with a home (make_home) is sent
// as the home's: nothing pinned. In one process a decoded handle finds the mapping
// already there: the same object, the same address.
//
// Who includes this: the handle types of include/parex/mp/. Thread-safe.
#pragma once

#include <parex/detail/wire/buffer.hpp>
#include <parex/detail/wire/fast_codec.hpp>

#include <chrono>
#include <cstddef>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace parex::detail {

/// Where a segment is and how to check it: what a handle carries on the wire.
struct SegmentRef {
  std::int64_t pid = 0;     // a process that holds it open
  std::int32_t fd = -1;     // its fd there
  std::uint64_t nonce = 0;  // must match the header
  std::uint64_t bytes = 0;  // payload size
};

class Segment {
 public:
  /// A fresh zeroed segment with `bytes` of payload (64-byte aligned). `kind` names it in
  /// /proc/<pid>/fd ("memfd:parex-lock").
  /// @throws std::system_error when the kernel refuses memory or an fd, and (ENOMEM) for a
  /// size past max_bytes (std::system_error is C++'s OSError: parex throws it wherever the
  /// system says no).
  static std::shared_ptr<Segment> create(std::size_t bytes, const char* kind);
  /// The largest payload a segment can have: header and payload must fit in an off_t.
  static constexpr std::size_t max_bytes = (std::size_t{1} << 63) - 1 - 64;
  /// The segment a handle refers to, mapped here (or the mapping this process has).
  /// @throws parex::SharedObjectError when it no longer exists or is not what the handle says.
  /// `received`: this attach is the receipt of a sent handle (unpins it in the sender);
  /// false for an attach by name.
  static std::shared_ptr<Segment> attach(const SegmentRef& ref, bool received = true);

  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return bytes_; }
  int fd() const noexcept { return fd_; }
  std::uint64_t nonce() const noexcept;
  /// A ref for the wire; pins `self` in this process until a receiver attaches.
  static SegmentRef send(const std::shared_ptr<Segment>& self);

  /// This process keeps the segment until it exits (a Manager's server does, for the
  /// objects its Manager makes): from now on a handle to it, sent by any process, names
  /// this process, so it reaches the segment after its sender has dropped it. While this
  /// process lives; once it has ended, handles name their sender again.
  void make_home() noexcept;
  /// Undoes make_home (if this process is the home): at an orderly exit.
  void leave_home() noexcept;

  /// A lock in this segment is held by a thread of this process: keep the memory mapped
  /// even if every handle goes (glibc's robust list points into it, and the kernel must
  /// find the lock there when the thread dies).
  void hold() noexcept { held_.fetch_add(1, std::memory_order_relaxed); }
  void unhold() noexcept { held_.fetch_sub(1, std::memory_order_relaxed); }

  struct Header;

 private:
  std::atomic<int> held_{0};
  Segment(int fd, void* base, std::size_t mapped, std::size_t bytes) noexcept;
  int fd_;
  void* base_;
  std::size_t mapped_;
  std::size_t bytes_;
  std::byte* data_;
};

/// While one lives, the segments that this thread's Segment::send pins are also added to
/// `into` (a Process's call: its receiver may die before it attaches them, and then the
/// pins must go with it; see mp/pins.hpp).
class PinCapture {
 public:
  explicit PinCapture(std::vector<std::weak_ptr<Segment>>& into) noexcept;
  ~PinCapture();
  PinCapture(const PinCapture&) = delete;
  PinCapture& operator=(const PinCapture&) = delete;

 private:
  std::vector<std::weak_ptr<Segment>>* previous_;
};

// ---- timeouts, one convention for every blocking call of the toolbox -----------------
/// "No timeout" inside the toolbox.
inline constexpr std::chrono::nanoseconds no_timeout = std::chrono::nanoseconds::max();
/// A user's timeout: negative counts as zero (return at once), and anything past a century
/// as no timeout (no overflow in ceil or in now() + timeout).
template <class Rep, class Period>
std::chrono::nanoseconds clamp_timeout(std::chrono::duration<Rep, Period> d) noexcept {
  if (d <= d.zero()) return std::chrono::nanoseconds(0);
  if (std::chrono::duration<double>(d) >= std::chrono::hours(24 * 365 * 100)) return no_timeout;
  return std::chrono::ceil<std::chrono::nanoseconds>(d);
}

/// When a toolbox timeout ends; nullopt for no_timeout. Zero has already ended.
inline std::optional<std::chrono::steady_clock::time_point> deadline_of(std::chrono::nanoseconds timeout) {
  if (timeout == no_timeout) return std::nullopt;
  return std::chrono::steady_clock::now() + timeout;
}
inline bool passed(const std::optional<std::chrono::steady_clock::time_point>& deadline) {
  return deadline && std::chrono::steady_clock::now() >= *deadline;
}

/// head + count x each: the payload of a segment that holds `count` objects of `each` bytes
/// after `head` bytes. Every constructor that takes a count or a size computes its segment
/// here: a wrapped sum would map fewer bytes than the object then writes.
/// @throws std::system_error (ENOMEM) past Segment::max_bytes, as Segment::create does.
std::size_t segment_bytes(std::size_t head, std::size_t count, std::size_t each, const char* kind);

/// Writes a handle: the segment and the offset of the object inside it.
void encode_handle(Writer& w, const std::shared_ptr<Segment>& s, std::uint64_t offset);
/// Reads one; `need` is the bytes the object takes from `offset` (checked).
std::shared_ptr<Segment> decode_handle(Reader& r, std::uint64_t& offset, std::uint64_t need);

/// A type that travels as a handle: it has `void encode_to(Writer&) const` and
/// `static T decode_from(Reader&)`.
template <class T>
concept SharedHandle = requires(const T& t, Writer& w, Reader& r) {
  typename T::parex_shared_handle;
  t.encode_to(w);
  { T::decode_from(r) } -> std::same_as<T>;
};

template <class T>
struct FastCodec<T, std::enable_if_t<SharedHandle<T>>> {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = sizeof(SegmentRef);
  static void encode(Writer& w, const T& v) { v.encode_to(w); }
  static T decode(Reader& r) { return T::decode_from(r); }
};

/// A handle as a member of a type that Boost.Serialization encodes (a Process subclass, a
/// user's struct): `ar & lock;` sends the same handle bytes as a direct argument would.
template <class Archive, SharedHandle T>
void serialize_handle(Archive& ar, T& handle) {
  if constexpr (Archive::is_saving::value) {
    Buffer b;
    handle.encode_to(b);
    std::string bytes(reinterpret_cast<const char*>(b.data()), b.size());
    ar & bytes;
  } else {
    std::string bytes;
    ar & bytes;
    Reader r(std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
    handle = T::decode_from(r);
  }
}
/// Every handle type has parex::detail among its associated namespaces (a detail base, or
/// HandleBase), so that argument-dependent lookup finds this serialize for all of them.
struct HandleBase {};
template <class Archive, SharedHandle T>
void serialize(Archive& ar, T& handle, const unsigned) {
  serialize_handle(ar, handle);
}

}  // namespace parex::detail

