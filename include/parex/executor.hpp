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

#include <parex/detail/callable.hpp>
#include <parex/detail/remote.hpp>
#include <parex/detail/task.hpp>
#include <parex/future.hpp>

#include <algorithm>
#include <cstddef>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

namespace parex {

/// Options of Executor::map (Python: Executor.map's chunksize, timeout, buffersize).
struct MapOptions {
  /// Items per call. Bigger chunks amortise the per-call cost (for a process pool: one
  /// frame record and one future per chunk) but make the first result later and load
  /// balancing coarser.
  std::size_t chunksize = 1;
  /// Counted from the map() call; reaching an item not ready by then throws TimeoutError.
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
  template <class F, std::ranges::input_range Range>
  auto map(F&& fn, Range&& range, MapOptions options = {}) {
    using Item = std::ranges::range_value_t<Range>;
    using R = std::remove_cvref_t<std::invoke_result_t<std::decay_t<F>&, Item&&>>;
    static_assert(!std::is_void_v<R>, "map needs a function that returns a value; use submit for void functions");
    using V = std::views::all_t<Range>;
    return MapRange<R, std::decay_t<F>, V>(*this, std::forward<F>(fn), std::views::all(std::forward<Range>(range)),
                                           options);
  }

  /// Stops accepting work. wait: block until every accepted call has finished and the
  /// workers are gone; cancel_futures: cancel every call that has not started. Idempotent.
  void shutdown(bool wait = true, bool cancel_futures = false) { do_shutdown(wait, cancel_futures); }

  /// The number of workers.
  virtual std::size_t max_workers() const noexcept = 0;

 protected:
  /// remote: calls run in other processes (dispatch_remote), else here (dispatch).
  explicit Executor(bool remote = false) noexcept : remote_(remote) {}
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

  template <class R, class F, class Item>
  Future<detail::ChunkResult<R>> submit_chunk(const F& fn, std::vector<Item>&& items) {
    using State = detail::State<detail::ChunkResult<R>>;
    if (remote_) {
      using Check = detail::Remotable<F, Item&&>;
      if constexpr (!Check::value) {
        throw NotSerializable(Check::why());
      } else {
        const detail::FunctionEntry& entry = detail::lookup_function(fn);
        auto* call = new detail::ChunkCall<R>(entry, static_cast<std::uint32_t>(items.size()));
        auto future = detail::FutureAccess::make(detail::StateRef<State>::adopt(call));
        call->args.use_blocks_from(block_allocator());
        try {
          for (auto& item : items) detail::encode_item(call->args, typename Check::Sig::params{}, std::move(item));
        } catch (...) {
          call->drop();
          detail::throw_encode_error(entry);
        }
        post(call);
        return future;
      }
    }
    auto* task = new detail::LocalChunk<R, F, Item>(fn, std::move(items));
    auto future = detail::FutureAccess::make(detail::StateRef<State>::adopt(task));
    post(task);
    return future;
  }

  const bool remote_;
};

namespace detail {
/// Chunk futures of an unordered map, in the order they complete.
template <class T>
class ReadyQueue {
 public:
  void push(const Future<T>& f) {
    std::lock_guard lock(mutex_);
    ready_.push_back(f);
    cv_.notify_one();
  }
  std::optional<Future<T>> pop(const Clock::time_point& deadline) {
    std::unique_lock lock(mutex_);
    auto ready = [&] { return !ready_.empty(); };
    if (deadline == Clock::time_point::max()) cv_.wait(lock, ready);
    else if (!cv_.wait_until(lock, deadline, ready)) return std::nullopt;
    Future<T> f = std::move(ready_.front());
    ready_.pop_front();
    return f;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Future<T>> ready_;
};
[[noreturn]] void throw_map_timeout(std::chrono::nanoseconds timeout);
}  // namespace detail

/// The lazy result of Executor::map: a single-pass input range of R.
/// Not movable: iterate it where map() returned it. Destroying it cancels unstarted calls.
template <class R, class F, class V>
class MapRange {
  using Item = std::ranges::range_value_t<V>;
  using Chunk = detail::ChunkResult<R>;

