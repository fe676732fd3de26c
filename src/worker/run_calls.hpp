// worker/run_calls.hpp - a worker's work with no transport inside: a calls payload in
// (wire/records.hpp), each item decoded, run and answered with one outcome, in order.
// The pipe worker (worker.cpp) runs it; so can any other transport (an MPI rank) with a
// sink of its own. Header-only: the sink's calls inline into the per-item loop.
//
// A Sink provides:
//   Writer& out()                            where outcomes are appended
//   void begin_call()                        before a call's items
//   bool claim(std::uint64_t items)          optional: before a call's items; false: the pool
//                                            took the call back, it is skipped unrun
//   void item_started()                      before an item is decoded (crash bookkeeping)
//   void item_started_at(Clock::time_point)  optional: before item_started, for the items
//                                            of a timed call (CallHead::timed)
//   void item_finished()                     its outcome is complete in out()
//   void tick(Clock::time_point now)         every clock_stride items and after a call's
//                                            last: the moment for time-based decisions
//   void after_item()                        last, after each item (size-based decisions:
//                                            after tick, so a flush carries the busy time)
//   std::span<const std::byte> arena(ArenaRef)  arguments kept in a shared arena
// Throws ProtocolError on a malformed payload or an unknown function id (the transport
// decides what that means; a pipe worker exits).
#pragma once

#include <parex/detail/wire/records.hpp>
#include <parex/registry.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

namespace parex::detail {

// Flush tunables, for every transport. Bigger batches amortise the send and the client's
// wake-up over more results; but a result held back waits for its batch. A worker flushes
// when its input runs dry, at flush_bytes, or after an item once the oldest unsent result
// has waited flush_latency.
inline constexpr std::size_t flush_bytes = std::size_t{256} << 10;
inline constexpr auto flush_latency = std::chrono::microseconds(200);

/// Reading the clock costs ~20 ns: in a long call (a map chunk of tiny items) tick only
/// every clock_stride items.
inline constexpr std::uint32_t clock_stride = 64;

template <class Sink>
void run_calls(std::span<const std::byte> payload, Sink& sink) {
  using Clock = std::chrono::steady_clock;
  Reader r(payload);
  while (!r.empty()) {
    const CallHead head = read_call_head(r);
    const FunctionEntry* e = Registry::global().by_id(head.fn_id);
    if (!e) throw ProtocolError("unknown function id");
    if constexpr (requires { sink.claim(head.items); }) {
      if (!sink.claim(head.items)) {  // taken back: skip its bytes
        if (head.in_arena) read_arena_ref(r);
        else
          for (std::uint64_t i = 0; i < head.items; ++i) read_item(r);
        continue;
      }
    }
    Reader in_arena;
    if (head.in_arena) in_arena = Reader(sink.arena(read_arena_ref(r)));
    Reader& items = head.in_arena ? in_arena : r;
    sink.begin_call();
    for (std::uint64_t i = 0; i < head.items; ++i) {
      Reader args = read_item(items);
      if constexpr (requires { sink.item_started_at(Clock::now()); }) {
        if (head.timed) sink.item_started_at(Clock::now());
      }
      sink.item_started();
      e->invoke(*e, args, sink.out());
      sink.item_finished();
      if (head.items <= clock_stride || (i + 1) % clock_stride == 0 || i + 1 == head.items) sink.tick(Clock::now());
      sink.after_item();
    }
  }
}

}  // namespace parex::detail
