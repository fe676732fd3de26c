// parex/mp/shared_memory.hpp - SharedMemory: a block of bytes that processes share
// (Python's multiprocessing.shared_memory.SharedMemory).
//
//   parex::SharedMemory shm(1 << 20);                      // anonymous: Python's SharedMemory(create=True, size=...)
//   parex::SharedMemory named("my_block", true, 4096);     // Python's SharedMemory("my_block", create=True, size=4096)
//   parex::SharedMemory other("my_block");                 // attach, in any process of this user (Python's too)
//   std::span<std::byte> b = named.buf();
//   named.unlink();                                        // the name goes; mappings stay valid
//
// Two kinds of block, one type:
//   - named (a name the user picks, create = true): a POSIX shared memory object
//     (/dev/shm/<name>), exactly as Python's: its bytes are the file's, its size the
//     file's, and unrelated programs of the user - Python's shared_memory among them -
//     attach by the same name. It lives until unlink(); parex unlinks at this process's
//     end the blocks it created and never unlinked (track = true, the default): at a
//     normal exit with a warning, and after any other end (SIGKILL included) through a
//     tiny tracker process (see NOTES: "what is and is not cleaned").
//   - anonymous (SharedMemory(size)): a memfd, never a file: the kernel frees it with its
//     last user, so nothing is ever left behind, also after SIGKILLs. Its name() reaches
//     it only while some process of the program still holds it (the name names that
//     process's fd); unlink() makes later attaches by name and handles decoded later fail.
// Both are handles: passed to a Process, a pool call or through a Queue, they arrive as the
// same memory (a named block is attached by its name, as Python's pickling does).
//
// Errors, as Python's: a size of 0 to create, a negative size, an empty name or one with
// a NUL is ValueError; a name that is taken (create) FileExistsError, a name nothing has
// (attach, or a handle of a block unlinked since) FileNotFoundError, unlink() of a name
// already unlinked FileNotFoundError - both std::system_error (C++'s OSError) with errno
// EEXIST / ENOENT; other refusals of the system (a '/' inside a name, a name too long,
// memory it cannot give) std::system_error with its errno.
// Thread-safety: distinct handles may be used from any threads; one handle is not
// synchronized (as any standard object). The bytes themselves are not synchronized.
#pragma once

#include <parex/detail/mp/segment.hpp>

#include <concepts>
#include <cstddef>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace parex {

namespace detail {
struct NamedBlock;
}

class SharedMemory : public detail::HandleBase {
 public:
  using parex_shared_handle = void;

  /// A new zero-filled anonymous block of `size` bytes (Python: SharedMemory(create=True, size=size)).
  /// @throws ValueError if size is 0; std::system_error if the memory cannot be had.
  explicit SharedMemory(std::size_t size);
  /// The same from a signed size: @throws ValueError if it is not positive.
  template <std::signed_integral I>
  explicit SharedMemory(I size) : SharedMemory(positive_size(static_cast<long long>(size))) {}
  /// Attaches to the block `name` names: a named block, or the name() of an anonymous one.
  /// @throws ValueError for an empty name or one with a NUL; FileNotFoundError if nothing
  /// has that name (or it was unlinked).
  explicit SharedMemory(std::string_view name);
  explicit SharedMemory(const char* name) : SharedMemory(std::string_view(name)) {}
  explicit SharedMemory(const std::string& name) : SharedMemory(std::string_view(name)) {}
  /// Python's SharedMemory(name, create, size, track=track). create: a new named block
  /// of `size` bytes (zero-filled); otherwise an attach, where size is ignored (Python
  /// too: the block's own size is reported). track (create only): unlink it when this
  /// process ends if it was never unlinked.
  /// @throws ValueError (create with size 0; an empty name, a NUL or a newline in it),
  /// FileExistsError (create: the name is taken), FileNotFoundError (attach: no such
  /// block), std::system_error (a '/' in the name, too long, no memory, ...).
  SharedMemory(std::string_view name, bool create, std::size_t size = 0, bool track = true);
  template <std::signed_integral I>
  SharedMemory(std::string_view name, bool create, I size, bool track = true)
      : SharedMemory(name, create, non_negative(static_cast<long long>(size)), track) {}
  /// Python's name=None: with create, an anonymous block; without, ValueError.
  SharedMemory(std::nullopt_t, bool create, std::size_t size = 0);
  template <std::signed_integral I>
  SharedMemory(std::nullopt_t, bool create, I size) : SharedMemory(std::nullopt, create, non_negative(static_cast<long long>(size))) {}

  /// The name other processes attach with (a named block's own name, without a leading '/').
  std::string name() const;
  std::span<std::byte> buf() const;
  /// Bytes in the block (a named block: its file's size, as Python reports it).
  std::size_t size() const noexcept { return size_; }
  /// Whether it has a name of the user's (a /dev/shm object), not a memfd.
  bool named() const noexcept { return named_ != nullptr || !user_name_.empty(); }
  /// Drops this handle's mapping (others keep theirs). buf() is empty afterwards;
  /// name() and unlink() still work.
  void close() noexcept;
  /// Removes the name (a named block: shm_unlink; anonymous: later attaches and decodes
  /// fail). Mappings and handles already made keep working. Once across all processes, as
  /// in Python. @throws FileNotFoundError if it was already unlinked.
  void unlink();

  void encode_to(detail::Writer& w) const;
  static SharedMemory decode_from(detail::Reader& r);

 private:
  SharedMemory() = default;
  static std::size_t positive_size(long long size);
  static std::size_t non_negative(long long size);
  void attach_named(const std::string& name);
  std::shared_ptr<detail::Segment> segment_;     // anonymous
  std::shared_ptr<detail::NamedBlock> named_;    // named
  std::string user_name_;                        // named: kept after close() for unlink()
  std::string anon_name_;                        // anonymous: likewise
  std::size_t size_ = 0;
};

/// Python's repr: SharedMemory('name', size=512).
std::ostream& operator<<(std::ostream& os, const SharedMemory& m);

}  // namespace parex
