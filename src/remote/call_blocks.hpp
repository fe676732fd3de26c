// What the memory of call objects (call_blocks.cpp) holds, for tests and diagnostics.
// allocate/release themselves are declared where the calls use them
// (include/parex/detail/remote/remote_call.hpp).
#pragma once

#include <cstddef>

namespace parex::detail::call_blocks {

struct Usage {
  bool enabled;                   // false under AddressSanitizer: every block is the heap's
  std::size_t slab_bytes;         // slabs mapped (never given back)
  std::size_t carved_bytes;       // of those, handed to threads as runs of fresh blocks
  std::size_t cached_bytes;       // free blocks in the process-wide stacks, every class
  std::size_t class_cached_bytes; // of those, in the class of usage()'s argument
  std::size_t max_slab_bytes;     // the bounds
  std::size_t max_cached_bytes;
};
Usage usage(std::size_t bytes = 0) noexcept;
bool in_slab(const void* p) noexcept;

}  // namespace parex::detail::call_blocks
