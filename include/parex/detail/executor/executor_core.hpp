// parex/detail/executor/executor_core.hpp - the Executor class: what every backend
// shares, with nothing about encoding in it.
//
// submit(), map() and shutdown() are written once here, over a small virtual core that
// backends implement (dispatch or dispatch_remote, do_shutdown): user code holds an
// Executor& and swaps the backend by changing one line. A backend that runs calls in
// this process gets LocalTasks (the callable and its arguments); one that runs them
// elsewhere gets RemoteCalls (a registered function's id and encoded arguments), built
// in the submitting thread by detail::RemoteSubmit (remote/remote_submit.hpp, included
// by <parex/executor.hpp>), so that encoding errors surface from submit at once.
//
// Why the split: a thread-only program includes <parex/thread_pool.hpp>, whose
// ThreadPoolExecutor submits and maps locally (submit_local, map with Local = true) and
// never names RemoteSubmit; it does not pay for the codec, the registry or Boost's
// archives. Calling submit or map through an Executor& instantiates the remote path and
// needs <parex/executor.hpp> (an "incomplete type RemoteSubmit" error says so).
// Thread-safety: submit, map and shutdown may be called from any thread, concurrently.
// A map range is consumed by one thread.
#pragma once

#include <parex/detail/executor/call_options.hpp>
#include <parex/detail/executor/callable.hpp>
#include <parex/detail/executor/map_input.hpp>
#include <parex/detail/executor/task.hpp>
#include <parex/future.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace parex {

/// One worker of an executor (Executor::stats).
struct WorkerStats {
  int pid = 0;                       // its process (for a thread pool: this process)
  std::size_t calls = 0;             // calls it finished (a map chunk is one call)
  std::size_t failed = 0;            // of them, those that failed (for a chunk: one of its items)
  std::chrono::nanoseconds busy{0};  // time it spent running them (process pools; 0 for threads)
  int rank = -1;                     // MpiExecutor: its MPI rank (pid is 0 there); -1 elsewhere
};

/// A snapshot of an executor's work (Executor::stats).
struct ExecutorStats {
  std::size_t queued = 0;    // calls accepted and not yet started (process pool: not yet sent)
  std::size_t running = 0;   // calls started (process pool: sent to a worker), not finished
  std::size_t done = 0;      // calls finished, by the workers alive now and before
  std::size_t failed = 0;    // of them, those that failed (an exception, a deadline, a crash)
  std::size_t restarts = 0;  // workers started beyond the first max_workers: after crashes, deadlines,
                             // interrupts, max_tasks_per_child, idle_timeout, max_rss_per_child
  std::vector<WorkerStats> workers;  // the workers alive now
};

/// How far a map has got (MapOptions::on_progress).
struct MapProgress {
  std::size_t done = 0;                // items with an outcome
  std::optional<std::size_t> total{};  // all items, when the input has a size
  std::size_t failed = 0;              // of the done, those that failed (or were cancelled)
};

