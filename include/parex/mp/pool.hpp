// parex/mp/pool.hpp - Python's multiprocessing.Pool and multiprocessing.pool.ThreadPool:
// a face over ProcessPoolExecutor and ThreadPoolExecutor, not a second engine.
//
//   int square(int x) { return x * x; }
//   PAREX_REGISTER(square);
//   int main(int argc, char** argv) {
//     parex::init(argc, argv);
//     parex::Pool pool(4);
//     std::vector<int> v = pool.map(square, std::views::iota(0, 10));  // 0 1 4 ... 81
//     parex::AsyncResult<int> r = pool.apply_async(square, 7);
//     r.get(1s);                                                       // 49, or TimeoutError
//   }
//
// Python's names: map, map_async, imap, imap_unordered, starmap, starmap_async, apply,
// apply_async (callback, error_callback through a leading parex::Callbacks{...}), close,
// join, terminate; AsyncResult::get(timeout), wait(timeout), ready(), successful().
//
// What differs from Python, on purpose:
// - A worker that dies fails the calls it held with WorkerCrashed (a BrokenProcessPool):
//   get() throws, it never hangs. The pool starts a fresh worker and goes on.
// - join() and terminate() from a callback of the same pool throw InvalidStateError (they
//   would wait for the very thread that runs the callback).
// - One thread collects each map_async / starmap_async while it runs.
// - The destructor calls terminate() (Python's `with Pool() as p:` block does the same):
//   calls not started are cancelled, running ones fail, the workers are reaped before it
//   returns. Call close() and join() first to let queued work finish. No worker outlives
//   the Pool object.
// - maxtasksperchild counts calls (a map chunk is one call), as Python counts tasks.
// - Callbacks run on the thread that completes the call (the pool's result thread, or a
//   map_async collector), before get() returns: keep them short, as Python asks. What a
//   callback throws is reported on stderr and lost, as for Future::add_done_callback.
// - starmap takes tuples (or pairs) of up to 4 elements.
// - imap and imap_unordered return the executor's lazy map range: iterate it once; an
//   item whose call failed throws when reached. Its destructor cancels what is unread.
//   An input that throws: the results of the items read before it are yielded, then the
//   step that reaches its place throws the input's own exception (as Python; Python also
//   drops the part of a chunk read before the error, parex runs it: with chunksize 2 and
//   an error at item 7, items 0-6 are yielded, Python's 0-5).
// - map of a range without a size reads it whole first, as Python lists it: an input that
//   throws fails map before any call, and the chunksize comes from the real length.
// - maxtasksperchild: std::nullopt (the default) is no limit, as Python's None; 0 is
//   ValueError, as in Python.
//
// A ThreadPool runs any callable; a Pool runs functions registered with PAREX_REGISTER,
// with the compile-time checks of ProcessPoolExecutor::submit. All members are
// thread-safe except construction and destruction.
#pragma once

#include <parex/process_pool.hpp>
#include <parex/thread_pool.hpp>

#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace parex {

/// A callback that does nothing: the default of both Callbacks members.
struct NoCallback {
  template <class... A>
  void operator()(A&&...) const noexcept {}
};

/// The callback (called with the result; with nothing for a void call) and the
/// error_callback (called with the std::exception_ptr) of an *_async call:
///   pool.apply_async(parex::Callbacks{on_result, on_error}, fn, args...)
template <class C = NoCallback, class E = NoCallback>
struct Callbacks {
  C callback{};
  E error_callback{};
};
template <class C>
Callbacks(C) -> Callbacks<C, NoCallback>;
template <class C, class E>
Callbacks(C, E) -> Callbacks<C, E>;

/// Python's AsyncResult: what apply_async and map_async return. A cheap copyable handle.
template <class T>
class AsyncResult {
 public:
  AsyncResult() = default;
  explicit AsyncResult(Future<T> f) : f_(std::move(f)) {}

