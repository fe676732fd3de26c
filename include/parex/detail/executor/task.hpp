// parex/detail/executor/task.hpp - work items for executors that run calls in this process.
//
// A LocalTask is the future's own state with the callable and its arguments stored in
// place: one allocation per submit. The queue holding a task owns one reference; run()
// (or discard()) gives it up, and the arguments are destroyed right after the call so
// that a finished task pins no memory. Not thread-safe by itself: each task is run or
// discarded by exactly one thread.
#pragma once

#include <parex/detail/executor/callable.hpp>
#include <parex/detail/executor/deadline.hpp>
#include <parex/detail/future/state.hpp>
#include <parex/errors.hpp>

#include <exception>
#include <functional>
#include <optional>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

namespace parex::detail {

/// What LocalTask::run did (for the pool's statistics).
enum class RunOutcome { skipped, ok, failed };

/// An intrusive queue node that an executor can run.
struct LocalTask {
  LocalTask* next = nullptr;
  /// The call's deadline, counted from its start (0: none): see deadline.hpp.
  std::chrono::nanoseconds timeout{0};
  /// Runs the call unless it was cancelled, completes the future, drops the queue's
  /// reference. Says whether it ran, and failed (a chunk: one of its items).
  virtual RunOutcome run() noexcept = 0;
  /// Never runs it: fails a pending future with e (or leaves a cancelled one), drops the reference.
  virtual void discard(std::exception_ptr e) noexcept = 0;
  /// Cancels a pending future and drops the reference (shutdown with cancel_futures).
  virtual void cancel_and_release() noexcept = 0;

 protected:
  ~LocalTask() = default;
};

/// One item of a map over several ranges: the arguments of one call, spread when called.
template <class... T>
struct ArgPack {
  std::tuple<T...> args;
};

/// Calls f with a map item: a plain item is the one argument; an ArgPack is spread.
template <class F, class Item>
decltype(auto) invoke_map_item(F& f, Item&& item) {
  return std::invoke(f, std::forward<Item>(item));
}
template <class F, class... T>
decltype(auto) invoke_map_item(F& f, ArgPack<T...>&& item) {
  return std::apply([&f](T&&... a) -> decltype(auto) { return std::invoke(f, std::move(a)...); }, std::move(item.args));
}
/// What calling F with a map item returns (as stored in a future).
template <class F, class Item>
using map_result_t = std::remove_cvref_t<decltype(invoke_map_item(std::declval<F&>(), std::declval<Item&&>()))>;

/// The result of one map item: its value, or the exception it raised.
template <class R>
using Outcome = std::variant<R, std::exception_ptr>;
/// The results of one map chunk, in item order.
template <class R>
using ChunkResult = std::vector<Outcome<R>>;

template <class R>
class TaskState : public State<R>, public LocalTask {
 public:
  void discard(std::exception_ptr e) noexcept final {
    if (this->try_claim()) this->finish_with_error(std::move(e));
    drop_payload();
    this->release_producer();
  }
  void cancel_and_release() noexcept final {
    this->cancel();
    drop_payload();
    this->release_producer();
  }

 protected:
  virtual void drop_payload() noexcept = 0;
  // pending -> running + claimed in one step; false if cancelled. A timed call claims
  // only once computed (run_timed): its deadline may claim first.
  bool start() noexcept { return this->set_running() && this->try_claim(); }
  // A timed call: compute() runs under a deadline; its value (or exception) is kept only
  // if the deadline has not failed the future meanwhile.
  using Value = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
  // After run: skipped if it never started (cancelled), else ok or failed.
  RunOutcome outcome(bool failed) const noexcept {
    if (this->status() == StateBase::cancelled) return RunOutcome::skipped;
    return failed ? RunOutcome::failed : RunOutcome::ok;
  }
  template <class Compute>
  void run_timed(Compute&& compute) noexcept {
    if (!this->set_running()) return;
    try {
      std::optional<Value> value;
      {
        DeadlineGuard guard(*this, this->timeout);
        value.emplace(compute());
      }
      if (!this->try_claim()) return;
      if constexpr (std::is_void_v<R>) this->emplace_claimed();
      else this->emplace_claimed(std::move(*value));
    } catch (...) {
      if (this->try_claim()) this->finish_with_error(std::current_exception());
    }
  }
};

/// submit(fn, args...) run locally.
template <class R, class F, class... A>
class Call final : public TaskState<R> {
  using Value = typename TaskState<R>::Value;

 public:
  template <class G, class... B>
  explicit Call(G&& g, B&&... b) : payload_(std::in_place, std::forward<G>(g), std::forward<B>(b)...) {
    this->retain_producer();  // the future adopts the first reference; the queue holds this one
  }
  RunOutcome run() noexcept override {
    if (this->timeout.count()) {
      this->run_timed([this] { return invoke(); });
    } else if (this->start()) {
      try {
        if constexpr (std::is_void_v<R>) {
          invoke();
          this->emplace_claimed();
        } else {
          this->emplace_claimed(invoke());
        }
      } catch (...) {
        this->finish_with_error(std::current_exception());
      }
    }
    payload_.reset();
    const RunOutcome out = this->outcome(this->failed());
    this->release_producer();
    return out;
  }

 private:
  Value invoke() {
    if constexpr (std::is_void_v<R>) {
      std::apply([](auto&&... x) { std::invoke(std::move(x)...); }, std::move(*payload_));
      return {};
    } else {
      return std::apply([](auto&&... x) -> R { return std::invoke(std::move(x)...); }, std::move(*payload_));
    }
  }
  void drop_payload() noexcept override { payload_.reset(); }
  std::optional<std::tuple<F, A...>> payload_;
};

/// One map chunk run locally: fn over each item; every item gets its own outcome.
template <class R, class F, class Item>
class LocalChunk final : public TaskState<ChunkResult<R>> {
 public:
  LocalChunk(F fn, std::vector<Item> items) : fn_(std::in_place, std::move(fn)), items_(std::move(items)) {
    this->retain_producer();
  }
  RunOutcome run() noexcept override {
    if (this->timeout.count()) {
      this->run_timed([this] { return compute(); });
    } else if (this->start()) {
      try {
        this->emplace_claimed(compute());
      } catch (...) {  // bad_alloc while building the chunk
        this->finish_with_error(std::current_exception());
      }
    }
    drop_payload();
    const RunOutcome out = this->outcome(this->failed() || item_failed_);
    this->release_producer();
    return out;
  }

 private:
  ChunkResult<R> compute() {
    ChunkResult<R> out;
    out.reserve(items_.size());
    for (auto& item : items_) {
      try {
        out.emplace_back(std::in_place_index<0>, invoke_map_item(*fn_, std::move(item)));
      } catch (...) {
        item_failed_ = true;
        out.emplace_back(std::in_place_index<1>, std::current_exception());
      }
    }
    return out;
  }
  bool item_failed_ = false;
  void drop_payload() noexcept override {
    fn_.reset();
    std::vector<Item>().swap(items_);
  }
  std::optional<F> fn_;
  std::vector<Item> items_;
};

}  // namespace parex::detail
