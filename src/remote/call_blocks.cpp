// The memory of remote calls, kept for reuse (remote/remote_call.hpp: call_blocks).
//
// Why: a burst of tiny calls (200k submits, then their results) allocates a call object
// per submit and frees them all when the futures go. glibc gives the freed top of the
// heap back to the kernel (trim) and the next burst faults every page in again: perf on
// the 2-vCPU AMD VM put half of the submitting thread's time in page faults and brk.
// Modern allocators (jemalloc, tcmalloc) keep such memory; glibc does not, so the call
// objects get a cache of their own, bounded (max_cached_bytes) and by size class.
//
// How: each thread keeps a free list per class (no atomics: the submitting thread
// usually frees its own calls, when the futures go). A list past 2 batches gives one
// batch to a process-wide stack, under one mutex taken once per `batch` blocks; a
// thread whose list is empty takes a batch back. So calls freed on a pool's reactor
// thread come back to the submitters. Past the bound, blocks go back to the heap.
//
// Under AddressSanitizer nothing is cached: reuse would hide a use after free.
#include <parex/detail/remote/remote_call.hpp>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>

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
  std::size_t bytes = 0;
};
constinit Shared shared;

void free_list(Node* x) noexcept {
  while (x) {
    Node* next = x->next;
    ::operator delete(static_cast<void*>(x));
    x = next;
  }
}

// Gives a batch (its nodes linked through next, null-ended) to the stack, or to the heap
// past the bound.
void give(std::size_t c, Node* first, std::uint32_t n) noexcept {
  const std::size_t bytes = std::size_t{n} * class_bytes(c);
  {
    std::lock_guard lock(shared.mutex);
    if (shared.bytes + bytes <= max_cached_bytes) {
      first->n = n;
      first->next_batch = shared.batches[c];
      shared.batches[c] = first;
      shared.bytes += bytes;
      return;
    }
  }
  free_list(first);
}

Node* take(std::size_t c, std::uint32_t& n) noexcept {
  std::lock_guard lock(shared.mutex);
  Node* first = shared.batches[c];
  if (!first) return nullptr;
  shared.batches[c] = first->next_batch;
  n = first->n;
  shared.bytes -= std::size_t{n} * class_bytes(c);
  return first;
}

struct Local {
  Node* head[classes]{};
  std::uint32_t n[classes]{};
  bool gone = false;  // destroyed (thread exit): calls freed later on this thread use the heap
  ~Local() {
    for (std::size_t c = 0; c < classes; ++c)
      if (head[c]) give(c, head[c], n[c]);
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
  if (!l.head[c]) l.head[c] = take(c, l.n[c]);
  if (Node* x = l.head[c]) {
    l.head[c] = x->next;
    --l.n[c];
    return x;
  }
  return ::operator new(class_bytes(c));
}

void release(void* p, std::size_t bytes) noexcept {
  if (!enabled || bytes > max_block) return ::operator delete(p);
  const std::size_t c = class_of(bytes);
  Local& l = local;
  if (l.gone) return ::operator delete(p);
  Node* x = static_cast<Node*>(p);
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

}  // namespace parex::detail::call_blocks
