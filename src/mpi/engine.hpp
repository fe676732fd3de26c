// mpi/engine.hpp - rank 0's side of an MPI job: one loop that makes every MPI call and
// serves every MpiExecutor of the process (they share the worker ranks). Its progress
// thread runs it, or a thread waiting for one of its calls does for a while (loop.cpp).
//
//  submit (any thread)                 the loop (progress thread "parex-mpi", or a waiter)
//  ───────────────────                 ────────────────────────────────────────────────────
//  RemoteCall ──▶ the executor's  ──▶  pending (per executor) ──▶ pump(): for each ready rank
//  lock-free inbox (a wake-up only     with room, one calls frame (the process pool's records;
//  when the engine sleeps)             big arguments spliced, not copied) ── MPI_Isend ──▶ rank
//                                                                                        │
//  future ◀── complete ◀── results frame from the rank: outcomes in send order ◀─ MPI_Isend
//
// Invariants:
//  - Only the thread that holds loop_ touches ranks, pending lists and RemoteCalls that
//    left an inbox, and makes MPI calls (between MPI_Init and MPI_Finalize, which the main
//    thread makes: MPI_THREAD_SERIALIZED is enough). "Progress thread only" below means
//    that thread.
//  - A rank runs its calls in order: outcome k of a rank belongs to the k-th item sent to it.
//  - A rank gets work as remote/batching.hpp says, from estimates per function: tiny calls
//    go in big frames, slow ones one at a time, and the rest stay cancellable here. With
//    nothing pending and a rank idle, calls held behind a stalled rank's running call are
//    taken back (rebalance.cpp, remote/take_back.hpp).
//  - Idle (nothing pending, nothing at any rank), the progress thread sleeps on a futex,
//    as it does while a waiter drives; otherwise it polls MPI with a back-off
//    (transport.hpp: MPI cannot wait on two things at once).
//  - A rank runs an executor's calls only after that executor's initializer has run there
//    (initializer.cpp). Deadlines (deadlines.cpp) and Future::interrupt (interrupts.cpp)
//    are decided here; stats (stats.cpp) are read here, on the thread, by a posted task.
#pragma once

#include <parex/detail/executor/executor_core.hpp>
#include <parex/detail/remote/remote_call.hpp>
#include <parex/detail/wire/buffer.hpp>

#include "mpi/transport.hpp"
#include "remote/batching.hpp"
#include "sync/inbox.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <utility>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace parex::detail::mpi {

/// An exception as an exception_ptr, its temporary gone before the pointer is handed over.
/// `fail_rest(std::make_exception_ptr(E(...)))` keeps the temporary E until the full
/// expression ends, after the caller the future woke may have read and dropped its copy;
/// the copies share one reference-counted message, and the temporary's release on this
/// thread then frees it, ordered by libstdc++'s uninstrumented count: a race to TSan.
template <class E, class... A>
std::exception_ptr error_ptr(A&&... args) {
  return std::make_exception_ptr(E(std::forward<A>(args)...));
}

using Clock = std::chrono::steady_clock;

/// One MpiExecutor's share of the engine.
struct Client {
  Client(std::size_t ranks, std::chrono::milliseconds watchdog, const FunctionEntry* init_fn = nullptr,
         std::vector<std::byte> init_args = {})
      : ranks(ranks), watchdog(watchdog), init_fn(init_fn), init_args(std::move(init_args)), init_state(ranks + 1),
        tally(ranks + 1) {}
  Inbox<RemoteCall> inbox;  // submitters push, the engine takes
  std::atomic<std::size_t> in_inbox{0};  // calls pushed, not yet taken (stats: queued)
  const std::size_t ranks;  // runs on ranks 1..ranks
  const std::chrono::milliseconds watchdog;
  // MpiOptions::initializer (init_fn null: none), run on each rank before the first call
  // of this executor there (initializer.cpp).
  const FunctionEntry* const init_fn;
  const std::vector<std::byte> init_args;
  // Set once (progress thread) if it failed on a rank: every call fails, submit throws.
  std::atomic<bool> broken{false};
  std::string broken_why;  // written before broken is set

  // Progress thread only.
  enum class Init : std::uint8_t { not_sent, running, done };
  std::vector<Init> init_state;  // per rank
  struct Tally {  // per rank: what its calls of this executor came to (stats.cpp)
    std::size_t calls = 0, failed = 0;
    double busy_ns = 0;
    std::uint32_t frame_items = 0;  // in the results frame being delivered
  };
  std::vector<Tally> tally;
  std::size_t other_done = 0, other_failed = 0;  // ended without a rank's outcome (interrupted, stranded)
  /// Counts a finished call (a rank's, or none: rank 0).
  void count(int rank, bool failed) noexcept {
    auto& t = rank > 0 ? tally[static_cast<std::size_t>(rank)].calls : other_done;
    ++t;
    if (failed) ++(rank > 0 ? tally[static_cast<std::size_t>(rank)].failed : other_failed);
  }

