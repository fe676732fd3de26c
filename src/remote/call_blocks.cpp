// The memory of remote calls, kept for reuse (remote/remote_call.hpp: call_blocks).
//
// Why: a burst of tiny calls (200k submits, then their results) allocates a call object
// per submit and frees them all when the futures go. glibc gives the freed top of the
// heap back to the kernel (trim) and the next burst faults every page in again: perf on
// the 2-vCPU AMD VM put half of the submitting thread's time in page faults and brk.
// Modern allocators (jemalloc, tcmalloc) keep such memory; glibc does not, so the call
// objects get a cache of their own, bounded (max_cached_bytes) and by size class.
//
// The first burst of a process faults its memory in too: 100k calls of ~250 bytes are
// ~6,000 fresh 4 KiB pages, and a page fault costs ~15 us on that VM (a paravirtual
// guest: perf shows native_set_pte and pvm_irq_enable), so the faults were most of the
// submitting thread's time (bench_mpi's tiny calls are one such burst per job). Fresh
// blocks therefore come from 2 MiB slabs the kernel may back with a huge page
// (MADV_HUGEPAGE: one fault per slab where transparent huge pages are on; 4 KiB faults,
// as from the heap, where they are off; with THP's defrag on "madvise", a fault may
// compact memory first on a fragmented host). Slabs are never given back, so they are
// bounded (max_slab_bytes); past the bound, fresh blocks come from the heap.
//
// How: each thread keeps a free list per class (no atomics: the submitting thread
// usually frees its own calls, when the futures go), and a run of fresh blocks per class
// carved from the current slab a batch at a time (untouched until handed out, or until
// the thread exits and gives the rest back). A list past 2 batches gives one batch to a
// process-wide stack, under one mutex taken once per `batch` blocks; a thread whose list
// and run are empty takes a batch back, or carves a new run. So calls freed on a pool's
// reactor thread come back to the submitters. Past the stacks' bound (max_cached_bytes,
// counting every block in them), heap blocks go back to the heap; slab blocks stay.
//
// Under AddressSanitizer nothing is cached: reuse would hide a use after free.
#include "remote/call_blocks.hpp"

#include <parex/detail/remote/remote_call.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <sys/mman.h>
#include <type_traits>