 public:
  MapRange(Executor& ex, F fn, V input, MapOptions options)
      : ex_(ex), fn_(std::move(fn)), input_(std::move(input)), options_(options), deadline_(options.timeout.deadline()) {
    if (options_.chunksize == 0) options_.chunksize = 1;
    if (options_.buffersize == 0) {
      const std::size_t by_items = std::max<std::size_t>(1, 65536 / options_.chunksize);
      options_.buffersize = std::min<std::size_t>(4096, std::max<std::size_t>(4 * ex_.max_workers(), by_items));
    }
    if (!options_.ordered) ready_ = std::make_shared<detail::ReadyQueue<Chunk>>();
    next_ = std::ranges::begin(input_);
    try {
      fill();
    } catch (...) {  // the input or a submit threw: what went out must not run on unseen
      for (auto& f : window_) f.cancel();
      throw;
    }
  }
  MapRange(const MapRange&) = delete;
  MapRange& operator=(const MapRange&) = delete;
  ~MapRange() {
    for (auto& f : window_) f.cancel();
  }

  class iterator {
   public:
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    /// The current item; rethrows its exception if its call failed.
    R& operator*() const { return owner_->current(); }
    iterator& operator++() {
      if (!owner_->advance()) owner_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return it.owner_ == nullptr; }

   private:
    friend class MapRange;
    explicit iterator(MapRange* o) : owner_(o) {
      if (!owner_->advance()) owner_ = nullptr;
    }
    MapRange* owner_ = nullptr;
  };

  /// Starts the iteration (once).
  iterator begin() {
    if (begun_) throw InvalidStateError("a map result can be iterated only once");
    begun_ = true;
    return iterator(this);
  }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  // Submits chunks until the window is full or the input is exhausted.
  void fill() {
    while (window_.size() < options_.buffersize && next_ != std::ranges::end(input_)) {
      std::vector<Item> items;
      items.reserve(options_.chunksize);
      for (; items.size() < options_.chunksize && next_ != std::ranges::end(input_); ++next_) items.push_back(*next_);
      auto f = ex_.template submit_chunk<R>(fn_, std::move(items));
      if (ready_) f.add_done_callback([q = ready_](const Future<Chunk>& g) { q->push(g); });
      window_.push_back(std::move(f));
    }
  }

  // Moves to the next item; false at the end.
  bool advance() {
    if (++pos_ < chunk_.size()) return true;
    if (window_.empty()) return false;
    Future<Chunk> f;
    if (options_.ordered) {
      f = std::move(window_.front());
      window_.pop_front();
    } else {
      auto popped = ready_->pop(deadline_);
      if (!popped) detail::throw_map_timeout(options_.timeout.duration());
      f = std::move(*popped);
      window_.erase(std::find(window_.begin(), window_.end(), f));
    }
    // Until a chunk is in hand there is no current item (an exception below leaves none).
    chunk_.clear();
    pos_ = static_cast<std::size_t>(-1);
    try {
      chunk_ = std::move(f).result(remaining());
    } catch (const TimeoutError&) {
      window_.push_front(std::move(f));  // keep it cancellable by the destructor
      detail::throw_map_timeout(options_.timeout.duration());
    }
    pos_ = 0;
    // Refill only now: if reading the input or submitting throws, this chunk is already
    // safe in chunk_ and its items are still yielded when iteration goes on.
    fill();
    return !chunk_.empty() || advance();
  }

  Timeout remaining() const {
    if (deadline_ == detail::Clock::time_point::max()) return {};
    return std::max(deadline_ - detail::Clock::now(), detail::Clock::duration::zero());
  }

  R& current() {
    if (pos_ >= chunk_.size()) throw InvalidStateError("the map iterator has no current item (its last step threw)");
    auto& outcome = chunk_[pos_];
    if (outcome.index() == 1) std::rethrow_exception(std::get<1>(outcome));
    return std::get<0>(outcome);
  }

  Executor& ex_;
  F fn_;
  V input_;
  MapOptions options_;
  detail::Clock::time_point deadline_;
  std::ranges::iterator_t<V> next_;
  std::deque<Future<Chunk>> window_;                       // submitted, not yet consumed
  std::shared_ptr<detail::ReadyQueue<Chunk>> ready_;       // unordered mode only
  Chunk chunk_;                                            // the chunk being yielded
  std::size_t pos_ = static_cast<std::size_t>(-1);
  bool begun_ = false;
};

}  // namespace parex
