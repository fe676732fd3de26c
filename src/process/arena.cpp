#include "process/arena.hpp"

#include "process/memfd.hpp"

#include <algorithm>
#include <cstdio>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace parex::detail {

std::unique_ptr<ArgArena> ArgArena::create(std::size_t reserve) noexcept {
  // Fixed size, sealed: a worker holds this fd, and its ftruncate would otherwise make the
  // pool's own writes of arguments fault (memfd.hpp). Freed blocks are punched out.
  const int fd = sealable_memfd("parex-args");
  if (fd < 0) return nullptr;
  if (::ftruncate(fd, static_cast<off_t>(reserve)) != 0 || !seal_memfd(fd, true)) {  // sparse: costs nothing until written
    ::close(fd);
    return nullptr;
  }
  void* base = ::mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (base == MAP_FAILED) {
    ::close(fd);
    return nullptr;
  }
  return std::unique_ptr<ArgArena>(new ArgArena(fd, static_cast<std::byte*>(base), reserve));
}

ArgArena::~ArgArena() {
  if (live_ != 0) {
    // A block is still referenced (a bug elsewhere): keep the memory rather than let a
    // late release or a late read touch an unmapped range.
    std::fprintf(stderr, "parex: argument arena destroyed with %zu live blocks; its memory is kept\n", live_);
    return;
  }
  ::munmap(base_, size_);
  ::close(fd_);
}

std::byte* ArgArena::allocate(std::size_t n, std::size_t& cap) noexcept {
  const std::size_t want = (n + granule - 1) / granule * granule;
  std::size_t offset = 0;
  bool fresh = false;
  std::size_t populated_start = 0;  // pages from here on were never populated
  {
    std::lock_guard lock(mutex_);
    auto it = free_.begin();
    for (; it != free_.end() && it->second < want; ++it) {
    }
    if (it != free_.end()) {  // first fit among the blocks given back
      offset = it->first;
      const std::size_t length = it->second;
      free_.erase(it);
      if (length > want) free_.emplace(offset + want, length - want);
      free_populated_ -= std::min(free_populated_, want);
    } else if (top_ + want <= size_) {
      offset = top_;
      top_ += want;
      fresh = true;
      populated_start = populated_top_;
      if (populated_top_ >= offset) populated_top_ = std::max(populated_top_, top_);  // contiguous only
      // Blocks merged back into the tail may have left pages there: count them as reused.
      free_populated_ -= std::min(free_populated_, want);
    } else {
      return nullptr;  // full: the caller falls back to the heap
    }
    ++live_;
  }
  cap = want;
  // One syscall, not a fault per page; only for pages never populated (or given back):
  // on pages that are there it still costs ~1 ms per 16 MiB (measured on 64 MiB arguments).
  if (fresh && offset + want > populated_start) {
    const std::size_t from = std::max(offset, populated_start);
    ::madvise(base_ + from, offset + want - from, MADV_POPULATE_WRITE);
  }
  return base_ + offset;
}

void ArgArena::release(std::byte* p, std::size_t cap) noexcept {
  std::size_t offset = static_cast<std::size_t>(p - base_);
  std::size_t length = cap;
  std::lock_guard lock(mutex_);
  --live_;
  free_populated_ += cap;
  // Coalesce with the neighbours.
  auto next = free_.lower_bound(offset);
  if (next != free_.end() && offset + length == next->first) {
    length += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      length += prev->second;
      free_.erase(prev);
    }
  }
  if (offset + length == top_) {  // the highest block: merge it back into the untouched tail
    top_ = offset;
    if (free_populated_ > keep_bytes) give_back(offset, length);
    return;
  }
  free_.emplace(offset, length);
  if (free_populated_ > keep_bytes) give_back(offset, length);
}

// Returns the pages of a free range to the system (mutex_ held).
void ArgArena::give_back(std::size_t offset, std::size_t length) noexcept {
  ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(length));
  populated_top_ = std::min(populated_top_, offset);  // conservative: what lies above may be gone
  free_populated_ -= std::min(free_populated_, length);
}

}  // namespace parex::detail
