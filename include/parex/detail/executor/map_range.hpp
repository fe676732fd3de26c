// parex/detail/executor/map_range.hpp - MapRange, the lazy result of Executor::map (included by
// executor_core.hpp, after Executor). Local: chunks go to a backend that runs them in this
// process (no encoding is instantiated).
//
// A window of chunk futures, refilled from the input as results are consumed. Rules (the
// README's, and Python's where it has one):
//  - every item keeps its place: an item's exception is thrown when that item is reached,
//    and a chunk that failed as a whole (cancelled by shutdown, say) fails each of its items;
//  - a failure that ends the map - the input threw, a submit was refused (shutdown, a
//    broken pool, a destroyed executor) - is a "stop" slot placed after the last item
//    that went out: those items are still yielded, then the step that reaches the stop
//    throws its error and the iteration is over (one that happens before map() returns
//    is map()'s own error instead, unless MapOptions::input_errors_in_place says the
//    input's stays in place);
//  - the map's timeout throws TimeoutError once, cancels what has not started and ends
//    the iteration.
// Not thread-safe: one thread iterates a range. Its executor may be destroyed first (see
// ExecutorLife): the range then stops with InvalidStateError.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace parex {

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
/// MapOptions::on_progress behind a lock, at a bounded rate (executor/map_progress.cpp).
class MapProgressTracker {
 public:
  MapProgressTracker(std::function<void(const MapProgress&)> fn, std::optional<std::size_t> total,
                     std::chrono::milliseconds interval);
  /// A chunk completed (any thread).
  void add(std::size_t done, std::size_t failed) noexcept;
  /// The iteration ended: the last figures, if not reported yet.
  void finish() noexcept;
  /// The map range is going: no report from now on (chunks still running would call the
  /// user's function after its captures are gone); waits for one under way elsewhere.
  void close() noexcept;

 private:
  void report(std::unique_lock<std::mutex>& lock) noexcept;
  std::mutex mutex_;
  std::condition_variable idle_;  // reporting_ went false
  std::function<void(const MapProgress&)> fn_;
  MapProgress now_;
  std::size_t reported_done_ = static_cast<std::size_t>(-1);
  Clock::time_point last_{};
  std::chrono::milliseconds interval_;
  bool reporting_ = false, again_ = false, closed_ = false;
  std::thread::id reporter_{};
};
/// Closes a progress tracker when the map range goes, whichever way (its destructor, or
/// its constructor throwing).
struct ProgressCloser {
  std::shared_ptr<MapProgressTracker> tracker;
  ProgressCloser() = default;
  ProgressCloser(const ProgressCloser&) = delete;
  ProgressCloser& operator=(const ProgressCloser&) = delete;
  ~ProgressCloser() {
    if (tracker) tracker->close();
  }
};
/// How many items of a done chunk future failed.
template <class R>
std::size_t failed_items(const Future<ChunkResult<R>>& f, std::size_t items) noexcept {
  try {
    if (f.cancelled() || f.exception()) return items;
    std::size_t n = 0;
    for (const auto& o : f.result()) n += o.index() == 1;
    return n;
  } catch (...) {
    return items;
  }
}
[[noreturn]] void throw_map_timeout(std::chrono::nanoseconds timeout);
std::exception_ptr map_executor_gone();
}  // namespace detail

/// The lazy result of Executor::map: a single-pass input range of R.
/// Not movable: iterate it where map() returned it. Destroying it cancels unstarted calls.
template <class R, class F, class V, bool Local>
class MapRange {
  using Item = std::ranges::range_value_t<V>;
  using Chunk = detail::ChunkResult<R>;
  struct Slot {
    Future<Chunk> future;  // empty in a stop slot
    std::size_t items = 0;
    std::exception_ptr stop;  // reaching this slot throws it and ends the map
  };