  // Progress thread only.
  std::deque<RemoteCall*> pending;
  std::size_t held = 0;  // calls pending here or outstanding at a rank
  bool closed = false;
  /// Appends a chain from the inbox (oldest first) to pending; false if it was empty.
  bool take(RemoteCall* chain) noexcept {
    const bool any = chain != nullptr;
    std::size_t n = 0;
    for (RemoteCall* x = chain; x; ++n) {
      RemoteCall* next = x->next;
      pending.push_back(x);
      ++held;
      x = next;
    }
    if (n) in_inbox.fetch_sub(n, std::memory_order_relaxed);
    return any;
  }
  /// A call of this executor left the engine (finished, dropped or failed).
  void release() noexcept { --held; }

  // Set by the progress thread once closed and nothing is held; shutdown(wait) waits.
  std::mutex mutex;
  std::condition_variable cv;
  bool finished = false;
};

class Engine final : public CallDriver {
 public:
  /// The engine, started on first use (rank 0 only, after MPI_Init).
  static Engine& get();
  /// At exit, before MPI_Finalize: finishes what is held, then stops the thread; get()
  /// throws from then on. Returns false if a rank was lost (it may never finalize) or the
  /// thread could not be stopped.
  static bool stop_if_started();

  int world_size() const noexcept { return static_cast<int>(ranks_.size()); }
  void attach(const std::shared_ptr<Client>& c);
  /// Hands a call to the engine. @throws InvalidStateError once c is closed.
  void submit(Client& c, RemoteCall* call);
  /// Closes c: no more calls; cancel_futures cancels those not sent. The engine sets
  /// c.finished once the rest have completed.
  void close(const std::shared_ptr<Client>& c, bool cancel_futures);
  /// True in the progress thread, and in a thread that drives the loop (drive): where
  /// done callbacks run.
  bool on_progress_thread() const noexcept;
  /// StateBase::drive of this engine's calls: a thread waiting for a call runs the loop
  /// itself, if the progress thread is not running it now, until the call completes or
  /// for at most max_drive. A round trip then hands the call over twice (this thread,
  /// the rank), not four times (this thread, the progress thread, the rank, the progress
  /// thread): bench_mpi on the 2-vCPU AMD VM, see drive() in loop.cpp.
  bool drive(const StateBase& waited, const Clock::time_point* deadline) noexcept override;
  /// Items per chunk of a map of `fn` without a chunksize (any thread).
  std::size_t chunk_for(const FunctionEntry& fn) const noexcept { return costs_.chunk_for(fn.id); }
  /// Runs fn on the progress thread, soon; false once the thread has ended.
  bool post(std::function<void()> fn);
  /// Executor::stats of c (any thread; stats.cpp).
  ExecutorStats stats(const std::shared_ptr<Client>& c);
  /// Future::interrupt of a call an MpiExecutor holds (any thread; interrupts.cpp).
  static bool interrupt(RemoteCall& call) noexcept;

 private:
  struct Sent {
    OutgoingFrame frame;
    std::uint64_t first_item = 0;  // the rank's item count before this frame
  };
  struct Rank {
    int id = 0;
    bool ready = false;  // its hello arrived and matched
    bool lost = false;   // gets no more work (watchdog, a bad frame, a different program)
    std::deque<std::pair<RemoteCall*, Client*>> outstanding;
    std::uint64_t sent = 0, received = 0;  // items
    Load load;  // what it holds, in estimated work (remote/batching.hpp)
    // Taking back what it holds unclaimed (rebalance.cpp): when it last answered (or got
    // work while holding none); a request in flight; stalled once work was taken back
    // from it, until it answers again.
    Clock::time_point progress_at{};
    bool revoking = false;
    bool stalled = false;
    std::uint64_t revoke_to = 0;  // the request's bytes, alive until it is sent
    bmpi::request revoke_request;
    std::deque<Sent> sending;  // frames whose sends may not have completed
    Clock::time_point heard{};  // last message, or when it last got work while holding none
    // Future::interrupt of calls it holds (interrupts.cpp): answered once a take-back says
    // whether each had started; the request in flight was asked for them.
    std::vector<std::pair<RemoteCall*, std::shared_ptr<std::promise<bool>>>> interrupts;
    bool revoke_for_interrupt = false;
  };
  struct Command {
    std::shared_ptr<Client> client;
    bool attach = false;
    bool cancel_futures = false;
    RemoteCall* rest = nullptr;  // close: what was left in the inbox
  };

