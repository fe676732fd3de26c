// parex/mpi.hpp - MpiExecutor: the Executor and Future of the process pool, across the
// ranks of an MPI job (Boost.MPI over Open MPI). Link parex::mpi.
//
// Start the program with `mpirun -np N ./app` (or `srun`): parex::init(argc, argv), first
// in main as always, initialises MPI; every rank but 0 then runs the worker loop there and
// never returns, and rank 0 runs main (every rank must reach parex::init: it sets up
// parex's communicator collectively). An MpiExecutor on rank 0 has every other rank as
// its worker. Calls travel as the process pool's frames (a registered function's id and
// encoded arguments, batched) in MPI messages; one loop makes every MPI call of rank 0:
// its progress thread runs it, or a thread that waits for a call (result(), wait()) runs
// it for a while itself, so that a round trip is caller <-> rank. All members
// thread-safe; the destructor is shutdown(true). Several MpiExecutors may live at once:
// they share the worker ranks and the loop, where done callbacks run (on the progress
// thread or on a waiting thread; a callback that blocks, e.g. on another MpiExecutor's
// future, stalls them all).
//
// Deadlines and interrupt: a rank cannot be stopped without ending the job (no ULFM). A
// call past its deadline fails with TimeoutError and runs on, its result dropped (as on a
// thread pool); Future::interrupt cancels a call no rank has started (taking it back from
// the rank that holds it) and answers false for one that runs.
//
// Failure: with Debian 12's Open MPI 4.1 a rank that dies ends the whole job (mpirun
// kills every rank); there is no recovery without ULFM. A rank that goes silent (stopped,
// hung inside MPI, unreachable) past MpiOptions::watchdog fails the calls it held with
// WorkerCrashed and gets no more work; an exception in a call is just that call's
// exception, as on the other backends.
//
// @code
//   int square(int x) { return x * x; }
//   PAREX_REGISTER(square);
//   int main(int argc, char** argv) {
//     parex::init(argc, argv);          // ranks 1..N-1 become workers here
//     parex::MpiExecutor ex;            // the only line that differs from a process pool
//     for (int y : ex.map(square, std::vector{1, 2, 3}, {.chunksize = 256})) std::cout << y;
//   }
// @endcode
#pragma once

#include <parex/detail/remote/initializer.hpp>
#include <parex/executor.hpp>
#include <parex/init.hpp>
#include <parex/registry.hpp>

#include <chrono>
#include <cstddef>
#include <memory>

namespace parex {

struct MpiOptions {
  /// Worker ranks this executor uses (ranks 1..max_workers); 0 means every rank but 0.
  /// More than the job has is a ValueError.
  std::size_t max_workers = 0;
  /// A rank that holds calls of this executor and has sent nothing for this long (no
  /// result, no heartbeat: a working rank sends one every 250 ms) is taken as lost: its
  /// calls fail with WorkerCrashed and it gets no more work. At least 1 s.
  std::chrono::milliseconds watchdog{30'000};
  /// Runs on each worker rank before the first call of this executor there (ranks are
  /// shared: each executor's initializer runs once per rank it uses). If it throws, or its
  /// rank is lost meanwhile, the executor is broken, as a process pool is: its calls not
  /// yet sent fail with BrokenExecutor naming the rank, and submit throws it.
  Initializer initializer{};
};

namespace mpi {
/// True if this program was started by an MPI launcher (mpirun, mpiexec, srun).
bool launched() noexcept;
/// This process's rank in MPI_COMM_WORLD (0 when not launched by MPI).
int rank() noexcept;
/// The number of ranks in MPI_COMM_WORLD (1 when not launched by MPI).
int world_size() noexcept;
}  // namespace mpi

/// An Executor whose workers are the other ranks of an MPI job.
class MpiExecutor final : public Executor, public detail::MapOverloads<MpiExecutor> {
 public:
  /// Starts the progress thread on first use (the worker ranks are already waiting).
  /// @throws InvalidStateError if parex::init was not called, or the program was not
  ///         started by an MPI launcher with at least 2 ranks (the message says how);
  ///         ValueError if max_workers exceeds the worker ranks.
  explicit MpiExecutor(MpiOptions options = {});
  ~MpiExecutor() override;

  /// Executor::submit with the process pool's compile-time checks.
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
  using detail::MapOverloads<MpiExecutor>::map;

  std::size_t max_workers() const noexcept override;
  /// Executor::stats: per worker rank its rank number (pid 0), calls, failures, busy time;
  /// restarts is always 0 (a rank is never replaced).
  ExecutorStats stats() override;

  struct Impl;

 private:
  friend class detail::MapOverloads<MpiExecutor>;
  template <class F, class... Ranges>
  auto map_ranges(F&& fn, MapOptions options, Ranges&&... ranges) {
    check<F, std::ranges::range_value_t<Ranges>&&...>();
    return make_map<false>(std::forward<F>(fn), options, std::forward<Ranges>(ranges)...);
  }
  template <class F, class... A>
  static constexpr void check() {
    PAREX_DETAIL_CHECK_REMOTE("MpiExecutor", F, A...);
  }

  void dispatch(detail::LocalTask* task) override;
  void dispatch_remote(detail::RemoteCall* call) override;
  void do_shutdown(bool wait, bool cancel_futures) override;
  std::size_t adaptive_chunk(const detail::FunctionEntry& fn) const noexcept override;
  std::shared_ptr<Impl> impl_;
};

}  // namespace parex
