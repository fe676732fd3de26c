// mp/pins.hpp - the pins of handles sent to a Process, released when it ends.
//
// Segment::send pins a segment in the sender until a receiver attaches it (segment.hpp).
// A Process child that dies before decoding its arguments never attaches them, and its
// parent would keep each one (an fd and a mapping) for ever. So the parent captures the
// pins its call made (PinCapture), the child writes a receipt for each handle it attaches
// into its call's memfd, and the parent, once the child has ended, drops one pin of each
// segment that has no receipt. Receipts region, at the end of the call memfd:
//   [u64 nonce] x slots, then u64 slots
// filled in the order of attachment; a zero nonce is an empty slot. Who includes this:
// mp/segment.cpp (writes receipts), mp/process.cpp (reserves and reads them), mp/child.cpp.
#pragma once

#include <parex/detail/mp/segment.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <sys/types.h>
#include <vector>

namespace parex::detail {

/// In a Process child: from now on, each handle this process receives writes its nonce
/// into the next of `slots` slots at offset `at` of fd (the call memfd). fd < 0: none.
void record_receipts_in(int fd, off_t at, std::uint64_t slots) noexcept;

/// In the parent: drops one pin of each segment in `pins` whose nonce is not among
/// `received` (each receipt answers one pin), then lets go of `pins`.
void release_pins(std::vector<std::weak_ptr<Segment>>& pins, std::span<const std::uint64_t> received) noexcept;

}  // namespace parex::detail
