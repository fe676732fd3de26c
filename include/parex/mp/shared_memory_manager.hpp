// parex/mp/shared_memory_manager.hpp - SharedMemoryManager: shared memory blocks owned by
// a server process, unlinked when it shuts down (Python's
// multiprocessing.managers.SharedMemoryManager).
//
//   parex::SharedMemoryManager smm;
//   smm.start();                                  // a Manager server (this program re-executed)
//   parex::SharedMemory shm = smm.SharedMemory(128);
//   parex::ShareableList sl = smm.ShareableList(std::vector<int>{1, 2, 3});
//   smm.shutdown();                               // or ~SharedMemoryManager: every block's name goes
//
// The blocks are named blocks (/dev/shm), made by the server and tracked there: shutdown()
// unlinks them all before it ends the server (an attach by name then fails with
// FileNotFoundError, as in Python); if the owner dies, its server ends and its tracker
// unlinks them; if the server itself is SIGKILLed, so does its tracker (see
// shared_memory.hpp). Mappings already made stay valid. A user may unlink one earlier.
// Thread-safety: the factories may be called from several threads.
#pragma once

#include <parex/mp/manager.hpp>
#include <parex/mp/shareable_list.hpp>
#include <parex/mp/shared_memory.hpp>

#include <concepts>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace parex {

class SharedMemoryManager {
 public:
  /// Not started yet (Python: SharedMemoryManager(); then start()).
  explicit SharedMemoryManager(ManagerOptions options = {});
  SharedMemoryManager(SharedMemoryManager&&) noexcept;
  SharedMemoryManager& operator=(SharedMemoryManager&&) noexcept;
  /// shutdown().
  ~SharedMemoryManager();

  /// Starts the server. @throws InvalidStateError if already started; what Manager's
  /// constructor throws.
  void start();
  /// Unlinks every block the server made, then ends it. Idempotent; a no-op if not started.
  void shutdown() noexcept;
  bool started() const noexcept;
  /// The server's pid (0 before start()).
  pid_t pid() const noexcept;

  /// A new zero-filled block of `size` bytes owned by the server.
  /// @throws ValueError if not started, or size is 0; ConnectionError if the server is gone.
  parex::SharedMemory SharedMemory(std::size_t size);
  template <std::signed_integral I>
  parex::SharedMemory SharedMemory(I size) {
    if (size <= 0) throw_bad_size(static_cast<long long>(size));
    return SharedMemory(static_cast<std::size_t>(size));
  }
  /// A new ShareableList of these items in a block owned by the server.
  parex::ShareableList ShareableList(const std::vector<parex::ShareableList::Item>& items);
  parex::ShareableList ShareableList(std::initializer_list<parex::ShareableList::Item> items) {
    return ShareableList(std::vector<parex::ShareableList::Item>(items));
  }
  template <std::ranges::input_range R>
    requires(std::convertible_to<std::ranges::range_reference_t<R>, parex::ShareableList::Item> &&
             !std::same_as<std::remove_cvref_t<R>, std::vector<parex::ShareableList::Item>>)
  parex::ShareableList ShareableList(R&& items) {
    std::vector<parex::ShareableList::Item> v;
    for (auto&& x : items) v.emplace_back(parex::ShareableList::Item(x));
    return ShareableList(v);
  }

  struct State;

 private:
  [[noreturn]] static void throw_bad_size(long long size);
  std::unique_ptr<State> state_;
};

}  // namespace parex
