// parex/detail/wire/buffer.hpp - the byte buffers every codec writes into and reads from.
//
// Writer appends bytes; how it grows is a function pointer (heap for call payloads and
// frames, a shared-memory mapping for a worker's results), so the hot path is an inline
// bounds check and a memcpy. Reader is a bounds-checked cursor over bytes it does not
// own: reading past the end throws ProtocolError, never reads out of bounds.
// Neither is thread-safe: one owner thread at a time.
#pragma once

#include <parex/errors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>

namespace parex::detail {

/// Faults in a large fresh buffer (>= 8 MiB) with one system call before it is written,
/// instead of one trap per 4 KiB page as a copy walks it. No-op on kernels before 5.14.
void prefault(void* p, std::size_t n) noexcept;
/// Asks for transparent huge pages on a large fresh buffer (>= prefault_threshold).
void advise_huge(void* p, std::size_t n) noexcept;
inline constexpr std::size_t prefault_threshold = std::size_t{8} << 20;

class Writer {
 public:
  using GrowFn = void (*)(Writer& w, std::size_t min_capacity);

  std::size_t size() const noexcept { return size_; }
  std::byte* data() noexcept { return data_; }
  const std::byte* data() const noexcept { return data_; }
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }

  void reserve_more(std::size_t n) {
    if (cap_ - size_ < n) grow_(*this, size_ + n);
  }
  void put(const void* p, std::size_t n) {
    reserve_more(n);
    if (n) std::memcpy(data_ + size_, p, n);
    size_ += n;
  }
  void put_byte(std::uint8_t b) {
    reserve_more(1);
    data_[size_++] = static_cast<std::byte>(b);
  }
  template <class T>
  void put_raw(const T& v) {
    put(&v, sizeof v);
  }
  /// LEB128: 1 byte below 128, at most 10.
  void put_varint(std::uint64_t v) {
    reserve_more(10);
    while (v >= 0x80) {
      data_[size_++] = static_cast<std::byte>(v | 0x80);
      v >>= 7;
    }
    data_[size_++] = static_cast<std::byte>(v);
  }
  /// Room for n bytes written in place; commit them with advance(n).
  std::byte* prepare(std::size_t n) {
    reserve_more(n);
    return data_ + size_;
  }
  void advance(std::size_t n) noexcept { size_ += n; }
  /// Writes v as a varint padded to exactly `width` bytes (LEB128 allows the padding),
  /// at offset `at`: lets a length be reserved before the bytes it counts.
  void patch_varint(std::size_t at, std::uint64_t v, std::size_t width) noexcept {
    for (std::size_t i = 0; i + 1 < width; ++i, v >>= 7) data_[at + i] = static_cast<std::byte>((v & 0x7f) | 0x80);
    data_[at + width - 1] = static_cast<std::byte>(v);
  }
  /// Drops everything after the first n bytes (a failed encode rolls back with this).
  void truncate(std::size_t n) noexcept {
    if (n < size_) size_ = n;
  }

 protected:
  explicit Writer(GrowFn grow) noexcept : grow_(grow) {}
  ~Writer() = default;

 public:  // for GrowFn implementations
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t cap_ = 0;

 private:
  GrowFn grow_;
};

/// Where a Buffer may take its large blocks instead of the heap: a process pool's shared
/// argument arena, so that a big argument is encoded straight into memory its workers
/// read. Thread-safe.
class BlockAllocator {
 public:
  /// A block of at least n bytes (its size in cap), or nullptr: then the heap is used.
  virtual std::byte* allocate(std::size_t n, std::size_t& cap) noexcept = 0;
  virtual void release(std::byte* p, std::size_t cap) noexcept = 0;

 protected:
  ~BlockAllocator() = default;
};

/// A heap buffer with room for small payloads inline (no allocation for tiny calls).
class Buffer : public Writer {
 public:
  static constexpr std::size_t inline_capacity = 48;
  Buffer() noexcept : Writer(&grow_heap) {
    data_ = inline_;
    cap_ = inline_capacity;
  }
  /// Large blocks (from prefault_threshold up) come from a when it has room. a must
  /// outlive the buffer's block: release or move the buffer first.
  void use_blocks_from(BlockAllocator* a) noexcept { blocks_ = a; }
  /// The allocator the current block came from, or nullptr (heap or inline).
  BlockAllocator* block_owner() const noexcept { return owner_; }
  Buffer(Buffer&& o) noexcept : Writer(&grow_heap) { take(std::move(o)); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      take(std::move(o));
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() {
    if (data_ != inline_) release();  // inline bytes: nothing to free (the common tiny call)
  }

  void clear() noexcept { size_ = 0; }
  /// Empty, its memory freed (inline again); where big blocks may come from is kept.
  /// The same as assigning Buffer() but inline for a buffer that never left inline_.
  void reset() noexcept {
    if (data_ != inline_) release();
    size_ = 0;
  }
  /// Frees heap memory beyond keep bytes of capacity (after a large frame).
  void shrink(std::size_t keep);

 private:
  static void grow_heap(Writer& w, std::size_t min_capacity);
  void release() noexcept;
  void take(Buffer&& o) noexcept;
  BlockAllocator* blocks_ = nullptr;  // where big blocks may come from
  BlockAllocator* owner_ = nullptr;   // where data_ came from, if not the heap or inline_
  std::byte inline_[inline_capacity];
};

/// A bounds-checked cursor over bytes owned elsewhere.
class Reader {
 public:
  Reader() noexcept = default;
  explicit Reader(std::span<const std::byte> b) noexcept : p_(b.data()), end_(b.data() + b.size()) {}

  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }
  bool empty() const noexcept { return p_ == end_; }
  const std::byte* position() const noexcept { return p_; }

  void get(void* out, std::size_t n) {
    need(n);
    if (n) std::memcpy(out, p_, n);
    p_ += n;
  }
  std::uint8_t get_byte() {
    need(1);
    return static_cast<std::uint8_t>(*p_++);
  }
  template <class T>
  T get_raw() {
    T v;
    get(&v, sizeof v);
    return v;
  }
  std::uint64_t get_varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const std::uint8_t b = get_byte();
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    throw ProtocolError("malformed varint");
  }
  /// The next n bytes, consumed.
  std::span<const std::byte> take(std::uint64_t n) {
    need(n);
    std::span<const std::byte> s(p_, static_cast<std::size_t>(n));
    p_ += n;
    return s;
  }
  /// A count that the remaining bytes could possibly hold, at min_bytes each: a corrupt
  /// count must not make a decoder reserve gigabytes.
  std::size_t get_count(std::size_t min_bytes) {
    const std::uint64_t n = get_varint();
    if (min_bytes && n > remaining() / min_bytes) throw ProtocolError("element count larger than the data holds");
    return static_cast<std::size_t>(n);
  }

 private:
  void need(std::uint64_t n) const {
    if (n > static_cast<std::uint64_t>(end_ - p_)) throw_truncated(n);
  }
  [[noreturn]] void throw_truncated(std::uint64_t n) const;
  const std::byte* p_ = nullptr;
  const std::byte* end_ = nullptr;
};

}  // namespace parex::detail