  explicit Engine(const bmpi::communicator& world);
  void run();
  bool step();  // one round of the loop, under loop_; true if it made progress
  bool take_commands();
  bool drain_inboxes();
  bool receive(bool& drained);
  void on_frame(Rank& r, const Frame& f);
  void deliver(Rank& r, Reader& in, std::uint32_t n, FrameMix* mix = nullptr);
  bool pump();
  bool rebalance(Clock::time_point now);
  void ask_revoke(Rank& r);
  void on_revoked(Rank& r);
  // deadlines.cpp, interrupts.cpp, initializer.cpp, stats.cpp
  bool check_deadlines(Clock::time_point now);
  void on_interrupt(RemoteCall* c, const std::shared_ptr<std::promise<bool>>& answer);
  bool revoke_for_interrupts();
  void answer_interrupts(Rank& r, const std::vector<std::pair<RemoteCall*, Client*>>* taken_back);
  bool send_initializers();
  void send_initializer(Rank& r, Client& c);
  void fail_broken();
  void fail_pending(Client& c, const std::exception_ptr& e);
  void count_frame_busy(Rank& r, std::uint64_t busy_us);
  ExecutorStats snapshot(const Client& c) const;
  bool run_posted();
  bool send_calls(Rank& r);
  RemoteCall* next_call(Rank& r, Client*& owner, bool take = true);
  bool has_room(Rank& r);
  void reap_sends(Rank& r, std::uint64_t through);
  void check_watchdogs(Clock::time_point now);
  void lose(Rank& r, const std::string& why);
  void fail_stranded();
  void finish_clients();
  bool idle() const noexcept;
  void sleep(std::unique_lock<std::mutex>& loop);
  void nap(std::uint32_t seen) noexcept;
  bool will_drive(Clock::time_point now) const noexcept;
  void note_drive_end(Clock::time_point t) noexcept;
  void wake() noexcept;

  const bmpi::communicator& world_;
  CostTable costs_;  // per function: what its calls take (read by any thread: chunk_for)
  std::vector<Rank> ranks_;  // index = MPI rank; [0] unused
  std::vector<std::shared_ptr<Client>> clients_;  // progress thread only
  std::size_t next_client_ = 0;
  Buffer in_;  // the last frame received
  std::vector<Buffer> graveyard_;  // arguments a lost rank's unfinished sends may still read
  Clock::time_point next_watchdog_check_{};
  Clock::time_point next_deadline_check_{};
  std::size_t interrupts_waiting_ = 0;  // in the ranks' interrupts lists
  bool lost_any_ = false;
  bool stop_seen_ = false;  // stopping_, as the progress thread last read it
  Clock::time_point last_loop_{};      // the previous loop's clock
  Clock::time_point polling_since_{};  // since when it polls without a gap (handshake timing)
  bool slept_ = false;                 // the progress thread slept: the next step restarts the clocks

  // Held by the thread that runs the loop: the progress thread, or a thread that waits
  // for a call and drives (drive). Everything "progress thread only" is under it.
  std::mutex loop_;
  std::atomic<bool> driven_{false};  // a waiting thread holds loop_
  std::atomic<bool> wanted_{false};  // a waiting thread found loop_ held
  // Submits without a wake-up (will_drive): one may wait in an inbox; when the last drive
  // ended; how many times a deferred call was found by the progress thread's timer.
  std::atomic<bool> deferred_{false};
  std::atomic<Clock::rep> last_drive_end_{0};  // steady clock ticks (note_drive_end)
  std::atomic<bool> untimed_nap_{false};          // the progress thread naps without a timer
  std::atomic<std::uint64_t> drains_{0};          // times deferred_ was cleared by a step
  std::atomic<std::size_t> held_calls_{0};        // calls held (not in inboxes), after the last step
  std::atomic<std::uint32_t> missed_{0};
  std::mutex mutex_;  // guards commands_, stopping_
  std::vector<Command> commands_;
  std::vector<std::function<void()>> posted_;
  bool stopping_ = false;
  bool thread_done_ = false;  // run() has returned: post() says no
  std::atomic<bool> has_commands_{false};
  std::atomic<std::uint32_t> wake_seq_{0};
  std::atomic<bool> sleeping_{false};
  std::thread thread_;
};

}  // namespace parex::detail::mpi
