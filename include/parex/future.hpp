// parex/future.hpp - Future<T>, Promise<T>, wait() and as_completed(); then(), when_all()
// and when_any() (detail/future/continuations.hpp).
//
// Future<T> is Python's concurrent.futures.Future for C++: a cheap copyable handle to
// shared state (one atomic reference count). All members are thread-safe; any number of
// threads may wait on copies of one future. Completion publishes the result with release
// ordering, so a thread that sees done() == true also sees the value.
//
// @code
//   parex::Future<int> f = pool.submit(square, 7);
//   f.add_done_callback([](const parex::Future<int>& g) { std::cout << g.result(); });
//   int r = f.result(std::chrono::seconds(1));       // 49, or TimeoutError
//   for (auto& g : parex::as_completed(futures)) use(g.result());
// @endcode
#pragma once

#include <parex/detail/future/state.hpp>
#include <parex/errors.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <ranges>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace parex {

/// How long to wait: a duration, or forever (the default; also from std::nullopt, as
/// Python's timeout=None). Durations are rounded up to nanoseconds; negative is zero.
class Timeout {
 public:
  constexpr Timeout() noexcept = default;
  constexpr Timeout(std::nullopt_t) noexcept {}
  template <class Rep, class Period>
  constexpr Timeout(std::chrono::duration<Rep, Period> d) noexcept : finite_(true) {
    const std::chrono::duration<double, std::nano> ns = d;
    // ~292 years saturate to "forever"; anything below zero means "do not wait".
    if (ns.count() >= 9.0e18) finite_ = false;
    else ns_ = std::chrono::nanoseconds(ns.count() <= 0 ? 0 : static_cast<std::int64_t>(ns.count() + 0.999));
  }
  constexpr bool finite() const noexcept { return finite_; }
  constexpr std::chrono::nanoseconds duration() const noexcept { return ns_; }
  /// The deadline this timeout gives when counted from now (time_point::max() if none).
  detail::Clock::time_point deadline() const noexcept {
    return finite_ ? detail::Clock::now() + ns_ : detail::Clock::time_point::max();
  }

 private:
  std::chrono::nanoseconds ns_{0};
  bool finite_ = false;
};

template <class T>
class Future;
template <class T>
class Promise;

namespace detail {
struct FutureAccess;
inline const Clock::time_point* deadline_ptr(const Clock::time_point& d) noexcept {
  return d == Clock::time_point::max() ? nullptr : &d;
}
[[noreturn]] void throw_timeout(const char* what, std::chrono::nanoseconds waited);
[[noreturn]] void throw_no_state();

// Waits with the timeout (and_callbacks: also for the callbacks completion started);
// throws TimeoutError if not done, CancelledError if cancelled.
void await_done(const StateBase& s, const Timeout& t, const char* what, bool and_callbacks = false);

// Copy-constructible, looking inside the containers whose copy constructor is declared
// whether or not their elements can be copied (a chunk of move-only results).
template <class T>
inline constexpr bool copyable_v = std::is_copy_constructible_v<T>;
template <class T, class A>
inline constexpr bool copyable_v<std::vector<T, A>> = copyable_v<T>;
template <class... T>
inline constexpr bool copyable_v<std::variant<T...>> = (copyable_v<T> && ...);

template <class T, class Fn>
struct then_result;  // detail/future/continuations.hpp

template <class T, class Fn>
struct UserCallback final : CallbackNode {
  Fn fn;
  explicit UserCallback(Fn f) : fn(std::move(f)) {}
  void fire(StateBase& state) noexcept override {
    call(state);
    delete this;
  }
  void dispose() noexcept override { delete this; }
  void call(StateBase& state) noexcept;
};
}  // namespace detail

/// The result of an asynchronous call (Python: concurrent.futures.Future).
/// @code
///   parex::Future<std::string> f = pool.submit(load, path);
///   if (f.done()) std::cout << f.result();
/// @endcode
template <class T>
class Future {
 public:
  using value_type = T;

