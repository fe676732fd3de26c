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
#pragma once

#include <parex/detail/mp/segment.hpp>

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
  explicit SharedMemory(std::size_t size);
  /// Attaches to the block `name` names (name() of a SharedMemory in any process of this
  /// program that still holds it). @throws SharedObjectError if unreachable or unlinked.
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
  std::shared_ptr<detail::Segment> segment_;
  std::size_t size_ = 0;
};

}  // namespace parex
