// parex/process_pool.hpp - ProcessPoolExecutor: Python's ProcessPoolExecutor for C++.
//
// Workers are this program re-executed (call parex::init(argc, argv) first in main);
// calls travel as a registered function's name-id plus encoded arguments over one pipe
// pair per worker, in batches both ways. A worker that dies fails only the call it was
// running (WorkerCrashed); the calls it held but had not started run elsewhere, results it
// had computed are still delivered, and a replacement starts. The pool's loop runs on its
// reactor thread, or for a while on a thread that waits for its only call in flight
// (result(), wait()), so that a round trip is caller <-> worker; done callbacks run where
// the loop runs. All members thread-safe; the destructor is shutdown(true).
//
// @code
//   int square(int x) { return x * x; }
//   PAREX_REGISTER(square);
//   int main(int argc, char** argv) {
//     parex::init(argc, argv);
//     parex::ProcessPoolExecutor pool{{.max_workers = 4}};
//     for (int y : pool.map(square, std::vector{1, 2, 3}, {.chunksize = 256})) std::cout << y;
//   }
// @endcode
#pragma once

#include <parex/executor.hpp>
#include <parex/init.hpp>
#include <parex/registry.hpp>
#include <parex/cpu.hpp>
#include <parex/detail/remote/initializer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace parex {

struct ProcessPoolOptions {
  /// Number of worker processes; 0 means process_cpu_count().
  std::size_t max_workers = 0;
  /// Runs once in each worker before its first call; if it throws, or the worker crashes
  /// or exits during it, the pool is broken (BrokenProcessPool), as in Python. A worker
  /// killed from outside (SIGKILL, SIGTERM) during it is replaced instead.
  Initializer initializer{};
  /// A worker exits after this many calls (a map chunk counts as one) and is replaced;
  /// 0 means never.
  std::size_t max_tasks_per_child = 0;
  /// A started worker must answer within this time (it shows that main() called
  /// parex::init first); else the pool is broken with an error that says so.
  std::chrono::milliseconds handshake_timeout{10'000};
  /// The largest frame accepted from a worker (a corrupt length beyond it is a ProtocolError).
  std::uint64_t max_frame_bytes = std::uint64_t{64} << 30;
  /// A worker stopped for a call's deadline or an interrupt gets SIGTERM, then SIGKILL
  /// after this long if it has not exited.
  std::chrono::milliseconds stop_grace{250};
  /// A worker idle this long ends; workers come back when calls do (up to max_workers).
  /// 0 means never.
  std::chrono::milliseconds idle_timeout{0};
  /// A worker whose resident memory has passed this many bytes (checked before each call
  /// but its first) sends its results and ends;
  /// the calls it held but had not started run elsewhere and a fresh worker takes its
  /// place. 0 means no limit.
  std::size_t max_rss_per_child = 0;
  /// Results a worker sends at once (one result, or a batch) of at least this many bytes
  /// are not copied through its pipe: the pool reads them from the worker's shared
  /// memory, and the worker writes over them only once the pool has read them.
  /// 1: every batch that way; SIZE_MAX: every result through the pipe.
  std::size_t shared_results_bytes = std::size_t{1} << 20;
};

/// An Executor that runs registered functions in worker processes.
class ProcessPoolExecutor final : public Executor, public detail::MapOverloads<ProcessPoolExecutor> {
 public:
  /// Starts the workers (asynchronously: the first results wait for them, not this call).
  /// @throws InvalidStateError if parex::init was not called in main;
  ///         UnregisteredFunction if the initializer is not registered.
  explicit ProcessPoolExecutor(ProcessPoolOptions options = {});
  ~ProcessPoolExecutor() override;

  /// Executor::submit, with the process backend's rules checked at compile time:
  /// fn is a function or a stateless registered function object, and every argument
  /// and the result are Serializable. An unregistered plain function is known only at
  /// run time: submit throws UnregisteredFunction.
  template <class F, class... A>
    requires(!std::is_same_v<std::remove_cvref_t<F>, CallOptions>)
  auto submit(F&& fn, A&&... args) {
    check<F, A...>();
    return Executor::submit(std::forward<F>(fn), std::forward<A>(args)...);
  }
  /// submit with CallOptions (a deadline, retries), with the same checks.
  template <class F, class... A>
  auto submit(const CallOptions& options, F&& fn, A&&... args) {
    check<F, A...>();
    return Executor::submit(options, std::forward<F>(fn), std::forward<A>(args)...);
  }
  /// Executor::map (one range, or several in lock-step) with the same compile-time
  /// checks. Without a chunksize, chunks adapt to the function's measured cost (one frame
  /// record and one future per chunk of tiny items, one item per call for slow ones).
  using detail::MapOverloads<ProcessPoolExecutor>::map;

  /// Ends the pool now (Python 3.14): shutdown(wait=false, cancel_futures=true), then
  /// SIGTERM to every worker. Calls not started are cancelled; running calls fail with
  /// WorkerCrashed (a BrokenProcessPool); submit then throws InvalidStateError. Returns
  /// at once; the destructor (or shutdown(true)) waits for the workers to be reaped.
  void terminate_workers();
  /// The same with SIGKILL, for workers that ignore or handle SIGTERM.
  void kill_workers();

  std::size_t max_workers() const noexcept override;
  /// Executor::stats, read on the pool's reactor thread (a round trip to it, or at once
  /// from a done callback; the last figures once the pool has shut down).
  ExecutorStats stats() override;

  struct Impl;

 private:
  friend class detail::MapOverloads<ProcessPoolExecutor>;
  template <class F, class... Ranges>
  auto map_ranges(F&& fn, MapOptions options, Ranges&&... ranges) {
    check<F, std::ranges::range_value_t<Ranges>&&...>();
    return make_map<false>(std::forward<F>(fn), options, std::forward<Ranges>(ranges)...);
  }

  template <class F, class... A>
  static constexpr void check() {
    PAREX_DETAIL_CHECK_REMOTE("ProcessPoolExecutor", F, A...);
  }

  void dispatch(detail::LocalTask* task) override;
  void dispatch_remote(detail::RemoteCall* call) override;
  detail::BlockAllocator* block_allocator() noexcept override;
  std::size_t adaptive_chunk(const detail::FunctionEntry& fn) const noexcept override;
  void do_shutdown(bool wait, bool cancel_futures) override;
  std::unique_ptr<Impl> impl_;
};

}  // namespace parex
