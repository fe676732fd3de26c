// Buffers (heap, inline, shared-arena blocks) and the streambufs that connect Boost
// archives to them.
#include <parex/detail/wire/frame.hpp>
#include <parex/serialize.hpp>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <vector>
#include <new>
#include <string>
#include <sys/mman.h>

namespace parex::detail {

// ---- Buffer ------------------------------------------------------------------------------

void prefault(void* p, std::size_t n) noexcept {
  if (n < prefault_threshold) return;
  const auto page = static_cast<std::uintptr_t>(4096);
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + page - 1) & ~(page - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(page - 1);
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels answer EINVAL and nothing happens
#endif
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
}

void advise_huge(void* p, std::size_t n) noexcept {
  if (n < prefault_threshold) return;
  const auto page = static_cast<std::uintptr_t>(4096);
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + page - 1) & ~(page - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(page - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

namespace {
// Freed large blocks, kept for the next large payload: fresh pages must be faulted in and
// zeroed by the kernel (here ~30% of a 64 MiB call's time), reused ones need neither.
// Bounded: at most two blocks, 512 MiB together.
class BigBlockCache {
 public:
  static BigBlockCache& instance() {
    static BigBlockCache* c = new BigBlockCache;  // leaked: usable during static destruction
    return *c;
  }
  // A cached block of at least n bytes (its real size in cap), or nullptr.
  void* take(std::size_t n, std::size_t& cap) {
    std::lock_guard lock(mutex_);
    for (auto it = blocks_.begin(); it != blocks_.end(); ++it) {
      if (it->second >= n) {
        void* p = it->first;
        cap = it->second;
        total_ -= cap;
        blocks_.erase(it);
        return p;
      }
    }
    return nullptr;
  }
  // Keeps p if there is room, else frees it.
  void give(void* p, std::size_t cap) {
    {
      std::lock_guard lock(mutex_);
      if (blocks_.size() < 2 && total_ + cap <= (std::size_t{512} << 20)) {
        blocks_.emplace_back(p, cap);
        total_ += cap;
        return;
      }
    }
    std::free(p);
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<void*, std::size_t>> blocks_;
  std::size_t total_ = 0;
};
}  // namespace

void Buffer::grow_heap(Writer& w, std::size_t min_capacity) {
  auto& b = static_cast<Buffer&>(w);
  const std::size_t cap = std::max({min_capacity, b.cap_ * 2, std::size_t{256}});
  std::byte* fresh = nullptr;
  std::size_t got = 0;
  BlockAllocator* owner = nullptr;
  if (cap >= prefault_threshold) {
    if (b.blocks_ && (fresh = b.blocks_->allocate(min_capacity, got))) owner = b.blocks_;
    else fresh = static_cast<std::byte*>(BigBlockCache::instance().take(min_capacity, got));
  }
  if (!fresh && b.data_ != b.inline_ && !b.owner_) {
    // glibc's realloc moves big blocks with mremap: growing a heap payload copies nothing.
    void* p = std::realloc(b.data_, cap);
    if (!p) throw std::bad_alloc();
    prefault(static_cast<std::byte*>(p) + b.size_, cap - b.size_);
    b.data_ = static_cast<std::byte*>(p);
    b.cap_ = cap;
    return;
  }
  if (!fresh) {
    fresh = static_cast<std::byte*>(std::malloc(cap));
    if (!fresh) throw std::bad_alloc();
    got = cap;
    prefault(fresh + b.size_, cap - b.size_);
  }
  if (b.size_) std::memcpy(fresh, b.data_, b.size_);
  const std::size_t size = b.size_;
  b.release();
  b.data_ = fresh;
  b.size_ = size;
  b.cap_ = got;
  b.owner_ = owner;
}

void Buffer::release() noexcept {
  if (owner_) {
    owner_->release(data_, cap_);
    owner_ = nullptr;
  } else if (data_ != inline_) {
    if (cap_ >= prefault_threshold) {
      try {
        BigBlockCache::instance().give(data_, cap_);
      } catch (...) {
        std::free(data_);
      }
    } else {
      std::free(data_);
    }
  }
  data_ = inline_;
  size_ = 0;
  cap_ = inline_capacity;
}

void Buffer::take(Buffer&& o) noexcept {
  if (o.data_ == o.inline_) {
    data_ = inline_;
    std::memcpy(inline_, o.inline_, o.size_);
  } else {
    data_ = o.data_;
  }
  size_ = o.size_;
  cap_ = o.cap_;
  owner_ = std::exchange(o.owner_, nullptr);
  blocks_ = o.blocks_;
  o.data_ = o.inline_;
  o.size_ = 0;
  o.cap_ = inline_capacity;
}

void Buffer::shrink(std::size_t keep) {
  if (data_ == inline_ || owner_ || cap_ <= keep || size_ > keep) return;
  if (size_ <= inline_capacity) {
    std::memcpy(inline_, data_, size_);
    std::free(data_);
    data_ = inline_;
    cap_ = inline_capacity;
  } else if (void* p = std::realloc(data_, keep)) {
    data_ = static_cast<std::byte*>(p);
    cap_ = keep;
  }
}

void Reader::throw_truncated(std::uint64_t n) const {
  throw ProtocolError("truncated data: needed " + std::to_string(n) + " more bytes, " +
                      std::to_string(end_ - p_) + " left");
}

// ---- streambufs for Boost archives ----------------------------------------------------------

std::streamsize WriterStreambuf::xsputn(const char* s, std::streamsize n) {
  w_.put(s, static_cast<std::size_t>(n));
  return n;
}

WriterStreambuf::int_type WriterStreambuf::overflow(int_type c) {
  if (!traits_type::eq_int_type(c, traits_type::eof())) w_.put_byte(static_cast<std::uint8_t>(c));
  return traits_type::not_eof(c);
}

SpanStreambuf::SpanStreambuf(std::span<const std::byte> b) {
  // Read-only use: std::streambuf just wants non-const pointers.
  char* p = const_cast<char*>(reinterpret_cast<const char*>(b.data()));
  setg(p, p, p + b.size());
}

}  // namespace parex::detail
