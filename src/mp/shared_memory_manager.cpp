// SharedMemoryManager (see include/parex/mp/shared_memory_manager.hpp): a Manager whose
// server holds one BlockOwner, a registered managed type (the Manager's public extension
// point, PAREX_MANAGER_REGISTER). The server makes each block (so that it is tracked by
// the server's own tracker from birth: a client killed between making a block and
// handing its name over cannot leak it, as it could in Python, where the client makes it);
// the client attaches by name. shutdown() asks the owner to unlink them all, then ends
// the server.
#include <parex/mp/shared_memory_manager.hpp>

#include "mp/shm_tracker.hpp"

#include <parex/errors.hpp>

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <mutex>
#include <random>
#include <string>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace parex::detail {

/// Lives in the server: makes blocks and unlinks them.
class SharedMemoryBlockOwner {
 public:
  ~SharedMemoryBlockOwner() { release_all(); }

  /// A new named block of `size` bytes; returns its name.
  std::string create(std::uint64_t size) {
    if (size == 0) throw ValueError("SharedMemoryManager: the size must be positive, not 0");
    if (size > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max()))
      throw std::system_error(ENOMEM, std::generic_category(), "SharedMemoryManager: a size past off_t");
    for (;;) {
      std::uint32_t r = 0;
      if (::getrandom(&r, sizeof r, 0) != sizeof r) r = std::random_device{}();
      char name[32];
      std::snprintf(name, sizeof name, "psm_%08x", r);  // Python's names: psm_ + 8 hex digits
      const std::string path = std::string("/") + name;
      const int fd = ::shm_open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
      if (fd < 0) {
        if (errno == EEXIST) continue;
        throw std::system_error(errno, std::generic_category(), "SharedMemoryManager: cannot create a block");
      }
      struct stat st {};
      if (::ftruncate(fd, static_cast<off_t>(size)) != 0 || ::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        ::shm_unlink(path.c_str());
        throw std::system_error(e, std::generic_category(), "SharedMemoryManager: cannot size a block");
      }
      ::close(fd);
      std::lock_guard lock(mutex_);
      names_.emplace_back(name, st.st_ino);
      track_shm(name, st.st_ino, /*warn=*/false);  // the server's end, however it comes, unlinks it
      return name;
    }
  }

  /// Unlinks every block made here (those already unlinked by a user are skipped, and so
  /// is a name made again since by someone else: another inode).
  void release_all() {
    std::lock_guard lock(mutex_);
    for (const auto& [n, ino] : names_) {
      struct stat now {};
      if (::stat(("/dev/shm/" + n).c_str(), &now) == 0 && now.st_ino == ino) ::shm_unlink(("/" + n).c_str());
      untrack_shm(n);
    }
    names_.clear();
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::string, ino_t>> names_;  // with the inode each was made as
};

}  // namespace parex::detail

PAREX_MANAGER_REGISTER(parex::detail::SharedMemoryBlockOwner, create, release_all);

namespace parex {

struct SharedMemoryManager::State {
  ManagerOptions options;
  std::optional<Manager> manager;
  Proxy<detail::SharedMemoryBlockOwner> owner;
  std::mutex mutex;  // start/shutdown against each other
};

SharedMemoryManager::SharedMemoryManager(ManagerOptions options) : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
}
SharedMemoryManager::SharedMemoryManager(SharedMemoryManager&&) noexcept = default;
SharedMemoryManager& SharedMemoryManager::operator=(SharedMemoryManager&& o) noexcept {
  if (this != &o) {
    shutdown();
    state_ = std::move(o.state_);
  }
  return *this;
}
SharedMemoryManager::~SharedMemoryManager() { shutdown(); }

void SharedMemoryManager::start() {
  if (!state_) throw InvalidStateError("SharedMemoryManager: moved from");
  std::lock_guard lock(state_->mutex);
  if (state_->manager) throw InvalidStateError("SharedMemoryManager: already started");
  Manager m(state_->options);
  state_->owner = m.make<detail::SharedMemoryBlockOwner>();
  state_->manager.emplace(std::move(m));
}

void SharedMemoryManager::shutdown() noexcept {
  if (!state_) return;
  std::lock_guard lock(state_->mutex);
  if (!state_->manager) return;
  try {
    state_->owner.call<&detail::SharedMemoryBlockOwner::release_all>();
  } catch (...) {  // a server that is gone: its tracker unlinks them
  }
  state_->owner = {};
  state_->manager->shutdown();
  state_->manager.reset();
}

bool SharedMemoryManager::started() const noexcept { return state_ && state_->manager.has_value(); }
pid_t SharedMemoryManager::pid() const noexcept { return started() ? state_->manager->pid() : 0; }

void SharedMemoryManager::throw_bad_size(long long size) {
  throw ValueError("SharedMemoryManager: the size must be positive, not " + std::to_string(size));
}

parex::SharedMemory SharedMemoryManager::SharedMemory(std::size_t size) {
  if (!started()) throw ValueError("SharedMemoryManager: not started (call start() first)");
  if (size == 0) throw_bad_size(0);
  const std::string name = state_->owner.call<&detail::SharedMemoryBlockOwner::create>(std::uint64_t{size});
  return parex::SharedMemory(name);
}

parex::ShareableList SharedMemoryManager::ShareableList(const std::vector<parex::ShareableList::Item>& items) {
  parex::SharedMemory block = SharedMemory(parex::ShareableList::bytes_for(items));
  return parex::ShareableList(parex::ShareableList::Fill{}, std::move(block), items);
}

}  // namespace parex