 public:
  MapRange(Executor& ex, F fn, V input, MapOptions options)
      : ex_(&ex),
        life_(ex.life_),
        fn_(std::move(fn)),
        input_(std::move(input)),
        options_(options),
        deadline_(options.timeout.deadline()) {
    if (options_.chunksize == 0u) throw std::invalid_argument("map: chunksize must be at least 1");
    if (options_.buffersize == 0) {
      // Enough calls to keep every worker busy (4 each), and ~64K items in flight for tiny
      // chunks, at most 4096 futures. Adaptive chunks count as big ones (they grow fast).
      // Adaptive chunks: up to 4096 of them, while they hold fewer than ~64K items (a long
      // item at the head of an ordered window must not starve the workers).
      const std::size_t per_call = options_.chunksize.value_or(1);
      const std::size_t by_items = per_call >= 65536 ? 1 : 65536 / per_call;
      const std::size_t by_workers = 4 * ex_->max_workers();
      const std::size_t want = by_workers > by_items ? by_workers : by_items;
      options_.buffersize = want < 4096 ? want : 4096;
      if (adaptive()) window_max_items_ = 65536;
    }
    if (!options_.ordered) ready_ = std::make_shared<detail::ReadyQueue<Chunk>>();
    if (options_.on_progress) {
      std::optional<std::size_t> total;
      if constexpr (std::ranges::sized_range<V>) total = static_cast<std::size_t>(std::ranges::size(input_));
      progress_.tracker =
          std::make_shared<detail::MapProgressTracker>(options_.on_progress, total, options_.progress_interval);
    }
    if constexpr (std::ranges::sized_range<V>) {
      const auto n = static_cast<std::size_t>(std::ranges::size(input_));
      max_adaptive_ = std::max<std::size_t>(1, n / (4 * std::max<std::size_t>(1, ex_->max_workers())));
    }
    try {
      next_ = std::ranges::begin(input_);  // a generator may compute its first item here
    } catch (...) {
      if (!options_.input_errors_in_place) throw;
      input_failed_ = true;
      stop(std::current_exception());
    }
    fill();
    // Before map() returns, a failing input or submit is map()'s own error (an
    // unregistered function, a shut-down executor), as in Python: nothing unseen runs on.
    // Pool.imap's input error is the exception: it waits in its place.
    if (stopped_ && !window_.empty() && window_.back().stop && !(input_failed_ && options_.input_errors_in_place)) {
      const std::exception_ptr e = window_.back().stop;
      if (progress_.tracker) progress_.tracker->close();
      cancel_all();
      std::rethrow_exception(e);
    }
  }
  MapRange(const MapRange&) = delete;
  MapRange& operator=(const MapRange&) = delete;
  ~MapRange() {
    if (progress_.tracker) progress_.tracker->close();  // first: what cancel_all completes reports nothing
    cancel_all();
  }

  class iterator {
   public:
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    /// The current item; rethrows its exception if its call failed.
    R& operator*() const { return owner_->current(); }
    /// Next item. Throws the error that ends the map (see above); the iterator is then
    /// at the end.
    iterator& operator++() {
      step();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return it.owner_ == nullptr; }

