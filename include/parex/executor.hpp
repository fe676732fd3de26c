// parex/executor.hpp - the Executor interface every backend shares.
//
// submit(), map() and shutdown() are written once here, over a small virtual core that
// backends implement (dispatch or dispatch_remote, do_shutdown): user code holds an
// Executor& and swaps the backend by changing one line. A backend that runs calls in
// this process gets LocalTasks (the callable and its arguments); one that runs them
// elsewhere gets RemoteCalls (a registered function's id and encoded arguments), built
// here, in the submitting thread, so that encoding errors surface from submit at once. Thread-safety: submit, map and shutdown may be called
// from any thread, concurrently. A map range is consumed by one thread.
//
// @code
//   parex::ThreadPoolExecutor pool{{.max_workers = 4}};
//   parex::Executor& ex = pool;
//   parex::Future<int> f = ex.submit(square, 7);
//   for (int y : ex.map(square, std::vector{1, 2, 3})) std::cout << y << '\n';
// @endcode
#pragma once

#include <parex/detail/executor/callable.hpp>
#include <parex/detail/executor/map_input.hpp>
#include <parex/detail/remote/remote_call.hpp>
#include <parex/detail/executor/task.hpp>
#include <parex/future.hpp>

#include <algorithm>
#include <cstddef>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <ranges>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace parex {

/// Options of Executor::map (Python: Executor.map's chunksize, timeout, buffersize).
struct MapOptions {
  /// Items per call (at least 1, else std::invalid_argument). Bigger chunks amortise the per-call cost (for a process pool: one
  /// frame record and one future per chunk) but make the first result later and load
  /// balancing coarser.
  std::size_t chunksize = 1;
  /// Counted from the map() call; reaching an item not ready by then throws TimeoutError,
  /// cancels the calls not started and ends the iteration (Python's rule).
  Timeout timeout{};
  /// Calls (chunks) in flight at once; 0 picks max(4 x max_workers, 65536 / chunksize)
  /// capped at 4096. The input is read only as the window advances, never up front.
  std::size_t buffersize = 0;
  /// false: yield results as calls complete (items of one chunk stay together).
  bool ordered = true;
};

template <class R, class F, class V>
class MapRange;

class Executor {
 public:
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  virtual ~Executor();

  /// Schedules fn(args...) and returns its future. Arguments are copied (or moved) now.
  /// @throws InvalidStateError after shutdown, BrokenExecutor if the executor is broken,
  ///         and for a process pool UnregisteredFunction / NotSerializable (see README).
  template <class F, class... A>
  Future<detail::call_result_t<F, A...>> submit(F&& fn, A&&... args) {
    using R = detail::call_result_t<F, A...>;
    if (remote_) return submit_remote<R>(fn, std::forward<A>(args)...);
    auto* task = new detail::Call<R, std::decay_t<F>, std::decay_t<A>...>(std::forward<F>(fn), std::forward<A>(args)...);
    auto future = detail::FutureAccess::make(detail::StateRef<detail::State<R>>::adopt(task));
    post(task);
    return future;
  }

  /// fn over every element of range, lazily, with a bounded window of calls in flight.
  /// Results come in input order (unless options.ordered is false); an item's exception
  /// is thrown when that item is reached; leaving the loop early cancels calls not started.
  /// @throws std::invalid_argument if options.chunksize is 0.
  template <class F, std::ranges::input_range Range>
  auto map(F&& fn, Range&& range, MapOptions options = {}) {
    using V = std::views::all_t<Range>;
    return make_map<V>(std::forward<F>(fn), std::views::all(std::forward<Range>(range)), options);
  }
  /// fn(a, b, ...) over several ranges in lock-step, ending with the shortest (Python's
  /// map(fn, *iterables)); two to four ranges.
  template <class F, std::ranges::input_range R1, std::ranges::input_range R2>
  auto map(F&& fn, R1&& r1, R2&& r2, MapOptions options = {}) {
    return map_zip(std::forward<F>(fn), options, std::forward<R1>(r1), std::forward<R2>(r2));
  }
  template <class F, std::ranges::input_range R1, std::ranges::input_range R2, std::ranges::input_range R3>
  auto map(F&& fn, R1&& r1, R2&& r2, R3&& r3, MapOptions options = {}) {
    return map_zip(std::forward<F>(fn), options, std::forward<R1>(r1), std::forward<R2>(r2), std::forward<R3>(r3));
  }
  template <class F, std::ranges::input_range R1, std::ranges::input_range R2, std::ranges::input_range R3,
            std::ranges::input_range R4>
  auto map(F&& fn, R1&& r1, R2&& r2, R3&& r3, R4&& r4, MapOptions options = {}) {
    return map_zip(std::forward<F>(fn), options, std::forward<R1>(r1), std::forward<R2>(r2), std::forward<R3>(r3),
                   std::forward<R4>(r4));
  }

