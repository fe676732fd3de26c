// worker/run_calls.hpp - a worker's work with no transport inside: a calls payload in
// (wire/records.hpp), each item decoded, run and answered with one outcome, in order.
// The pipe worker (worker.cpp) runs it; so can any other transport (an MPI rank) with a
// sink of its own. Header-only: the sink's calls inline into the per-item loop.
//
// A Sink provides:
//   Writer& out()                            where outcomes are appended
//   bool overhead_due()                      before a call: true if begin_call is about to do
//                                            work that is not the call's (the pacer's clock
//                                            then stops around it)
//   void begin_call()                        before a call's items
//   bool claim(std::uint64_t items)          optional: before a call's items; false: the pool
//                                            took the call back, it is skipped unrun
//   bool results_waiting()                   results not sent yet: they may leave while the
//                                            next call runs (the flusher), so a tick first,
//                                            that they carry the time of the items they answer
//   void item_started()                      before an item is decoded (crash bookkeeping)
//   void item_started_at(Clock::time_point)  optional: before item_started, for the items
//                                            of a timed call (CallHead::timed)
//   void item_finished()                     its outcome is complete in out()
//   bool flush_due()                         after an item: after_item will flush (a tick first)
//   bool tick(Clock::time_point now,         when TickPacer says, before results can leave,
//             Clock::duration busy)          and at the payload's end: the moment for
//                                            time-based decisions; busy: time in calls since
//                                            the last; true if it flushed
//   bool after_item()                        last, after each item (size-based decisions:
//                                            after tick, so a flush carries the busy time);
//                                            true if it flushed
//   std::span<const std::byte> arena(ArenaRef)  arguments kept in a shared arena
// Throws ProtocolError on a malformed payload or an unknown function id (the transport
// decides what that means; a pipe worker exits).
#pragma once

#include <parex/detail/wire/records.hpp>
#include <parex/registry.hpp>

#include <algorithm>
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

/// Reading the clock costs ~25 ns (steady_clock on the 2-vCPU AMD VM): tick at most
/// this many items apart, and about tick_interval apart.
inline constexpr std::uint32_t clock_stride = 64;
inline constexpr auto tick_interval = flush_latency / 8;

/// When to read the clock. Items that take long get a tick each; tiny ones, one per
/// stride of items about tick_interval long, whatever calls they belong to; and there is
/// a tick before results can leave (before a flush, and at a call's start while results
/// wait: the flusher may send them while the call runs), so that they carry the time of
/// the items they answer. Profile (a burst of 200k tiny submits, one item per
/// call, 2-vCPU AMD VM): two clock reads per call, one at its start and one after its
/// item, were half of each worker's time; now it is one read per call while results wait
/// to be sent, and one per stride of items within a call. The busy time is the time since
/// the payload began, less the sink's flushes and its work between calls (overhead_due).
class TickPacer {
 public:
  using Clock = std::chrono::steady_clock;
  explicit TickPacer(Clock::time_point start) noexcept : last_(start) {}
  /// After an item: true when the clock is to be read.
  bool due() noexcept { return ++items_ >= stride_; }
  /// Items since the last tick.
  bool owed() const noexcept { return items_ != 0; }
  /// The clock starts again at now: what happened since the last tick is not busy time.
  void restart(Clock::time_point now) noexcept { last_ = now; }
  /// The busy time since the last tick; sets the next stride from the items' cost.
  Clock::duration tick(Clock::time_point now) noexcept {
    const Clock::duration busy = now - last_;
    const Clock::duration per_item = busy / std::max<std::uint32_t>(items_, 1);
    stride_ = per_item.count() <= 0
                  ? clock_stride
                  : static_cast<std::uint32_t>(std::clamp<Clock::rep>(
                        std::chrono::duration_cast<Clock::duration>(tick_interval) / per_item, 1, clock_stride));
    items_ = 0;
    last_ = now;
    return busy;
  }

 private:
  Clock::time_point last_;
  std::uint32_t items_ = 0;
  std::uint32_t stride_ = 1;
};

template <class Sink>
void run_calls(std::span<const std::byte> payload, Sink& sink) {
  using Clock = std::chrono::steady_clock;
  Reader r(payload);
  TickPacer pacer(Clock::now());
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
    auto tick = [&] {
      const Clock::time_point now = Clock::now();
      if (sink.tick(now, pacer.tick(now))) pacer.restart(Clock::now());  // a flush is not busy time
    };
    if (sink.overhead_due()) {
      if (pacer.owed()) tick();
      sink.begin_call();
      pacer.restart(Clock::now());
    } else {
      sink.begin_call();
    }
    for (std::uint64_t i = 0; i < head.items; ++i) {
      Reader args = read_item(items);
      // A call's first item, results waiting: they may leave (the flusher) while this call
      // runs, so a tick first, before the item counts as started. Not before every item:
      // in a map chunk of tiny items a clock read per item halved bench_mpi's map.
      if (i == 0 && pacer.owed() && sink.results_waiting()) tick();
      if constexpr (requires { sink.item_started_at(Clock::now()); }) {
        if (head.timed) sink.item_started_at(Clock::now());
      }
      sink.item_started();
      e->invoke(*e, args, sink.out());
      sink.item_finished();
      const bool due = pacer.due();
      if (due || sink.flush_due()) tick();
      if (sink.after_item()) pacer.restart(Clock::now());
    }
  }
  if (pacer.owed()) {
    const Clock::time_point now = Clock::now();
    sink.tick(now, pacer.tick(now));
  }
}

}  // namespace parex::detail