  /// The result; rethrows the call's exception.
  /// @throws TimeoutError when not ready within timeout (the call goes on).
  T get(Timeout timeout = {}) const {
    if constexpr (std::is_void_v<T>) f_.result(timeout);
    else return f_.result(timeout);
  }
  /// Waits until ready or until timeout passes; never throws the call's exception.
  void wait(Timeout timeout = {}) const { parex::wait(std::vector<Future<T>>{f_}, timeout); }
  bool ready() const { return f_.done(); }
  /// Whether the call succeeded. @throws ValueError if it is not ready (as Python).
  bool successful() const {
    if (!f_.done()) throw ValueError("AsyncResult::successful: the result is not ready");
    return f_.exception() == nullptr;
  }
  /// The future underneath (then wait(), as_completed() work on AsyncResults too).
  const Future<T>& future() const noexcept { return f_; }

 private:
  Future<T> f_;
};

namespace detail {

/// Threads that collect map_async results; finished ones are reaped as new ones start.
class PoolCollectors {
 public:
  PoolCollectors() = default;
  PoolCollectors(const PoolCollectors&) = delete;
  PoolCollectors& operator=(const PoolCollectors&) = delete;
  ~PoolCollectors() { join_all(); }
  void start(std::function<void()> job);
  void join_all() noexcept;

 private:
  struct Slot;
  std::mutex mutex_;
  std::vector<std::shared_ptr<Slot>> slots_;
};

/// Set while a Pool callback runs on this thread: join() and terminate() there would wait
/// for themselves.
extern thread_local int in_pool_callback;
struct InCallback {
  InCallback() noexcept { ++in_pool_callback; }
  ~InCallback() { --in_pool_callback; }
};
void check_not_in_callback(const char* what);
[[noreturn]] void throw_pool_not_running();
[[noreturn]] void throw_pool_still_running();
void report_callback_error(const char* which) noexcept;

template <class T, class C, class E>
Future<T> with_callbacks(Future<T> f, Callbacks<C, E> cbs) {
  if constexpr (std::is_same_v<C, NoCallback> && std::is_same_v<E, NoCallback>) {
    return f;
  } else {
    Promise<T> p;
    Future<T> out = p.get_future();
    f.add_done_callback([p = std::move(p), cbs = std::move(cbs)](const Future<T>& g) mutable {
      std::exception_ptr e;
      try {
        e = g.exception();
      } catch (...) {  // cancelled
        e = std::current_exception();
      }
      InCallback flag;
      if (e) {
        try {
          cbs.error_callback(e);
        } catch (...) {
          report_callback_error("error_callback");
        }
        p.set_exception(e);
        return;
      }
      if constexpr (std::is_void_v<T>) {
        try {
          cbs.callback();
        } catch (...) {
          report_callback_error("callback");
        }
        p.set_result();
      } else {
        const T& value = g.result();  // done: no wait
        try {
          cbs.callback(value);
        } catch (...) {
          report_callback_error("callback");
        }
        p.set_result(value);
      }
    });
    return out;
  }
}

/// The Pool face, written once over either executor.
template <class Exec>
class PoolFace {
 public:
  PoolFace(const PoolFace&) = delete;
  PoolFace& operator=(const PoolFace&) = delete;
  ~PoolFace() { stop(); }

