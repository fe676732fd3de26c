// ArgArena: a process pool's shared memory for large call arguments.
//
// One sparse memfd, reserved once (pages exist only where written), mapped read-write
// here and read-only in every worker. A call whose encoded arguments grow past
// prefault_threshold is encoded straight into a block of it (Buffer::use_blocks_from), and
// its frame record names (offset, length) instead of carrying the bytes: the argument is
// copied twice in all (encode here, decode there), as through a bare pipe, instead of
// four times. Freed blocks are kept populated for the next large call (no page faults, no
// zeroing), up to keep_bytes; beyond that their pages are given back.
// Thread-safe: submitters allocate, the reactor releases.
#pragma once

#include <parex/detail/wire/buffer.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

namespace parex::detail {

class ArgArena final : public BlockAllocator {
 public:
  /// An arena reserving `reserve` bytes of address space, or nullptr where memfd or the
  /// mapping is unavailable (then large arguments simply travel through the pipe).
  static std::unique_ptr<ArgArena> create(std::size_t reserve) noexcept;
  ArgArena(const ArgArena&) = delete;
  ArgArena& operator=(const ArgArena&) = delete;
  ~ArgArena();

  std::byte* allocate(std::size_t n, std::size_t& cap) noexcept override;
  void release(std::byte* p, std::size_t cap) noexcept override;

  int fd() const noexcept { return fd_; }
  std::uint64_t offset_of(const std::byte* p) const noexcept { return static_cast<std::uint64_t>(p - base_); }

 private:
  ArgArena(int fd, std::byte* base, std::size_t size) noexcept : fd_(fd), base_(base), size_(size) {}
  void give_back(std::size_t offset, std::size_t length) noexcept;

  static constexpr std::size_t granule = std::size_t{2} << 20;
  static constexpr std::size_t keep_bytes = std::size_t{512} << 20;

  int fd_;
  std::byte* base_;
  std::size_t size_;
  std::mutex mutex_;
  std::map<std::size_t, std::size_t> free_;  // offset -> length, coalesced; guarded by mutex_
  std::size_t free_populated_ = 0;            // bytes in free_ still backed by pages
  std::size_t top_ = 0;                       // never handed out beyond this
  std::size_t populated_top_ = 0;             // pages below it are populated, in the tail too
  std::size_t live_ = 0;                      // blocks handed out and not released
};

}  // namespace parex::detail