  /// An empty future (valid() == false); every other member throws InvalidStateError.
  Future() noexcept = default;

  bool valid() const noexcept { return static_cast<bool>(s_); }

  /// Cancels the call if it has not started; true if the future is now cancelled.
  bool cancel() const { return state().cancel(); }
  /// Beyond Python: also stops a running process-pool call. Its worker is stopped (SIGTERM,
  /// then SIGKILL after ProcessPoolOptions::stop_grace), the call fails with CancelledError,
  /// the calls that worker held but had not started run elsewhere. A call not started is
  /// cancelled, as by cancel(); one its worker holds behind another call is stopped when
  /// it starts. A thread-pool call that runs cannot be stopped: false. True if the future
  /// is cancelled now or its stop is under way (a call that completes before its worker
  /// is stopped keeps its result).
  bool interrupt() const { return state().interrupt(); }
  bool cancelled() const { return state().status() == detail::StateBase::cancelled; }
  /// True while the call runs (for a process pool: once it has been sent to a worker).
  bool running() const { return state().status() == detail::StateBase::running; }
  bool done() const { return state().done(); }

  /// Waits for the call and returns its value; rethrows its exception.
  /// @throws TimeoutError if not done in time, CancelledError if cancelled.
  decltype(auto) result(Timeout timeout = {}) const& {
    auto& s = state();
    detail::await_done(s, timeout, "result");
    if (s.failed()) std::rethrow_exception(s.error());
    if constexpr (!std::is_void_v<T>) return static_cast<const T&>(s.value());
  }
  /// As above, on an rvalue future: returns the value by value, moved out when this is
  /// the only Future handle, else copied (a shared move-only value throws InvalidStateError).
  /// Moving waits for the done callbacks already running to return: they may read it.
  T result(Timeout timeout = {}) && {
    auto& s = state();
    detail::await_done(s, timeout, "result", true);
    if (s.failed()) std::rethrow_exception(s.error());
    if constexpr (!std::is_void_v<T>) {
      if (s.handle_count() == 1) return T(std::move(s.value()));
      if constexpr (detail::copyable_v<T>) {
        return T(s.value());
      } else {
        throw InvalidStateError("the result is move-only and shared by several futures: "
                                "read it through an lvalue future");
      }
    }
  }

  /// Waits, then returns the call's exception, or nullptr if it succeeded.
  /// @throws TimeoutError if not done in time, CancelledError if cancelled.
  std::exception_ptr exception(Timeout timeout = {}) const {
    auto& s = state();
    detail::await_done(s, timeout, "exception");
    return s.failed() ? s.error() : nullptr;
  }

  /// Calls fn(future) when the future completes or is cancelled; at once if it already
  /// has. fn runs on the completing thread; an exception from fn is reported, not lost.
  template <class Fn>
    requires std::invocable<Fn&, const Future<T>&>
  void add_done_callback(Fn&& fn) const {
    auto& s = state();
    s.add_callback(new detail::UserCallback<T, std::decay_t<Fn>>(std::forward<Fn>(fn)));
  }

  /// A future of fn's result, run when this one completes; no thread waits for it.
  /// fn takes the value (const T&, or nothing for void): an error or a cancellation skips
  /// fn and passes to the result. Or fn takes the Future<T> itself: it runs whatever
  /// the outcome. A Future returned by fn is waited for the same way (flattened). fn runs
  /// on the completing thread (at once if this future is done): keep it short, or submit
  /// from it. Cancelling the returned future does not cancel this one.
  template <class Fn>
  auto then(Fn&& fn) const -> Future<typename detail::then_result<T, std::decay_t<Fn>>::type>;

  friend bool operator==(const Future& a, const Future& b) noexcept { return a.s_.get() == b.s_.get(); }

 private:
  friend struct detail::FutureAccess;
  explicit Future(detail::StateRef<detail::State<T>> s) noexcept : s_(std::move(s)) {}
  detail::State<T>& state() const {
    if (!s_) detail::throw_no_state();
    return *s_.get();
  }
  detail::StateRef<detail::State<T>> s_;
};