/// Options of Executor::map (Python: Executor.map's chunksize, timeout, buffersize).
struct MapOptions {
  /// Items per call (at least 1, else std::invalid_argument). Bigger chunks amortise the
  /// per-call cost (for a process pool: one frame record and one future per chunk) but make
  /// the first result later and load balancing coarser. Unset: adaptive where calls run in
  /// other processes (each chunk holds ~100 us of the function's measured cost per item:
  /// tiny items travel by thousands, anything slow one by one; a function not measured yet
  /// starts at 1), 1 on a thread pool.
  std::optional<std::size_t> chunksize{};
  /// Counted from the map() call; reaching an item not ready by then throws TimeoutError,
  /// cancels the calls not started and ends the iteration (Python's rule).
  Timeout timeout{};
  /// Calls (chunks) in flight at once; 0 picks max(4 x max_workers, 65536 / chunksize)
  /// capped at 4096 (adaptive chunks: up to 4096 while they hold fewer than 65536 items). The input is read only as the window advances, never up front.
  std::size_t buffersize = 0;
  /// false: yield results as calls complete (items of one chunk stay together).
  bool ordered = true;
  /// Every call's deadline, as CallOptions::timeout: on a process pool it bounds each
  /// item's run (the item fails with TimeoutError, the rest of its chunk goes on); on a
  /// thread pool each call's (a chunk's items fail together).
  Timeout call_timeout{};
  /// Leaving the loop early (or the map's timeout) also stops the calls that run, as
  /// Future::interrupt does; by default only calls not started are cancelled.
  bool interrupt_on_exit = false;
  /// An exception the input throws before map() returns (within the first window), false:
  /// map() throws it and cancels the calls not started (Executor.map's rule: Python reads
  /// its input up front). true: map() returns, the items read before it are yielded, then
  /// the step that reaches its place throws it (Pool.imap's rule). Past the first window
  /// it is always thrown in its place: results already computed are never lost.
  bool input_errors_in_place = false;
  /// Called as calls complete (on the completing thread, one report at a time, never
  /// going backwards), at most once per progress_interval, when the last of `total` items
  /// is done, and once when the iteration reaches its end if that report is not out yet.
  /// Never after the map range is destroyed. Keep it short: on a process pool it runs on
  /// the pool's reactor thread.
  std::function<void(const MapProgress&)> on_progress{};
  std::chrono::milliseconds progress_interval{100};
};

template <class R, class F, class V, bool Local>
class MapRange;
class Executor;

namespace detail {
class RemoteCall;
class BlockAllocator;
struct FunctionEntry;
/// fn's registration (remote/remote_call.hpp). @throws UnregisteredFunction.
template <class F>
const FunctionEntry& lookup_function(const F& fn);
/// Submits to an executor whose calls run in other processes: defined in
/// remote/remote_submit.hpp, which <parex/executor.hpp> includes.
template <class R>
struct RemoteSubmit;
template <class R, bool Local, class F, class... A>
class RetryCall;

/// The map overloads, written once: one range, or two to four walked in lock-step
/// (Python's map(fn, *iterables)). Self implements map_ranges(fn, options, ranges...).
template <class Self>
class MapOverloads {
 public:
  /// fn over every element of range, lazily, with a bounded window of calls in flight.
  /// Results come in input order (unless options.ordered is false); an item's exception
  /// is thrown when that item is reached; leaving the loop early cancels calls not started.
  /// @throws std::invalid_argument if options.chunksize is 0.
  template <class F, std::ranges::input_range R1>
  auto map(F&& fn, R1&& r1, MapOptions options = {}) {
    return self().map_ranges(std::forward<F>(fn), options, std::forward<R1>(r1));
  }
  /// fn(a, b, ...) over several ranges in lock-step, ending with the shortest.
  template <class F, std::ranges::input_range R1, std::ranges::input_range R2>
  auto map(F&& fn, R1&& r1, R2&& r2, MapOptions options = {}) {
    return self().map_ranges(std::forward<F>(fn), options, std::forward<R1>(r1), std::forward<R2>(r2));
  }
  template <class F, std::ranges::input_range R1, std::ranges::input_range R2, std::ranges::input_range R3>
  auto map(F&& fn, R1&& r1, R2&& r2, R3&& r3, MapOptions options = {}) {
    return self().map_ranges(std::forward<F>(fn), options, std::forward<R1>(r1), std::forward<R2>(r2),
                             std::forward<R3>(r3));
  }
  template <class F, std::ranges::input_range R1, std::ranges::input_range R2, std::ranges::input_range R3,
            std::ranges::input_range R4>
  auto map(F&& fn, R1&& r1, R2&& r2, R3&& r3, R4&& r4, MapOptions options = {}) {
    return self().map_ranges(std::forward<F>(fn), options, std::forward<R1>(r1), std::forward<R2>(r2),
                             std::forward<R3>(r3), std::forward<R4>(r4));
  }

 private:
  Self& self() noexcept { return static_cast<Self&>(*this); }
};
}  // namespace detail

class Executor : public detail::MapOverloads<Executor> {
 public:
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  virtual ~Executor();