  /// fn over the range, results in order. chunksize 0: Python's choice (len / (4 x
  /// processes), rounded up) for a sized range, else 1. Rethrows the first failure.
  template <class F, std::ranges::input_range R>
  auto map(F&& fn, R&& range, std::size_t chunksize = 0) {
    check_running();
    if constexpr (std::ranges::sized_range<R>) {
      return collect(ex_.map(std::forward<F>(fn), range, options(range, chunksize)));
    } else {
      auto items = to_vector(std::forward<R>(range));
      return collect(ex_.map(std::forward<F>(fn), items, options(items, chunksize)));
    }
  }
  template <class F, std::ranges::input_range R, class C = NoCallback, class E = NoCallback>
  auto map_async(F fn, R&& range, std::size_t chunksize = 0, Callbacks<C, E> cbs = {}) {
    return async_map(std::move(fn), to_vector(std::forward<R>(range)), chunksize, std::move(cbs),
                     [](auto& ex, auto& f, auto& items, MapOptions o) { return ex.map(f, items, o); });
  }
  /// Lazy, in order / in completion order; see the header comment.
  template <class F, std::ranges::input_range R>
  auto imap(F&& fn, R&& range, std::size_t chunksize = 1) {
    check_running();
    return ex_.map(std::forward<F>(fn), std::forward<R>(range),
                   MapOptions{.chunksize = chunksize, .input_errors_in_place = true});
  }
  template <class F, std::ranges::input_range R>
  auto imap_unordered(F&& fn, R&& range, std::size_t chunksize = 1) {
    check_running();
    return ex_.map(std::forward<F>(fn), std::forward<R>(range),
                   MapOptions{.chunksize = chunksize, .ordered = false, .input_errors_in_place = true});
  }
  /// fn(get<0>(t), get<1>(t), ...) for each tuple t of the range, results in order.
  template <class F, std::ranges::forward_range R>
  auto starmap(F&& fn, R&& range, std::size_t chunksize = 0) {
    check_running();
    return collect(star(ex_, fn, range, options(range, chunksize)));
  }
  template <class F, std::ranges::input_range R, class C = NoCallback, class E = NoCallback>
  auto starmap_async(F fn, R&& range, std::size_t chunksize = 0, Callbacks<C, E> cbs = {}) {
    return async_map(std::move(fn), to_vector(std::forward<R>(range)), chunksize, std::move(cbs),
                     [](auto& ex, auto& f, auto& items, MapOptions o) { return star(ex, f, items, o); });
  }

  /// fn(args...) on a worker; waits for it.
  template <class F, class... A>
  auto apply(F&& fn, A&&... args) {
    check_running();
    return ex_.submit(std::forward<F>(fn), std::forward<A>(args)...).result();
  }
  template <class F, class... A>
  auto apply_async(F&& fn, A&&... args) {
    return apply_async(Callbacks<>{}, std::forward<F>(fn), std::forward<A>(args)...);
  }
  template <class C, class E, class F, class... A>
  auto apply_async(Callbacks<C, E> cbs, F&& fn, A&&... args) {
    check_running();
    auto f = ex_.submit(std::forward<F>(fn), std::forward<A>(args)...);
    using T = typename decltype(f)::value_type;
    return AsyncResult<T>(with_callbacks(std::move(f), std::move(cbs)));
  }

  /// No more work is accepted; what was submitted runs to the end.
  void close() { running_.store(false); }
  /// Waits for every worker to finish (after close or terminate). @throws ValueError
  /// while the pool still accepts work (as Python).
  /// @throws InvalidStateError from a callback of this pool (it would wait for itself).
  void join() {
    check_not_in_callback("join");
    if (running_.load()) throw_pool_still_running();
    collectors_.join_all();  // first: a map_async may still be submitting its chunks
    ex_.shutdown(true);
  }
  /// Stops now: calls not started are cancelled, running ones fail (process workers get
  /// SIGKILL: one that handles SIGTERM cannot hold the pool up), workers are reaped.
  /// @throws InvalidStateError from a callback of this pool (it would wait for itself).
  void terminate() {
    check_not_in_callback("terminate");
    stop();
  }
  std::size_t processes() const noexcept { return ex_.max_workers(); }
  /// The executor underneath: everything a pool is not asked to do (futures, wait, ...).
  Exec& executor() noexcept { return ex_; }

 protected:
  template <class... A>
  explicit PoolFace(A&&... a) : ex_(std::forward<A>(a)...) {}

