// parex/mp/shared_memory.hpp - SharedMemory: a block of bytes that processes share
// (Python's multiprocessing.shared_memory.SharedMemory).
//
//   parex::SharedMemory shm(1 << 20);                 // create
//   parex::SharedMemory other(shm.name());            // attach by name, in any process of this user
//   std::span<std::byte> b = shm.buf();
//
// Also a handle: passed to a Process, a pool call or through a Queue, it arrives as the
// same memory. The memory is a memfd, not a file in /dev/shm: the kernel frees it when the
// last process that has it closes it or dies, so nothing is ever left behind, also after
// SIGKILLs. The price: a name reaches the memory only while some process of the program
// still holds it (the name names that process's fd), and unlink() is a flag: it makes
// later attaches by name fail (SharedObjectError), as unlinking the file does in Python.
//
// Errors, as Python's: a size of 0 or below, an empty name or one with a NUL is ValueError;
// memory the system cannot give (a size past Segment::max_bytes, or one mmap refuses) is
// std::system_error with ENOMEM, C++'s OSError, which parex throws wherever the system says no.
#pragma once

#include <parex/detail/mp/segment.hpp>

#include <concepts>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace parex {

class SharedMemory : public detail::HandleBase {
 public:
  using parex_shared_handle = void;

  /// A new zero-filled block of `size` bytes.
  /// @throws ValueError if size is 0; std::system_error if the memory cannot be had.
  explicit SharedMemory(std::size_t size);
  /// The same from a signed size: @throws ValueError if it is not positive (not a huge
  /// size_t after a silent conversion).
  template <std::signed_integral I>
  explicit SharedMemory(I size) : SharedMemory(positive_size(static_cast<long long>(size))) {}
  /// Attaches to the block `name` names (name() of a SharedMemory in any process of this
  /// program that still holds it). @throws ValueError for an empty name or one with a NUL;
  /// SharedObjectError if unreachable or unlinked.
  explicit SharedMemory(std::string_view name);

  /// A name other processes attach with; valid while this process holds the block.
  std::string name() const;
  std::span<std::byte> buf() const;
  std::size_t size() const noexcept { return size_; }
  /// Drops this handle's mapping (others keep theirs). buf() is empty afterwards.
  void close() noexcept;
  /// Later attaches by name fail. Mappings and handles already made keep working.
  void unlink() noexcept;

  void encode_to(detail::Writer& w) const;
  static SharedMemory decode_from(detail::Reader& r);

 private:
  SharedMemory() = default;
  static std::size_t positive_size(long long size);
  std::shared_ptr<detail::Segment> segment_;
  std::size_t size_ = 0;
};

}  // namespace parex