  /// Schedules fn(args...) and returns its future. Arguments are copied (or moved) now.
  /// @throws InvalidStateError after shutdown, BrokenExecutor if the executor is broken,
  ///         and for a process pool UnregisteredFunction / NotSerializable (see README).
  template <class F, class... A>
    requires(!std::is_same_v<std::remove_cvref_t<F>, CallOptions>)
  Future<detail::call_result_t<F, A...>> submit(F&& fn, A&&... args) {
    return submit_timed<false>(std::chrono::nanoseconds(0), std::forward<F>(fn), std::forward<A>(args)...);
  }
  /// submit with a deadline and retries (see CallOptions).
  /// @throws InvalidStateError if the backend cannot enforce a deadline.
  template <class F, class... A>
  Future<detail::call_result_t<F, A...>> submit(const CallOptions& options, F&& fn, A&&... args) {
    return submit_with<false>(options, std::forward<F>(fn), std::forward<A>(args)...);
  }

  /// Stops accepting work. wait: block until every accepted call has finished and the
  /// workers are gone; cancel_futures: cancel every call that has not started. Idempotent.
  void shutdown(bool wait = true, bool cancel_futures = false) { do_shutdown(wait, cancel_futures); }

  /// The number of workers.
  virtual std::size_t max_workers() const noexcept = 0;

  /// Counters of the work done so far and of each worker (every backend).
  /// @throws InvalidStateError on a backend that keeps none.
  virtual ExecutorStats stats();

 protected:
  /// remote: calls run in other processes (dispatch_remote), else here (dispatch).
  explicit Executor(bool remote = false) : remote_(remote), life_(std::make_shared<detail::ExecutorLife>()) {}
  /// Backends call this first in their destructor: a map range that outlives the
  /// executor then ends with InvalidStateError instead of calling into freed memory.
  void end_map_ranges() noexcept { life_->end(); }
  /// Takes ownership of one reference to task and arranges for it to run. On failure it
  /// must throw without having consumed the task.
  virtual void dispatch(detail::LocalTask* task) = 0;
  /// The same for a call encoded for another process (remote executors only).
  virtual void dispatch_remote(detail::RemoteCall* call);
  /// Where a remote call's large encoded arguments should live (a shared arena), if not
  /// the heap.
  virtual detail::BlockAllocator* block_allocator() noexcept { return nullptr; }
  virtual void do_shutdown(bool wait, bool cancel_futures) = 0;

  /// Whether calls' deadlines are enforced (a backend without says no: submit throws).
  virtual bool supports_deadlines() const noexcept { return true; }
  /// Items per chunk for a map of fn without a chunksize (remote executors: from what
  /// fn's calls have cost so far).
  virtual std::size_t adaptive_chunk(const detail::FunctionEntry& fn) const noexcept {
    (void)fn;
    return 1;
  }

  /// submit with CallOptions. Local: the backend runs calls in this process (no
  /// encoding instantiated); else as remote_ says.
  template <bool Local, class F, class... A>
  Future<detail::call_result_t<F, A...>> submit_with(const CallOptions& options, F&& fn, A&&... args) {
    using R = detail::call_result_t<F, A...>;
    if (options.retries == 0)
      return submit_timed<Local>(detail::deadline_of(options.timeout), std::forward<F>(fn), std::forward<A>(args)...);
    static_assert(std::is_copy_constructible_v<std::decay_t<F>> && (std::is_copy_constructible_v<std::decay_t<A>> && ...),
                  "CallOptions::retries keeps the function and its arguments for the next attempts: they must be "
                  "copyable");
    return detail::RetryCall<R, Local, std::decay_t<F>, std::decay_t<A>...>::start(*this, options, std::forward<F>(fn),
                                                                                     std::forward<A>(args)...);
  }
  /// One attempt, with a deadline (0: none).
  template <bool Local, class F, class... A>
  Future<detail::call_result_t<F, A...>> submit_timed(std::chrono::nanoseconds timeout, F&& fn, A&&... args) {
    using R = detail::call_result_t<F, A...>;
    if (timeout.count() && !supports_deadlines())
      throw InvalidStateError("this executor cannot enforce a call's deadline (CallOptions::timeout)");
    if constexpr (!Local) {
      if (remote_) return detail::RemoteSubmit<R>::call(*this, timeout, fn, std::forward<A>(args)...);
    }
    auto* task = new detail::Call<R, std::decay_t<F>, std::decay_t<A>...>(std::forward<F>(fn), std::forward<A>(args)...);
    task->timeout = timeout;
    auto future = detail::FutureAccess::make(detail::StateRef<detail::State<R>>::adopt(task));
    post(task);
    return future;
  }
  /// submit for a backend that runs calls in this process.
  template <class F, class... A>
  Future<detail::call_result_t<F, A...>> submit_local(F&& fn, A&&... args) {
    return submit_timed<true>(std::chrono::nanoseconds(0), std::forward<F>(fn), std::forward<A>(args)...);
  }