   private:
    friend class MapRange;
    explicit iterator(MapRange* o) : owner_(o) { step(); }
    void step() {
      try {
        if (!owner_->advance()) owner_ = nullptr;
      } catch (...) {
        if (owner_->exhausted()) owner_ = nullptr;
        throw;
      }
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
  // Submits chunks until the window is full, the input is exhausted or the map stopped.
  // Whatever fails in here (the input, a submit, memory) becomes the map's stop.
  void fill() noexcept {
    try {
      while (!stopped_ && window_.size() < options_.buffersize && window_items_ < window_max_items_ &&
             next_ != std::ranges::end(input_)) {
        const std::size_t chunk = chunk_size();
        if (chunk == 0) return stop(detail::map_executor_gone());
        std::vector<Item> items;
        items.reserve(chunk);
        try {
          for (; items.size() < chunk && next_ != std::ranges::end(input_); ++next_)
            items.push_back(*next_);
        } catch (...) {  // the input failed: the items read before it still go out
          const std::exception_ptr e = std::current_exception();
          if (!items.empty()) submit(std::move(items));
          input_failed_ = !stopped_;  // the stop is the input's, not a failed submit's
          return stop(e);
        }
        submit(std::move(items));
      }
    } catch (...) {
      stop(std::current_exception());
    }
  }

  // Whether chunks are sized by the executor (no chunksize given, calls in other processes).
  bool adaptive() const noexcept {
    if constexpr (Local) return false;
    else return !options_.chunksize && ex_->remote_;
  }

  // Items in the next chunk: the given chunksize, or what the executor's estimate of fn
  // says (0: the executor is gone).
  std::size_t chunk_size() {
    if (options_.chunksize) return *options_.chunksize;
    if constexpr (!Local) {
      if (!entry_ && !unknown_fn_ && ex_->remote_) {
        try {
          entry_ = &detail::lookup_function(fn_);
        } catch (...) {  // not registered: the submit says so
          unknown_fn_ = true;
        }
      }
      if (entry_) {
        if (!life_->enter()) return 0;
        const std::size_t n = std::min({ex_->adaptive_chunk(*entry_), next_adaptive_, max_adaptive_});
        life_->leave();
        next_adaptive_ = std::min(2 * next_adaptive_, max_adaptive_);
        return std::max<std::size_t>(n, 1);
      }
    }
    return 1;
  }

  // The executor is used only between enter() and leave(), never while the user's input
  // runs: a destructor on another thread waits for a submit, not for the input.
  void submit(std::vector<Item>&& items) {
    const std::size_t n = items.size();
    if (!life_->enter()) return stop(detail::map_executor_gone());
    Future<Chunk> f;
    try {
      const auto timeout = detail::deadline_of(options_.call_timeout);
      if constexpr (Local) f = ex_->template submit_chunk_local<R>(fn_, std::move(items), timeout);
      else f = ex_->template submit_chunk<R>(fn_, std::move(items), timeout);
    } catch (...) {
      life_->leave();
      return stop(std::current_exception());
    }
    life_->leave();
    try {
      window_.push_back({f, n, nullptr});  // first: an unordered map finds it there when it completes
      window_items_ += n;
      if (progress_.tracker)
        f.add_done_callback(
            [t = progress_.tracker, n](const Future<Chunk>& g) { t->add(n, detail::failed_items(g, n)); });
      if (ready_) f.add_done_callback([q = ready_](const Future<Chunk>& g) { q->push(g); });
    } catch (...) {  // out of memory: nothing unseen may run on
      f.cancel();
      if (!window_.empty() && window_.back().future == f) {
        window_.pop_back();
        window_items_ -= n;
      }
      stop(std::current_exception());
    }
  }

  // noexcept: a stop that cannot be recorded (no memory for one more slot) is fatal.
  void stop(std::exception_ptr e) noexcept {
    if (stopped_) return;
    stopped_ = true;
    window_.push_back({{}, 0, std::move(e)});
  }

  // Cancels what has not started; with interrupt_on_exit, stops what runs too.
  void cancel_all() noexcept {
    for (auto& s : window_) {
      if (!s.future.valid()) continue;
      if (options_.interrupt_on_exit) s.future.interrupt();
      else s.future.cancel();
    }
  }

  // Ends the iteration: cancels what has not started, forgets the rest.
  void finish() noexcept {
    cancel_all();
    window_.clear();
    window_items_ = 0;
    chunk_.clear();
    pos_ = static_cast<std::size_t>(-1);
    stopped_ = true;
  }

  bool exhausted() const noexcept { return stopped_ && window_.empty() && pos_ >= chunk_.size(); }

  // The next slot to yield: in input order, or (unordered) as chunks complete, the stop
  // slot last.
  Slot take_next() {
    if (options_.ordered || (window_.size() == 1 && window_.front().stop)) {
      Slot s = std::move(window_.front());
      window_.pop_front();
      window_items_ -= s.items;
      return s;
    }
    auto popped = ready_->pop(deadline_);
    if (!popped) timed_out();
    auto it = window_.begin();
    while (it != window_.end() && !(it->future == *popped)) ++it;
    if (it == window_.end()) throw InvalidStateError("map: a completed chunk is not in the window");
    Slot s = std::move(*it);
    window_.erase(it);
    window_items_ -= s.items;
    return s;
  }

  [[noreturn]] void timed_out() {
    finish();
    detail::throw_map_timeout(options_.timeout.duration());
  }

  // Moves to the next item; false at the end.
  bool advance() {
    if (++pos_ < chunk_.size()) return true;
    // Until a chunk is in hand there is no current item (an exception below leaves none).
    chunk_.clear();
    pos_ = static_cast<std::size_t>(-1);
    for (;;) {
      if (window_.empty()) {
        if (progress_.tracker) progress_.tracker->finish();
        return false;
      }
      Slot slot = take_next();
      if (slot.stop) {
        finish();
        std::rethrow_exception(slot.stop);
      }
      // The map's timeout bounds the wait only: a chunk that failed with a TimeoutError of
      // its own (a call's deadline) fails its items like any other error. Once done, the
      // result is taken without a deadline: result() may still wait a moment for its done
      // callbacks (the ready queue's push), and that must not time out.
      if (!detail::FutureAccess::state(slot.future)->wait_until(detail::deadline_ptr(deadline_))) {
        window_items_ += slot.items;
        window_.push_front(std::move(slot));  // cancelled with the rest
        timed_out();
      }
      try {
        chunk_ = std::move(slot.future).result();
      } catch (...) {  // the chunk failed as a whole (cancelled, a deadline): each item fails with it
        const std::exception_ptr e = std::current_exception();
        for (std::size_t i = 0; i < slot.items; ++i) chunk_.emplace_back(std::in_place_index<1>, e);
      }
      pos_ = 0;
      // Refill only now: this chunk is safe in chunk_ whatever the input or submit does.
      fill();
      if (!chunk_.empty()) return true;
    }
  }

  R& current() {
    if (pos_ >= chunk_.size()) throw InvalidStateError("the map iterator has no current item (its last step threw)");
    auto& outcome = chunk_[pos_];
    if (outcome.index() == 1) std::rethrow_exception(std::get<1>(outcome));
    return std::get<0>(outcome);
  }

  Executor* ex_;                              // used only between life_->enter() and leave()
  std::shared_ptr<detail::ExecutorLife> life_;
  F fn_;
  V input_;
  MapOptions options_;
  detail::Clock::time_point deadline_;
  std::ranges::iterator_t<V> next_;
  std::deque<Slot> window_;                          // submitted, not yet consumed
  std::size_t window_items_ = 0;                     // items in window_'s slots
  std::size_t window_max_items_ = static_cast<std::size_t>(-1);
  std::shared_ptr<detail::ReadyQueue<Chunk>> ready_;  // unordered mode only
  detail::ProgressCloser progress_;  // with on_progress only
  Chunk chunk_;                                      // the chunk being yielded
  std::size_t pos_ = static_cast<std::size_t>(-1);
  // Adaptive chunks (no chunksize, calls in other processes; see remote/batching.hpp):
  // the executor's estimate of fn, capped by a size that starts at 1 and doubles with each
  // chunk, and by len / (4 x workers) for a sized input.
  const detail::FunctionEntry* entry_ = nullptr;  // fn's registration
  bool unknown_fn_ = false;                       // fn has none
  std::size_t next_adaptive_ = 1;
  std::size_t max_adaptive_ = std::size_t{1} << 20;  // no executor estimate goes near it
  bool stopped_ = false;  // no more input is read: it ended badly, or the map timed out
  bool input_failed_ = false;  // the stop slot holds the input's exception
  bool begun_ = false;
};

}  // namespace parex
