// parex/thread_pool.hpp - ThreadPoolExecutor: Python's ThreadPoolExecutor for C++.
//
// Runs any callable (lambdas with captures included) on a fixed set of threads started
// by the constructor. All members are thread-safe. The destructor is shutdown(true).
//
// @code
//   parex::ThreadPoolExecutor pool{{.max_workers = 4, .thread_name_prefix = "io"}};
//   auto f = pool.submit([&](int x) { return x + offset; }, 1);
// @endcode
#pragma once

#include <parex/cpu.hpp>
#include <parex/detail/executor/executor_core.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace parex {

struct ThreadPoolOptions {
  /// Number of threads; 0 means process_cpu_count().
  std::size_t max_workers = 0;
  /// Threads are named "<prefix>_<i>" (truncated to Linux's 15 characters); empty means
  /// "parex-<n>" with n counting the pools of this process, as Python numbers its pools.
  std::string thread_name_prefix;
  /// Runs first on every worker thread; if it throws, the pool is broken:
  /// queued calls and later submits fail with BrokenThreadPool.
  std::function<void()> initializer;
};

/// An Executor that runs calls on threads of this process. Its own submit and map run
/// calls here directly: they need no serialization (and this header pulls none in).
class ThreadPoolExecutor final : public Executor, public detail::MapOverloads<ThreadPoolExecutor> {
 public:
  explicit ThreadPoolExecutor(ThreadPoolOptions options = {});
  ~ThreadPoolExecutor() override;
  std::size_t max_workers() const noexcept override;
  /// Executor::stats (a call past its deadline counts when its thread is done with it).
  ExecutorStats stats() override;

  /// Executor::submit: any callable, any arguments (copied or moved now).
  template <class F, class... A>
    requires(!std::is_same_v<std::remove_cvref_t<F>, CallOptions>)
  Future<detail::call_result_t<F, A...>> submit(F&& fn, A&&... args) {
    return submit_local(std::forward<F>(fn), std::forward<A>(args)...);
  }
  /// submit with a deadline and retries (CallOptions). A thread cannot be stopped: past
  /// its deadline the future fails with TimeoutError and the call runs on, holding its
  /// thread; its result is dropped.
  template <class F, class... A>
  Future<detail::call_result_t<F, A...>> submit(const CallOptions& options, F&& fn, A&&... args) {
    return submit_with<true>(options, std::forward<F>(fn), std::forward<A>(args)...);
  }
  using detail::MapOverloads<ThreadPoolExecutor>::map;

  struct Impl;

 private:
  friend class detail::MapOverloads<ThreadPoolExecutor>;
  template <class F, class... Ranges>
  auto map_ranges(F&& fn, MapOptions options, Ranges&&... ranges) {
    return make_map<true>(std::forward<F>(fn), options, std::forward<Ranges>(ranges)...);
  }

  void dispatch(detail::LocalTask* task) override;
  void do_shutdown(bool wait, bool cancel_futures) override;
  std::unique_ptr<Impl> impl_;
};

}  // namespace parex
