// parex/detail/executor/retry.hpp - a call with CallOptions::retries: every attempt is an
// ordinary submit of the kept function and arguments; the next one is submitted from the
// previous one's done callback, so no thread waits in between. The future the caller gets
// is this object's own state. interrupt() on it stops the attempt that runs and ends the
// retries. Included by executor_core.hpp after Executor.
#pragma once

#include <parex/detail/executor/call_options.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

namespace parex::detail {

template <class R, bool Local, class F, class... A>
class RetryCall final : public State<R> {
 public:
  template <class G, class... B>
  static Future<R> start(Executor& ex, const CallOptions& o, G&& fn, B&&... args) {
    auto* s = new RetryCall(ex, o, std::forward<G>(fn), std::forward<B>(args)...);
    auto future = FutureAccess::make(StateRef<State<R>>::adopt(s));
    s->set_running();  // cancel() says no from now: an attempt may run; interrupt() stops it
    s->attempt();      // the first submit's error is submit's
    return future;
  }

  bool interrupt() noexcept override {
    stopped_.store(true, std::memory_order_release);
    Future<R> f;
    {
      std::lock_guard lock(mutex_);
      f = current_;
    }
    return f.valid() && f.interrupt();
  }

 private:
  template <class G, class... B>
  RetryCall(Executor& ex, const CallOptions& o, G&& fn, B&&... args)
      : ex_(ex), life_(ex.life_), options_(o), fn_(std::forward<G>(fn)), args_(std::forward<B>(args)...) {}

  // Submits the next attempt. Retries are submitted from done callbacks, which may run on
  // a thread the executor does not wait for (a thread pool's deadline): the executor's
  // life guard keeps it from being destroyed meanwhile, as a map range's does.
  void attempt() {
    if (!life_->enter()) throw InvalidStateError("the executor was destroyed before the call's next attempt");
    Future<R> f;
    try {
      f = std::apply(
          [&](const A&... a) { return ex_.template submit_timed<Local>(deadline_of(options_.timeout), fn_, a...); },
          args_);
    } catch (...) {
      life_->leave();
      throw;
    }
    life_->leave();
    ++attempts_;
    {
      std::lock_guard lock(mutex_);
      current_ = f;
    }
    if (stopped_.load(std::memory_order_acquire)) f.interrupt();  // interrupt() came while we submitted
    this->retain_producer();  // held by the callback
    f.add_done_callback([this](const Future<R>& g) {
      on_done(g);
      this->release_producer();
    });
  }

  void on_done(const Future<R>& g) noexcept {
    std::exception_ptr e;
    try {
      e = g.exception();
    } catch (...) {  // cancelled
      e = std::current_exception();
    }
    if (!e) {  // the attempt's state is ours alone: its value moves (never copied, nothrow)
      if constexpr (std::is_void_v<R>) this->set_value();
      else this->set_value(std::move(FutureAccess::state(g)->value()));
      return;
    }
    if (attempts_ <= options_.retries && !stopped_.load(std::memory_order_acquire) &&
        should_retry(options_.retry, e)) {
      try {
        return attempt();
      } catch (...) {  // the executor was shut down meanwhile: the last error stands
      }
    }
    this->set_exception(with_attempts(e, attempts_));
  }

  Executor& ex_;
  std::shared_ptr<ExecutorLife> life_;
  const CallOptions options_;
  F fn_;
  std::tuple<A...> args_;
  std::size_t attempts_ = 0;  // one attempt at a time: no race
  std::atomic<bool> stopped_{false};
  std::mutex mutex_;  // current_, read by interrupt()
  Future<R> current_;
};

}  // namespace parex::detail