  /// Stops accepting work. wait: block until every accepted call has finished and the
  /// workers are gone; cancel_futures: cancel every call that has not started. Idempotent.
  void shutdown(bool wait = true, bool cancel_futures = false) { do_shutdown(wait, cancel_futures); }

  /// The number of workers.
  virtual std::size_t max_workers() const noexcept = 0;

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

 private:
  template <class R, class F, class V>
  friend class MapRange;

  // dispatch(), and if it throws, drop the queue's reference (the future keeps the state).
  void post(detail::LocalTask* task);
  void post(detail::RemoteCall* call);

  template <class R, class F, class... A>
  Future<R> submit_remote(const F& fn, A&&... args) {
    using Check = detail::Remotable<F, A...>;
    if constexpr (!Check::value) {
      throw NotSerializable(Check::why());
    } else {
      const detail::FunctionEntry& entry = detail::lookup_function(fn);
      auto* call = new detail::SingleCall<R>(entry);
      auto future = detail::FutureAccess::make(detail::StateRef<detail::State<R>>::adopt(call));
      call->args.use_blocks_from(block_allocator());
      try {
        detail::encode_item(call->args, typename Check::Sig::params{}, std::forward<A>(args)...);
      } catch (...) {
        call->drop();
        detail::throw_encode_error(entry);
      }
      post(call);
      return future;
    }
  }

  template <class V, class F, class Input>
  auto make_map(F&& fn, Input&& input, MapOptions options) {
    using R = detail::map_result_t<std::decay_t<F>, std::ranges::range_value_t<V>>;
    static_assert(!std::is_void_v<R>, "map needs a function that returns a value; use submit for void functions");
    return MapRange<R, std::decay_t<F>, V>(*this, std::forward<F>(fn), std::forward<Input>(input), options);
  }
  template <class F, class... Ranges>
  auto map_zip(F&& fn, MapOptions options, Ranges&&... ranges) {
    using V = detail::ZipView<std::views::all_t<Ranges>...>;
    return make_map<V>(std::forward<F>(fn), V(std::views::all(std::forward<Ranges>(ranges))...), options);
  }

  // One map chunk. An item whose arguments fail to encode does not fail its neighbours:
  // it is left out of the call and gets its NotSerializable at its own position.
  template <class R, class F, class Item>
  Future<detail::ChunkResult<R>> submit_chunk(const F& fn, std::vector<Item>&& items) {
    using State = detail::State<detail::ChunkResult<R>>;
    if (remote_) {
      using Check = typename detail::MapItem<Item>::template remotable<F>;
      if constexpr (!Check::value) {
        throw NotSerializable(Check::why());
      } else {
        const detail::FunctionEntry& entry = detail::lookup_function(fn);
        auto* call = new detail::ChunkCall<R>(entry, static_cast<std::uint32_t>(items.size()));
        auto future = detail::FutureAccess::make(detail::StateRef<State>::adopt(call));
        call->args.use_blocks_from(block_allocator());
        for (std::uint32_t i = 0; i < items.size(); ++i) {
          const std::size_t mark = call->args.size();
          try {
            detail::MapItem<Item>::encode(call->args, typename Check::Sig::params{}, std::move(items[i]));
          } catch (...) {
            call->args.truncate(mark);
            try {
              call->leave_out(i, detail::encode_error(entry));
            } catch (...) {  // out of memory: the whole chunk fails at submit
              call->drop();
              throw;
            }
          }
        }
        if (call->count == 0) call->finish();  // nothing left to send: complete it here
        else post(call);
        return future;
      }
    }
    auto* task = new detail::LocalChunk<R, F, Item>(fn, std::move(items));
    auto future = detail::FutureAccess::make(detail::StateRef<State>::adopt(task));
    post(task);
    return future;
  }

  const bool remote_;
  std::shared_ptr<detail::ExecutorLife> life_;  // shared with map ranges
};

}  // namespace parex

#include <parex/detail/executor/map_range.hpp>
