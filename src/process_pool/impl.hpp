// process_pool/impl.hpp - ProcessPoolExecutor::Impl: the parent side of the batched
// channel, one object whose parts live in one file each (see process_pool.cpp for the
// diagram and the invariants):
//   process_pool.cpp  the facade, submit/shutdown from any thread, the reactor's loop
//   dispatcher.cpp    which worker gets which calls, framing them, writing (channel/)
//   results.cpp       reading frames from workers, delivering outcomes to futures
//   lifecycle.cpp     starting, replacing and stopping workers; shutdown; breaking
//   crash_policy.cpp  what a worker's death means: salvage, requeue, fail, or break
//   interrupts.cpp    stopping a running call: deadlines, Future::interrupt
//   rebalance.cpp     taking back calls a stalled worker holds unstarted, for idle ones
//   loop.cpp          who runs the loop: the reactor thread, or a thread waiting for a call
// Thread-safety: the thread that runs the loop (loop_mutex: the reactor, or a waiter
// driving it) owns everything but `inbox`, `broken`/`broken_reason` and the join; see the
// fields. Internal: included by those files only.
#pragma once

#include <parex/process_pool.hpp>
#include "channel/frame_writer.hpp"
#include "process/arena.hpp"
#include "process/shared_page.hpp"
#include "process/spawn.hpp"
#include "remote/batching.hpp"
#include "sync/inbox.hpp"
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/process/child.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <pthread.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace parex {

namespace asio = boost::asio;
using detail::Buffer;
using detail::Frame;
using detail::FrameKind;
using detail::Reader;
using detail::RemoteCall;
using Clock = std::chrono::steady_clock;

namespace pool_tuning {

// Arguments this big go into the pipe from the call's own buffer (vmsplice), not copied.
inline constexpr std::size_t splice_threshold = std::size_t{64} << 10;
// Start-up failures (a worker that dies before its handshake). A worker that exits on its
// own without reaching parex::init shows that the program cannot start workers: the pool
// breaks at once. One killed by a signal may have been killed from outside (the OOM
// killer, a user): the pool starts another after a back-off that doubles from
// respawn_backoff_first up to respawn_backoff_max, so that it neither spins nor stalls
// for long once the kills stop. A run of max_startup_crashes crashes in a row (signals it
// raised itself, exits after parex::init) is taken as a program that cannot start workers.
inline constexpr auto respawn_backoff_first = std::chrono::milliseconds(10);
inline constexpr auto respawn_backoff_max = std::chrono::milliseconds(1000);
inline constexpr int max_startup_crashes = 5;
// How long a worker whose channel ended (EOF, EPIPE) may take to exit before the pool
// kills it: an exiting process takes microseconds; one that closed its fds and lives on
// must not hold a call (or a start-up) for long.
inline constexpr auto exit_grace = std::chrono::milliseconds(1000);
// Workers in a row that die holding calls none of which had started (nothing of the
// user's ran, yet they died): then the first of those calls fails instead of being sent
// again, so that a call that kills whoever receives it cannot loop for ever.
inline constexpr int max_idle_deaths = 3;
// Yields before the reactor blocks in epoll: a result usually follows a call within
// microseconds, and a reactor still awake saves a slow wake-up of an idle CPU (measured
// round trip 95-115 us without, 7-12 us with; see also worker/worker.cpp's idle_yields).
inline constexpr int reactor_idle_yields = 16;
// Address space reserved for the shared argument arena (sparse: memory is used only by
// the arguments in it).
inline constexpr std::size_t arena_reserve = std::size_t{64} << 30;

}  // namespace pool_tuning
using namespace pool_tuning;
using detail::max_frame_bytes_out;
using detail::max_frame_items;

/// "was killed by signal 9 (Killed)", "exited with code 3": a wait status in words.
namespace detail {
std::string describe_status(int status);
}

struct ProcessPoolExecutor::Impl {
  struct WorkerProcess {
    enum class Phase { starting, initializing, ready, retiring, dead };

    WorkerProcess(asio::io_context& io, std::uint64_t max_frame)
        : to(io), from(io), exit_watch(io), timer(io), grace(io), watch(io), idle(io), reader(max_frame) {}

    // Counts towards max_workers: not retiring, not told to stop.
    bool active() const noexcept { return phase <= Phase::ready && !input_closed; }

    pid_t pid = -1;
    boost::process::child child;
    asio::posix::stream_descriptor to;    // calls to the worker (non-blocking)
    asio::posix::stream_descriptor from;  // results from the worker
    asio::posix::stream_descriptor exit_watch;  // its pidfd: readable once it has exited
    int shm_fd = -1;
    asio::steady_timer timer;             // the handshake deadline
    asio::steady_timer grace;             // after EOF or EPIPE: time left to exit on its own
    asio::steady_timer watch;             // the next deadline of a timed call it holds
    Clock::time_point watch_at = Clock::time_point::max();
    asio::steady_timer idle;              // idle_timeout: ends it once idle that long
    Clock::time_point idle_since{};
    bool idle_armed = false;
    detail::WorkerShared* page = nullptr;  // its shared page (deadlines, acks of shared results)
    detail::FrameReader reader;
    Phase phase = Phase::starting;
    std::deque<RemoteCall*> outstanding;     // sent, not finished, in send order
    std::uint64_t sent = 0, received = 0; // items
    std::size_t calls_sent = 0;
    std::size_t calls_done = 0, calls_failed = 0;  // stats
    std::uint64_t busy_us = 0;                     // stats: as its results frames report
    detail::Load load;          // what it holds, in estimated work (remote/batching.hpp)
    // Taking back what it holds unstarted (rebalance.cpp): its claim word as last seen and
    // since when; stalled once work was taken back from it, until it answers again.
    std::uint64_t claim_seen = UINT64_MAX;
    Clock::time_point claim_seen_at{};
    bool stalled = false;
    bool writing = false;
    bool input_closed = false;  // we sent EOF: it finishes what it holds and exits
    bool reaped = false;
    bool exited = false;        // its pidfd said so; its pipe may still hold results
    bool eof = false;           // its output pipe ended before it exited
    bool channel_ended = false;   // EOF or EPIPE: it gets no more calls, and is expected to exit
    bool killed_by_pool = false;  // killed for not exiting after its channel ended (or sending
                                  // junk): its status is ours, not its own
    int status = 0;             // once reaped
    std::string stopped_by_pool;  // why we killed it, if we did
    bool stopped_for_call = false;  // stopped for a deadline or an interrupt (stop_worker)
    std::uint64_t deadline_item = UINT64_MAX;  // the item (worker's count) past its deadline
    detail::FrameWriter writer;  // the frame being sent to it
  };
  using WorkerPtr = std::shared_ptr<WorkerProcess>;

  explicit Impl(ProcessPoolOptions o) : options(std::move(o)), guard(asio::make_work_guard(io)) {
    n_workers = options.max_workers ? options.max_workers : process_cpu_count();
    enroll();
  }
  ~Impl() { withdraw(); }

  // process_pool.cpp: from any thread, and the reactor loop
  void shutdown(bool wait, bool cancel_futures);
  void end_workers(int sig);
  void drain_inbox();
  void take_rest(RemoteCall* chain);

  // loop.cpp: who runs the loop - the reactor thread, or a thread waiting for a call;
  // submitting, waking and napping around that
  void submit(RemoteCall* c);
  bool will_drive(Clock::time_point now) const noexcept;
  void wake_reactor() noexcept;
  template <class Handler>
  void post_to_loop(Handler&& h) {  // from a thread that does not run the loop
    asio::post(io, std::forward<Handler>(h));
    wake_reactor();
  }
  void run();
  std::size_t run_ready();
  bool holds_nothing() const noexcept;
  bool driven_lately() const noexcept;
  void nap(std::unique_lock<std::mutex>& lock, std::uint32_t seen);
  void note_held() noexcept;
  bool drive(const detail::StateBase& waited, const Clock::time_point* deadline) noexcept;
  void wait_for_drivers() noexcept;
  // Whether this thread runs this pool's loop now: its reactor thread, or a waiting thread
  // that drives it (perhaps from a done callback of another pool's loop it also runs).
  bool runs_loop_here() const noexcept;
  // The pool whose reactor this thread is.
  static thread_local const Impl* t_reactor;

  // dispatcher.cpp: calls to workers
  bool can_take(const WorkerProcess& w) const;
  bool has_room(const WorkerProcess& w, const RemoteCall& next) const;
  void pump();
  void distribute();
  void send_calls(const WorkerPtr& wp);
  void start_write(const WorkerPtr& w);
  void continue_write(const WorkerPtr& w);
  void write_failed(const WorkerPtr& w, int error);
  void maybe_close(WorkerProcess& w);
  void note_idle(const WorkerPtr& w);
  void arm_idle(const WorkerPtr& w);

  // results.cpp: frames from workers
  void read_more(const WorkerPtr& w);
  void on_read(const WorkerPtr& w, const boost::system::error_code& ec, std::size_t n);
  bool consume(const WorkerPtr& w, std::size_t n);
  void handle_frame(const WorkerPtr& w, const Frame& f);
  void deliver(WorkerProcess& w, Reader& r, std::uint32_t n, detail::FrameMix* mix = nullptr);
  void fail_front(WorkerProcess& w, const std::exception_ptr& e);
  void complete_items(WorkerProcess& w, RemoteCall* c, std::uint32_t k);
  void on_results(WorkerProcess& w, Reader& r, const detail::FrameHeader& h);
  void on_shared_results(WorkerProcess& w, Reader& r, const detail::FrameHeader& h);
  void on_exit(const WorkerPtr& w);
  void drain_exited(const WorkerPtr& w);

  // rebalance.cpp: taking back calls a worker holds but has not started
  void rebalance();
  bool take_back(WorkerProcess& v, std::uint64_t claim);
  void arm_rebalance(Clock::time_point at);
  bool has_idle_worker() const;

  // lifecycle.cpp: workers come and go; shutdown; breaking
  std::size_t active_workers() const;
  std::size_t free_workers() const;
  void ensure_workers();
  void respawn_later();
  void spawn();
  void handshake_timed_out(const WorkerPtr& w);
  static void send_signal(WorkerProcess& w, int sig) noexcept;
  void expect_exit(const WorkerPtr& w, std::string why);
  int reap(WorkerProcess& w);
  void discard(const WorkerPtr& w);
  void begin_shutdown(RemoteCall* rest, bool cancel_futures);
  void force_stop(RemoteCall* rest, int sig);
  void maybe_finish();
  void break_pool(const std::string& reason) noexcept;

  // process_pool.cpp: Executor::stats
  ExecutorStats snapshot() const;
  ExecutorStats stats();

  // interrupts.cpp: stopping a running call (deadlines, Future::interrupt)
  void enroll();
  void withdraw() noexcept;
  void interrupt(RemoteCall* c);
  void watch_deadline(const WorkerPtr& w, Clock::time_point at);
  void check_deadlines(const WorkerPtr& w);
  void stop_worker(const WorkerPtr& w, std::string why);
  std::exception_ptr stopped_call_error(const WorkerProcess& w, RemoteCall& c, std::uint64_t item,
                                        const std::string& how) const;
  void fail_interrupted(WorkerProcess& w);

  // crash_policy.cpp: what a death means
  struct Progress {  // how far a dead worker got (its shared page)
    std::uint64_t started = 0, finished = 0;
  };
  Progress salvage(WorkerProcess& w);
  void worker_ended(const WorkerPtr& wp);
  void ended_starting(const WorkerPtr& wp, WorkerProcess::Phase phase, int status, const std::string& how);
  bool died_idle(WorkerProcess& w, int status, const std::string& how);
  std::optional<std::string> startup_verdict(const WorkerProcess& w, int status, bool reached);
  std::optional<std::string> startup_crash();
  static bool killed_from_outside(int status) noexcept;
  bool reached_init(const WorkerProcess& w) const;

  // Handlers must not throw into Asio: a failure here (out of memory, a bug) breaks the
  // pool loudly instead of killing the reactor silently.
  template <class Fn>
  void guarded(Fn&& fn) noexcept {
    try {
      fn();
    } catch (const std::exception& e) {
      break_pool(std::string("internal error in the pool's reactor: ") + e.what());
    } catch (...) {
      break_pool("internal error in the pool's reactor");
    }
  }

  ProcessPoolOptions options;
  std::size_t n_workers = 1;
  // Declared before everything that may hold calls: destroyed after them.
  std::unique_ptr<detail::ArgArena> arena = detail::ArgArena::create(arena_reserve);
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  std::thread reactor;
  std::mutex join_mutex;
  // Held by whoever runs the loop's handlers: the reactor, or a waiter that drives (loop.cpp).
  std::mutex loop_mutex;
  std::atomic<bool> reactor_idle{false};    // it yields between polls: it lets go of the loop soon
  std::atomic<std::size_t> held_calls{0};   // pending and sent, after the last handlers ran
  bool reactor_needed = false;              // under loop_mutex: a driver left a spawn to the reactor
  std::atomic<std::uint32_t> wake_seq{0};   // a nap's futex: bumped by wake_reactor
  std::atomic<bool> napping{false};         // the reactor naps (without the loop)
  std::atomic<Clock::rep> deferred_at{0};   // when a call was submitted without a wake (0: none)
  std::atomic<Clock::rep> last_miss{std::numeric_limits<Clock::rep>::min() / 2};  // one no thread drove
  std::atomic<Clock::rep> last_drive_end{std::numeric_limits<Clock::rep>::min() / 2};
  std::atomic<int> drivers{0};              // waiters inside drive (withdraw waits for them)
  std::atomic<const void*> last_submitter{nullptr};  // the thread that submitted last, and
  std::atomic<std::uint32_t> solo_calls{0};          // its calls in a row since another's (capped)
  detail::Inbox<RemoteCall> inbox;
  std::atomic<bool> broken{false};
  std::string broken_reason;  // written before broken is set (release)

  // reactor thread only (costs: read by any, see CostTable)
  detail::CostTable costs;  // per function: what its calls take (remote/batching.hpp)
  asio::steady_timer rebalance_timer{io};
  Clock::time_point rebalance_at = Clock::time_point::max();  // when it fires, if armed
  std::deque<RemoteCall*> pending;
  std::vector<WorkerPtr> workers;
  std::size_t next_worker = 0;
  const WorkerProcess* last_answered = nullptr;  // compared, never followed (dispatcher.cpp)
  bool stopping = false;
  int startup_failures = 0;  // workers in a row that died before their handshake
  int startup_crashes = 0;   // of those, crashes (see startup_crash)
  asio::steady_timer respawn_timer{io};
  bool respawn_scheduled = false;
  int terminate_signal = 0;  // set by terminate_workers / kill_workers
  int idle_deaths = 0;  // see max_idle_deaths
  std::size_t calls_done = 0, calls_failed = 0;  // by workers that are gone (stats)
  std::size_t spawned = 0;                       // workers ever started (stats: restarts)
  std::atomic<std::size_t> in_inbox{0};          // calls submitted, not yet drained (stats)
  std::mutex stats_mutex;                        // final_stats, reactor_done
  ExecutorStats final_stats;                     // once the reactor has ended
  bool reactor_done = false;

  const detail::FunctionEntry* init_fn = nullptr;
  std::vector<std::byte> init_args;
};

}  // namespace parex