namespace detail {
struct FutureAccess {
  template <class T>
  static Future<T> make(StateRef<State<T>> s) noexcept { return Future<T>(std::move(s)); }
  template <class T>
  static State<T>* state(const Future<T>& f) noexcept { return f.s_.get(); }
};

template <class T, class Fn>
void UserCallback<T, Fn>::call(StateBase& state) noexcept {
  try {
    auto f = FutureAccess::make(StateRef<State<T>>::share(static_cast<State<T>*>(&state)));
    fn(static_cast<const Future<T>&>(f));
  } catch (...) {
    report_callback_error(std::current_exception());
  }
}
}  // namespace detail

/// The producer side of a Future, for executors and adapters (move-only). A promise
/// dropped without a result completes its future with BrokenExecutor, so no one hangs.
/// @code
///   parex::Promise<int> p;
///   parex::Future<int> f = p.get_future();
///   std::thread([p = std::move(p)]() mutable { p.set_result(42); }).detach();
/// @endcode
template <class T>
class Promise {
 public:
  Promise() : s_(new detail::State<T>()) {
    s_->retain_producer();
    s_->release();  // the state starts with one handle; a promise holds the producer's reference
  }
  Promise(Promise&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Promise& operator=(Promise&& o) noexcept {
    if (this != &o) {
      abandon();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~Promise() { abandon(); }

  Future<T> get_future() const { return detail::FutureAccess::make(detail::StateRef<detail::State<T>>::share(&state())); }
  /// pending -> running; false if the future was cancelled (then do not run the call).
  bool set_running_or_notify_cancel() { return state().set_running(); }
  /// @throws InvalidStateError if the future is already done.
  template <class... A>
  void set_result(A&&... a) {
    if (!state().set_value(std::forward<A>(a)...)) throw InvalidStateError("the future is already done");
  }
  /// @throws InvalidStateError if the future is already done.
  void set_exception(std::exception_ptr e) {
    if (!state().set_exception(std::move(e))) throw InvalidStateError("the future is already done");
  }

 private:
  detail::State<T>& state() const {
    if (!s_) throw InvalidStateError("the promise was moved from");
    return *s_;
  }
  void abandon() noexcept {
    if (!s_) return;
    if (!s_->done()) s_->set_exception(std::make_exception_ptr(BrokenExecutor("the promise was dropped without a result")));
    std::exchange(s_, nullptr)->release_producer();
  }
  detail::State<T>* s_;  // holds the producer's reference
};

/// When wait() returns (Python: FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED).
enum class ReturnWhen { first_completed, first_exception, all_completed };

/// The two halves wait() returns, each in input order.
template <class T>
struct WaitResult {
  std::vector<Future<T>> done;
  std::vector<Future<T>> not_done;
};

namespace detail {

/// Watches a set of states and hands out their indices as they complete.
/// Not thread-safe itself: one consumer thread; completions arrive from any thread.
class CompletionWatch {
 public:
  explicit CompletionWatch(std::vector<StateBase*> states);
  CompletionWatch(const CompletionWatch&) = delete;
  CompletionWatch& operator=(const CompletionWatch&) = delete;
  ~CompletionWatch();
  /// Next completed index, or nullopt at the deadline (nullptr: none).
  std::optional<std::size_t> next(const Clock::time_point* deadline);

 private:
  struct Core;
  std::shared_ptr<Core> core_;
};

// Removes duplicate states (Python passes a set); keeps first occurrences in order.
template <class T, class Range>
std::vector<Future<T>> unique_futures(Range&& fs) {
  std::vector<Future<T>> out;
  if constexpr (std::ranges::sized_range<Range>) out.reserve(std::ranges::size(fs));
  std::unordered_set<const void*> seen;
  for (const Future<T>& f : fs) {
    if (!f.valid()) throw_no_state();
    if (seen.insert(FutureAccess::state(f)).second) out.push_back(f);
  }
  return out;
}

template <class T>
std::vector<StateBase*> states_of(const std::vector<Future<T>>& fs) {
  std::vector<StateBase*> s;
  s.reserve(fs.size());
  for (auto& f : fs) s.push_back(FutureAccess::state(f));
  return s;
}

template <class T>
bool finished_with_exception(const Future<T>& f) {
  return f.done() && !f.cancelled() && FutureAccess::state(f)->failed();
}
}  // namespace detail

/// Waits for futures (from any executors) until return_when holds or the timeout passes;
/// never throws TimeoutError: what is unfinished lands in not_done.
template <class Range, class T = typename std::ranges::range_value_t<Range>::value_type>
WaitResult<T> wait(Range&& fs, Timeout timeout = {}, ReturnWhen return_when = ReturnWhen::all_completed) {
  auto all = detail::unique_futures<T>(std::forward<Range>(fs));
  const auto deadline = timeout.deadline();
  auto split = [&] {
    WaitResult<T> r;
    for (auto& f : all) (f.done() ? r.done : r.not_done).push_back(f);
    return r;
  };
  auto satisfied = [&] {
    std::size_t n_done = 0;
    for (auto& f : all) {
      if (!f.done()) continue;
      ++n_done;
      if (return_when == ReturnWhen::first_completed) return true;
      if (return_when == ReturnWhen::first_exception && detail::finished_with_exception(f)) return true;
    }
    return n_done == all.size();
  };
  if (satisfied()) return split();
  if (return_when == ReturnWhen::all_completed) {
    for (auto& f : all)
      if (!detail::FutureAccess::state(f)->wait_until(detail::deadline_ptr(deadline))) break;
    return split();
  }
  detail::CompletionWatch watch(detail::states_of(all));
  while (!satisfied()) {
    if (!watch.next(detail::deadline_ptr(deadline))) break;
  }
  return split();
}

/// Futures in the order they finish (Python: as_completed). Iterating throws
/// TimeoutError("k (of n) futures unfinished") once the timeout, counted from the call,
/// passes. Single pass; the object must outlive the loop.
template <class T>
class AsCompleted {
 public:
  template <class Range>
  AsCompleted(Range&& fs, Timeout timeout)
      : futures_(detail::unique_futures<T>(std::forward<Range>(fs))),
        deadline_(timeout.deadline()),
        watch_(detail::states_of(futures_)) {}

  class iterator {
   public:
    using value_type = Future<T>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    const Future<T>& operator*() const { return owner_->futures_[index_]; }
    const Future<T>* operator->() const { return &owner_->futures_[index_]; }
    iterator& operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return it.owner_ == nullptr; }

   private:
    friend class AsCompleted;
    explicit iterator(AsCompleted* o) : owner_(o) { advance(); }
    void advance() {
      if (owner_->yielded_ == owner_->futures_.size()) {
        owner_ = nullptr;
        return;
      }
      auto i = owner_->watch_.next(detail::deadline_ptr(owner_->deadline_));
      if (!i) {
        const auto left = owner_->futures_.size() - owner_->yielded_;
        const auto n = owner_->futures_.size();
        owner_ = nullptr;
        throw TimeoutError(std::to_string(left) + " (of " + std::to_string(n) + ") futures unfinished");
      }
      index_ = *i;
      ++owner_->yielded_;
    }
    AsCompleted* owner_ = nullptr;
    std::size_t index_ = 0;
  };

  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  std::vector<Future<T>> futures_;
  detail::Clock::time_point deadline_;
  detail::CompletionWatch watch_;
  std::size_t yielded_ = 0;
};

/// Yields each future as it finishes; see AsCompleted.
template <class Range, class T = typename std::ranges::range_value_t<Range>::value_type>
AsCompleted<T> as_completed(Range&& fs, Timeout timeout = {}) {
  return AsCompleted<T>(std::forward<Range>(fs), timeout);
}

}  // namespace parex

#include <parex/detail/future/continuations.hpp>