 private:
  void stop() noexcept {
    running_.store(false);
    try {
      if constexpr (requires(Exec& e) { e.kill_workers(); }) ex_.kill_workers();
      ex_.shutdown(true, true);
    } catch (...) {
    }
    collectors_.join_all();
  }
  void check_running() const {
    if (!running_.load()) throw_pool_not_running();
  }
  template <class R>
  MapOptions options(R& range, std::size_t chunksize) const {
    if (chunksize == 0) {
      chunksize = 1;
      if constexpr (std::ranges::sized_range<R>) {
        const std::size_t n = static_cast<std::size_t>(std::ranges::size(range)), parts = 4 * processes();
        chunksize = std::max<std::size_t>(1, (n + parts - 1) / parts);
      }
    }
    return MapOptions{.chunksize = chunksize};
  }
  template <class Range>
  static auto collect(Range&& results) {
    std::vector<std::ranges::range_value_t<Range>> out;
    for (auto& v : results) out.push_back(std::move(v));
    return out;
  }
  template <class R>
  static auto to_vector(R&& range) {
    std::vector<std::ranges::range_value_t<R>> v;
    if constexpr (std::ranges::sized_range<R>) v.reserve(std::ranges::size(range));
    for (auto&& x : range) v.push_back(std::forward<decltype(x)>(x));
    return v;
  }
  template <class F, class R, std::size_t... I>
  static auto star_at(Exec& ex, F& fn, R& range, MapOptions o, std::index_sequence<I...>) {
    return ex.map(fn, std::views::elements<I>(std::views::all(range))..., o);
  }
  template <class F, class R>
  static auto star(Exec& ex, F& fn, R& range, MapOptions o) {
    constexpr std::size_t n = std::tuple_size_v<std::remove_cvref_t<std::ranges::range_value_t<R>>>;
    static_assert(n >= 1 && n <= 4, "starmap: the tuples must have 1 to 4 elements");
    return star_at(ex, fn, range, o, std::make_index_sequence<n>{});
  }

  template <class F, class Items, class C, class E, class Run>
  auto async_map(F fn, Items items, std::size_t chunksize, Callbacks<C, E> cbs, Run run) {
    check_running();
    using R = std::ranges::range_value_t<decltype(run(ex_, fn, items, MapOptions{}))>;
    using V = std::vector<R>;
    const MapOptions o = options(items, chunksize);
    struct Job {
      F fn;
      Items items;
      Promise<V> promise;
    };
    auto job = std::make_shared<Job>(Job{std::move(fn), std::move(items)});
    AsyncResult<V> result(with_callbacks(job->promise.get_future(), std::move(cbs)));
    collectors_.start([job, o, run, ex = &ex_] {
      try {
        V out = collect(run(*ex, job->fn, job->items, o));
        job->promise.set_result(std::move(out));
      } catch (...) {
        job->promise.set_exception(std::current_exception());
      }
    });
    return result;
  }

  Exec ex_;
  std::atomic<bool> running_{true};
  PoolCollectors collectors_;  // after ex_: joined first, while the executor still lives
};

}  // namespace detail

/// Python's multiprocessing.Pool(processes, initializer, maxtasksperchild); processes 0
/// means process_cpu_count(); maxtasksperchild std::nullopt means no limit (Python's None).
/// @throws ValueError if maxtasksperchild is 0 (as Python), before any worker starts.
class Pool : public detail::PoolFace<ProcessPoolExecutor> {
 public:
  explicit Pool(std::size_t processes = 0, Initializer initializer = {},
                std::optional<std::size_t> maxtasksperchild = std::nullopt)
      : PoolFace(make_options(processes, std::move(initializer), maxtasksperchild)) {}

 private:
  static ProcessPoolOptions make_options(std::size_t processes, Initializer initializer,
                                         std::optional<std::size_t> maxtasksperchild) {
    if (maxtasksperchild == 0u) throw ValueError("Pool: maxtasksperchild must be a positive number or std::nullopt");
    ProcessPoolOptions o;
    o.max_workers = processes;
    o.initializer = std::move(initializer);
    o.max_tasks_per_child = maxtasksperchild.value_or(0);  // the executor's 0: no limit
    return o;
  }
};

/// Python's multiprocessing.pool.ThreadPool(processes, initializer): threads, any callable.
/// terminate() cannot stop a running thread: it cancels what has not started and waits.
class ThreadPool : public detail::PoolFace<ThreadPoolExecutor> {
 public:
  explicit ThreadPool(std::size_t processes = 0, std::function<void()> initializer = {})
      : PoolFace(make_options(processes, std::move(initializer))) {}

 private:
  static ThreadPoolOptions make_options(std::size_t processes, std::function<void()> initializer) {
    ThreadPoolOptions o;
    o.max_workers = processes;
    o.initializer = std::move(initializer);
    return o;
  }
};

}  // namespace parex