namespace parex::detail::call_blocks {

namespace {
#if defined(__SANITIZE_ADDRESS__)
constexpr bool enabled = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool enabled = false;
#else
constexpr bool enabled = true;
#endif
#else
constexpr bool enabled = true;
#endif
constexpr std::size_t grain = 64;        // classes: 64, 128, ... max_block bytes
constexpr std::size_t max_block = 512;   // bigger calls (map chunks of big types) use the heap
constexpr std::size_t classes = max_block / grain;
constexpr std::uint32_t batch = 256;     // blocks moved between a thread and the stack at once
constexpr std::size_t max_cached_bytes = std::size_t{64} << 20;  // in the process-wide stacks
constexpr std::size_t slab_bytes = std::size_t{2} << 20;         // a huge page on x86-64 and arm64 (4 KiB base)
constexpr std::size_t max_slabs = 32;                            // max_slab_bytes: 64 MiB

struct Node {
  Node* next;        // within a list or a batch
  Node* next_batch;  // a batch's first node: the next batch on the stack
  std::uint32_t n;   // a batch's first node: its blocks
};
static_assert(sizeof(Node) <= grain);

std::size_t class_of(std::size_t bytes) noexcept { return (bytes + grain - 1) / grain - 1; }
std::size_t class_bytes(std::size_t c) noexcept { return (c + 1) * grain; }

// Trivially destructible: a thread that exits after static destruction still finds it.
struct Shared {
  std::mutex mutex;
  Node* batches[classes]{};
  std::size_t bytes = 0;  // in batches
  std::size_t class_bytes_cached[classes]{};
  // The slabs: their bases are written under the mutex and read by from_slab without it.
  std::atomic<std::uintptr_t> slab[max_slabs]{};
  std::atomic<std::size_t> slabs{0};
  std::atomic<bool> spent{false};  // no more slabs: fresh blocks come from the heap
  char* carve_at = nullptr;        // the current slab's first byte not yet carved
  char* carve_end = nullptr;
  std::size_t carved = 0;
};
constinit Shared shared;
static_assert(std::is_trivially_destructible_v<Shared>);

// Whether p lies in a slab (such a block must never reach ::operator delete).
bool from_slab(const void* p) noexcept {
  const auto base = reinterpret_cast<std::uintptr_t>(p) & ~(std::uintptr_t{slab_bytes} - 1);
  const std::size_t n = shared.slabs.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i)
    if (shared.slab[i].load(std::memory_order_relaxed) == base) return true;
  return false;
}

// Gives a batch (its nodes linked through next, null-ended) to the stack. Past the
// bound, its heap blocks go back to the heap and its slab blocks stay.
void give(std::size_t c, Node* first, std::uint32_t n) noexcept {
  Node* heap = nullptr;
  {
    std::lock_guard lock(shared.mutex);
    if (shared.bytes + std::size_t{n} * class_bytes(c) > max_cached_bytes) {
      Node* kept = nullptr;
      n = 0;
      while (first) {
        Node* next = first->next;
        const bool slab = from_slab(first);
        Node*& to = slab ? kept : heap;
        first->next = to;
        to = first;
        n += slab;
        first = next;
      }
      first = kept;
    }
    if (first) {
      first->n = n;
      first->next_batch = shared.batches[c];
      shared.batches[c] = first;
      shared.bytes += std::size_t{n} * class_bytes(c);
      shared.class_bytes_cached[c] += std::size_t{n} * class_bytes(c);
    }
  }
  while (heap) {
    Node* next = heap->next;
    ::operator delete(static_cast<void*>(heap));
    heap = next;
  }
}

Node* take(std::size_t c, std::uint32_t& n) noexcept {
  std::lock_guard lock(shared.mutex);
  Node* first = shared.batches[c];
  if (!first) return nullptr;
  shared.batches[c] = first->next_batch;
  n = first->n;
  shared.bytes -= std::size_t{n} * class_bytes(c);
  shared.class_bytes_cached[c] -= std::size_t{n} * class_bytes(c);
  return first;
}

// A new slab, aligned to its size (so that the kernel can map it with one huge page);
// false past max_slabs or when the kernel refuses (then never again: the heap serves).
// Under the mutex.
bool new_slab_locked() noexcept {
  const std::size_t k = shared.slabs.load(std::memory_order_relaxed);
  void* m = k == max_slabs ? MAP_FAILED
                           : ::mmap(nullptr, 2 * slab_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    shared.spent.store(true, std::memory_order_relaxed);
    return false;
  }
  const auto at = reinterpret_cast<std::uintptr_t>(m);
  const std::uintptr_t base = (at + slab_bytes - 1) & ~(std::uintptr_t{slab_bytes} - 1);
  if (base > at) ::munmap(m, base - at);
  ::munmap(reinterpret_cast<void*>(base + slab_bytes), at + slab_bytes - base);
  ::madvise(reinterpret_cast<void*>(base), slab_bytes, MADV_HUGEPAGE);  // advice: where THP is off, 4 KiB pages
  shared.slab[k].store(base, std::memory_order_relaxed);
  shared.slabs.store(k + 1, std::memory_order_release);
  shared.carve_at = reinterpret_cast<char*>(base);
  shared.carve_end = shared.carve_at + slab_bytes;
  return true;
}

// Up to a batch of fresh blocks of class c, as a run [at, end); false when the slabs
// are spent (the blocks then come from the heap).
bool carve(std::size_t c, char*& at, char*& end) noexcept {
  if (shared.spent.load(std::memory_order_relaxed)) return false;  // no mutex taken for nothing
  const std::size_t b = class_bytes(c);
  std::lock_guard lock(shared.mutex);
  if (static_cast<std::size_t>(shared.carve_end - shared.carve_at) < b && !new_slab_locked()) return false;
  const std::size_t room = static_cast<std::size_t>(shared.carve_end - shared.carve_at) / b;
  at = shared.carve_at;
  end = at + std::min<std::size_t>(room, batch) * b;  // the slab's tail, under one block, stays unused
  shared.carve_at = end;
  shared.carved += static_cast<std::size_t>(end - at);
  return true;
}

struct Local {
  Node* head[classes]{};
  std::uint32_t n[classes]{};
  char* run_at[classes]{};  // fresh slab blocks not yet handed out (untouched)
  char* run_end[classes]{};
  bool gone = false;  // destroyed (thread exit): calls freed later on this thread use the stack or the heap
  ~Local() {
    for (std::size_t c = 0; c < classes; ++c) {
      for (char* p = run_at[c]; p < run_end[c]; p += class_bytes(c)) {  // the run goes back too
        Node* x = reinterpret_cast<Node*>(p);
        x->next = head[c];
        head[c] = x;
        ++n[c];
      }
      if (head[c]) give(c, head[c], n[c]);
    }
    gone = true;
  }
};
thread_local Local local;
}  // namespace

void* allocate(std::size_t bytes) {
  if (!enabled || bytes > max_block) return ::operator new(bytes);
  const std::size_t c = class_of(bytes);
  Local& l = local;
  if (l.gone) return ::operator new(class_bytes(c));
  if (!l.head[c] && l.run_at[c] == l.run_end[c]) {
    l.head[c] = take(c, l.n[c]);
    if (!l.head[c] && !carve(c, l.run_at[c], l.run_end[c])) return ::operator new(class_bytes(c));
  }
  if (Node* x = l.head[c]) {  // this thread's freed blocks, then its run, then the stack's, then a new run
    l.head[c] = x->next;
    --l.n[c];
    return x;
  }
  void* p = l.run_at[c];
  l.run_at[c] += class_bytes(c);
  return p;
}

void release(void* p, std::size_t bytes) noexcept {
  if (!enabled || bytes > max_block) return ::operator delete(p);
  const std::size_t c = class_of(bytes);
  Local& l = local;
  Node* x = static_cast<Node*>(p);
  if (l.gone) {
    if (!from_slab(p)) return ::operator delete(p);
    x->next = nullptr;
    return give(c, x, 1);
  }
  x->next = l.head[c];
  l.head[c] = x;
  if (++l.n[c] < 2 * batch) return;
  // Keep one batch here, give the rest.
  Node* last_kept = x;
  for (std::uint32_t i = 1; i < batch; ++i) last_kept = last_kept->next;
  Node* rest = last_kept->next;
  last_kept->next = nullptr;
  const std::uint32_t given = l.n[c] - batch;
  l.n[c] = batch;
  give(c, rest, given);
}

Usage usage(std::size_t bytes) noexcept {
  std::lock_guard lock(shared.mutex);
  return {enabled,
          shared.slabs.load(std::memory_order_relaxed) * slab_bytes,
          shared.carved,
          shared.bytes,
          bytes && bytes <= max_block ? shared.class_bytes_cached[class_of(bytes)] : 0,
          max_slabs * slab_bytes,
          max_cached_bytes};
}

bool in_slab(const void* p) noexcept { return from_slab(p); }

}  // namespace parex::detail::call_blocks