  /// The map range over one range, or over several in lock-step. Local: chunks are
  /// submitted with submit_chunk_local (a backend that runs calls in this process).
  template <bool Local, class F, class... Ranges>
  auto make_map(F&& fn, MapOptions options, Ranges&&... ranges) {
    if constexpr (sizeof...(Ranges) == 1) {
      using V = std::views::all_t<std::tuple_element_t<0, std::tuple<Ranges...>>>;
      return make_map_over<V, Local>(std::forward<F>(fn), std::views::all(std::forward<Ranges>(ranges))..., options);
    } else {
      using V = detail::ZipView<std::views::all_t<Ranges>...>;
      return make_map_over<V, Local>(std::forward<F>(fn), V(std::views::all(std::forward<Ranges>(ranges))...), options);
    }
  }

 private:
  friend class detail::MapOverloads<Executor>;
  template <class R, class F, class V, bool Local>
  friend class MapRange;
  template <class R>
  friend struct detail::RemoteSubmit;
  template <class R, bool Local, class F, class... A>
  friend class detail::RetryCall;

  template <class F, class... Ranges>
  auto map_ranges(F&& fn, MapOptions options, Ranges&&... ranges) {
    return make_map<false>(std::forward<F>(fn), options, std::forward<Ranges>(ranges)...);
  }
  template <class V, bool Local, class F, class Input>
  auto make_map_over(F&& fn, Input&& input, MapOptions options) {
    using R = detail::map_result_t<std::decay_t<F>, std::ranges::range_value_t<V>>;
    static_assert(!std::is_void_v<R>, "map needs a function that returns a value; use submit for void functions");
    return MapRange<R, std::decay_t<F>, V, Local>(*this, std::forward<F>(fn), std::forward<Input>(input), options);
  }

  // dispatch(), and if it throws, drop the queue's reference (the future keeps the state).
  void post(detail::LocalTask* task);
  void post(detail::RemoteCall* call);

  // One map chunk, to whichever kind of backend this is.
  template <class R, class F, class Item>
  Future<detail::ChunkResult<R>> submit_chunk(const F& fn, std::vector<Item>&& items, std::chrono::nanoseconds timeout) {
    if (timeout.count() && !supports_deadlines())
      throw InvalidStateError("this executor cannot enforce a call's deadline (MapOptions::call_timeout)");
    if (remote_) return detail::RemoteSubmit<R>::chunk(*this, fn, std::move(items), timeout);
    return submit_chunk_local<R>(fn, std::move(items), timeout);
  }
  template <class R, class F, class Item>
  Future<detail::ChunkResult<R>> submit_chunk_local(const F& fn, std::vector<Item>&& items,
                                                    std::chrono::nanoseconds timeout) {
    auto* task = new detail::LocalChunk<R, F, Item>(fn, std::move(items));
    task->timeout = timeout;
    auto future = detail::FutureAccess::make(detail::StateRef<detail::State<detail::ChunkResult<R>>>::adopt(task));
    post(task);
    return future;
  }

  const bool remote_;
  std::shared_ptr<detail::ExecutorLife> life_;  // shared with map ranges
};

}  // namespace parex

#include <parex/detail/executor/map_range.hpp>
#include <parex/detail/executor/retry.hpp>
