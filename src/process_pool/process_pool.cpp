// ProcessPoolExecutor: the parent side of the batched channel.
//
//  submit (any thread)                    reactor thread (Boost.Asio, one per pool)
//  ───────────────────                    ──────────────────────────────────────────────────
//  encode args into a RemoteCall   ──▶    drain inbox ──▶ pending (FIFO) ──▶ pump():
//  push on the lock-free inbox            for each ready worker with room: one calls frame
//  (post a wake-up only when it           [header | record | record ...] in one writev
//   was empty)                                          │
//                                                       ▼  pipe (1 MiB)           worker process
//                                                      read batch → run items → results buffer
//                                                       ▲  pipe                   (shared memory)
//  future.result() ◀── complete  ◀──  results frame: one outcome per item, in send order;
//                      the future     the front of the worker's in-flight list owns it
//
// One batch's life: calls that pile up while a worker's pipe is busy leave as one frame;
// the worker answers with one frame per burst (see worker/worker.cpp for when it flushes); the
// reactor walks the outcomes in order, completing futures as it goes, without a lock.
//
// Invariants:
//  - Only the reactor thread touches pending, workers and every RemoteCall once it has
//    left the inbox. Submitters touch only the inbox; the futures are atomic on their own.
//  - Each worker runs its input in order, so outcome k of a worker belongs to the k-th
//    item sent to it: the in-flight list needs no ids.
//  - A worker gets work while the work it already holds is estimated to take less than
//    target_inflight (per-item time measured by the worker, averaged): many tiny calls
//    per frame, one slow call at a time - the rest stay here, cancellable and free to go
//    to whichever worker frees up first.
//  - When a worker dies, its shared page tells exactly how far it got (process/shared_page.hpp):
//    finished results are delivered, the running item fails with WorkerCrashed, the rest
//    go back to the front of pending, and a replacement starts. Nothing is run twice.
//  - Large arguments are encoded straight into a shared arena (process/arena.hpp) that workers
//    map read-only; their records carry (offset, length), not the bytes.
//  - Workers are spawned only from the reactor thread: PR_SET_PDEATHSIG fires when the
//    *thread* that forked dies, and this one lives exactly as long as the pool.
#include <parex/process_pool.hpp>

#include "channel/frame_writer.hpp"
#include "process/arena.hpp"
#include "process/shared_page.hpp"
#include "process/spawn.hpp"
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

namespace {

// Work a worker may hold beyond what it is running, in estimated time. Larger: fewer,
// bigger frames; smaller: calls stay cancellable and balance better across workers.
constexpr double target_inflight_ns = 2e6;
// Until a worker has measured itself, assume its calls are slow: it gets one call, not a
// batch, so that slow calls spread over the workers as they come up (a batch would run
// them one after the other in the first worker ready); for tiny calls this costs one
// round trip, after which the estimate drops to the truth.
constexpr double initial_ns_per_item = target_inflight_ns;
constexpr std::uint32_t max_frame_items = 1u << 16;
constexpr std::size_t max_frame_bytes_out = std::size_t{16} << 20;  // a single bigger call still goes, alone
// Arguments this big are written straight from the call's own buffer (writev), not copied.
constexpr std::size_t splice_threshold = std::size_t{64} << 10;
// Start-up failures (a worker that dies before its handshake). A worker that exits on its
// own without reaching parex::init shows that the program cannot start workers: the pool
// breaks at once. One killed by a signal may have been killed from outside (the OOM
// killer, a user): the pool starts another after a back-off that doubles from
// respawn_backoff_first up to respawn_backoff_max, so that it neither spins nor stalls
// for long once the kills stop. A run of max_startup_crashes crashes in a row (signals it
// raised itself, exits after parex::init) is taken as a program that cannot start workers.
constexpr auto respawn_backoff_first = std::chrono::milliseconds(10);
constexpr auto respawn_backoff_max = std::chrono::milliseconds(1000);
constexpr int max_startup_crashes = 5;
// How long a worker whose channel ended (EOF, EPIPE) may take to exit before the pool
// kills it: an exiting process takes microseconds; one that closed its fds and lives on
// must not hold a call (or a start-up) for long.
constexpr auto exit_grace = std::chrono::milliseconds(1000);
// Workers in a row that die holding calls none of which had started (nothing of the
// user's ran, yet they died): then the first of those calls fails instead of being sent
// again, so that a call that kills whoever receives it cannot loop for ever.
constexpr int max_idle_deaths = 3;
// Yields before the reactor blocks in epoll: a result usually follows a call within
// microseconds, and a reactor still awake saves a slow wake-up of an idle CPU (measured
// round trip 95-115 us without, 7-12 us with; see also worker/worker.cpp's idle_yields).
constexpr int reactor_idle_yields = 16;
// Address space reserved for the shared argument arena (sparse: memory is used only by
// the arguments in it).
constexpr std::size_t arena_reserve = std::size_t{64} << 30;

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::sigdescr_np(sig);
    return "was killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
  }
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  return "ended (status " + std::to_string(status) + ")";
}

// The pool whose reactor this thread is, if any (see shutdown).
thread_local const void* this_threads_pool = nullptr;
}  // namespace

struct ProcessPoolExecutor::Impl {
  struct Worker {
    enum class Phase { starting, initializing, ready, retiring, dead };

    Worker(asio::io_context& io, std::uint64_t max_frame)
        : to(io), from(io), exit_watch(io), timer(io), grace(io), reader(max_frame) {}

    // Counts towards max_workers: not retiring, not told to stop.
    bool active() const noexcept { return phase <= Phase::ready && !input_closed; }
    std::uint64_t in_flight() const noexcept { return sent - received; }

    pid_t pid = -1;
    boost::process::child child;
    asio::posix::stream_descriptor to;    // calls to the worker (non-blocking)
    asio::posix::stream_descriptor from;  // results from the worker
    asio::posix::stream_descriptor exit_watch;  // its pidfd: readable once it has exited
    int shm_fd = -1;
    asio::steady_timer timer;             // the handshake deadline
    asio::steady_timer grace;             // after EOF or EPIPE: time left to exit on its own
    detail::FrameReader reader;
    Phase phase = Phase::starting;
    std::deque<RemoteCall*> inflight;     // sent, not finished, in send order
    std::uint64_t sent = 0, received = 0; // items
    std::size_t calls_sent = 0;
    double ns_per_item = initial_ns_per_item;
    bool writing = false;
    bool input_closed = false;  // we sent EOF: it finishes what it holds and exits
    bool reaped = false;
    bool exited = false;        // its pidfd said so; its pipe may still hold results
    bool eof = false;           // its output pipe ended before it exited
    bool killed_by_pool = false;  // we SIGKILLed it while it lived: its status is ours, not its own
    int status = 0;             // once reaped
    std::string stopped_by_pool;  // why we killed it, if we did
    detail::FrameWriter writer;  // the frame being sent to it
  };
  using WorkerPtr = std::shared_ptr<Worker>;

  explicit Impl(ProcessPoolOptions o) : options(std::move(o)), guard(asio::make_work_guard(io)) {
    n_workers = options.max_workers ? options.max_workers : process_cpu_count();
  }

  // ---- submit side (any thread) -----------------------------------------------------
  void submit(RemoteCall* c) {
    switch (inbox.push(c)) {
      case detail::Inbox<RemoteCall>::Push::first:
        asio::post(io, [this] { guarded([&] { drain_inbox(); }); });
        break;
      case detail::Inbox<RemoteCall>::Push::more:
        break;
      case detail::Inbox<RemoteCall>::Push::closed:
        if (broken.load(std::memory_order_acquire)) throw BrokenProcessPool(broken_reason);
        throw InvalidStateError("cannot submit after shutdown");
    }
  }

  void shutdown(bool wait, bool cancel_futures) {
    RemoteCall* rest = inbox.close();
    asio::post(io, [this, rest, cancel_futures] { guarded([&] { begin_shutdown(rest, cancel_futures); }); });
    if (!wait) return;
    // Checked before the lock: the owner may hold it, joining the reactor, while a done
    // callback on the reactor calls shutdown too.
    if (this_threads_pool == this)
      throw InvalidStateError("shutdown(wait=true) called from the pool's reactor thread (a done callback) would "
                              "wait for itself");
    std::lock_guard lock(join_mutex);
    if (reactor.joinable()) reactor.join();
  }

  void end_workers(int sig) {
    RemoteCall* rest = inbox.close();
    asio::post(io, [this, rest, sig] { guarded([&] { force_stop(rest, sig); }); });
  }

  // ---- reactor thread ---------------------------------------------------------------
  void run() {
    // Writes to a dead worker must fail with EPIPE, not kill the program: block SIGPIPE
    // in this thread, the only one that writes to workers.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    pthread_setname_np(pthread_self(), "parex-reactor");
    this_threads_pool = this;
    guarded([&] { ensure_workers(); });
    // Run ready handlers; when there are none, yield a few times looking for more before
    // blocking in epoll (see reactor_idle_yields).
    while (!io.stopped()) {
      if (io.poll()) continue;
      bool ran = false;
      for (int i = 0; i < reactor_idle_yields && !ran; ++i) {
        sched_yield();
        ran = io.poll() != 0;
      }
      if (!ran && io.run_one() == 0) break;
    }
  }

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

  void drain_inbox() {
    for (RemoteCall* c = inbox.take_all(); c;) {
      RemoteCall* next = c->next;
      pending.push_back(c);
      c = next;
    }
    pump();
  }

  std::size_t active_workers() const {
    return static_cast<std::size_t>(std::count_if(workers.begin(), workers.end(), [](auto& w) { return w->active(); }));
  }

  // Keeps max_workers workers. While stopping, only as long as accepted calls are left:
  // a worker that crashes during shutdown hands its unstarted calls back, and they still
  // need someone to run them.
  void ensure_workers() {
    if (respawn_scheduled) return;  // the back-off timer calls again
    while (!broken.load(std::memory_order_relaxed) && active_workers() < n_workers && (!stopping || !pending.empty()))
      spawn();
  }

  // After a start-up failure: the next worker starts after a back-off (see respawn_backoff_first).
  void respawn_later() {
    if (respawn_scheduled) return;
    const int doublings = std::min(startup_failures - 1, 10);
    respawn_scheduled = true;
    respawn_timer.expires_after(std::min<std::chrono::milliseconds>(respawn_backoff_max, respawn_backoff_first * (1 << doublings)));
    respawn_timer.async_wait([this](const boost::system::error_code& e) {
      respawn_scheduled = false;
      if (e) return;
      guarded([&] {
        ensure_workers();
        pump();
        maybe_finish();
      });
    });
  }

  void spawn() {
    auto w = std::make_shared<Worker>(io, options.max_frame_bytes);
    detail::SpawnedWorker sp;
    try {
      sp = detail::spawn_worker(arena ? arena->fd() : -1);
    } catch (const std::exception& e) {
      return break_pool(e.what());
    }
    w->child = std::move(sp.child);
    w->pid = sp.pid;
    w->shm_fd = sp.shm_fd;
    if (sp.pidfd >= 0) w->exit_watch.assign(sp.pidfd);
    w->to.assign(sp.to_fd);
    w->from.assign(sp.from_fd);
    w->to.non_blocking(true);
    w->from.non_blocking(true);
    workers.push_back(w);

    // The first frame: the initializer (or none).
    w->writer.begin();
    Buffer& f = w->writer.frame();
    const auto at = detail::begin_frame(f, FrameKind::init);
    if (init_fn) {
      f.put_byte(1);
      f.put_varint(init_fn->id);
      f.put(init_args.data(), init_args.size());
    } else {
      f.put_byte(0);
    }
    detail::finish_frame(f, at, 0);
    w->writer.seal();
    start_write(w);
    if (w->phase == Worker::Phase::dead) return;  // writing broke the pool (a failed respawn)
    w->timer.expires_after(options.handshake_timeout);
    w->timer.async_wait([this, w](const boost::system::error_code& e) {
      if (!e && w->phase == Worker::Phase::starting) guarded([&] { handshake_timed_out(w); });
    });
    if (w->exit_watch.is_open())
      w->exit_watch.async_wait(asio::posix::stream_descriptor::wait_read, [this, w](const boost::system::error_code& e) {
        if (!e) guarded([&] { on_exit(w); });
      });
    read_more(w);
  }

  void handshake_timed_out(const WorkerPtr& w) {
    if (!reached_init(*w))
      return break_pool("worker process " + std::to_string(w->pid) + " did not answer within " +
                        std::to_string(options.handshake_timeout.count()) + " ms: " + detail::init_advice);
    // It is the program's worker but stuck (stopped, or a machine far too loaded): replace it.
    w->stopped_by_pool = "was stopped: it reached parex::init but did not answer within " +
                         std::to_string(options.handshake_timeout.count()) + " ms";
    send_signal(*w, SIGKILL);
  }

  // Through the pidfd where there is one: a pid may be reused once reaped elsewhere (a
  // program that ignores SIGCHLD), a pidfd never names another process.
  static void send_signal(Worker& w, int sig) noexcept {
    if (w.exit_watch.is_open()) ::syscall(SYS_pidfd_send_signal, w.exit_watch.native_handle(), sig, nullptr, 0);
    else ::kill(w.pid, sig);
  }

  // The worker's channel ended (EOF, EPIPE): it is exiting, or it closed its fds and lives
  // on. With a pidfd, its exit is awaited, so that its own status tells why it went; one
  // still alive after exit_grace is killed, and its death is then the pool's doing.
  // Without a pidfd it is killed at once, as before.
  void expect_exit(const WorkerPtr& w, std::string why) {
    if (!w->exit_watch.is_open()) {
      if (w->stopped_by_pool.empty()) w->stopped_by_pool = std::move(why);
      return send_signal(*w, SIGKILL);
    }
    w->grace.expires_after(exit_grace);
    w->grace.async_wait([this, w, why = std::move(why)](const boost::system::error_code& e) {
      if (e || w->phase == Worker::Phase::dead || w->exited) return;
      if (w->stopped_by_pool.empty()) w->stopped_by_pool = why + ", and did not exit";
      w->killed_by_pool = true;
      send_signal(*w, SIGKILL);
    });
  }

  // The worker has exited. Everything it wrote is in its pipe by now, but a process it
  // forked may keep the pipe open: EOF may never come. The read in flight is cancelled
  // and on_read, which it always reaches, drains the pipe without waiting. (Reading here
  // instead would race with that read: Asio may have performed it already, its bytes in
  // the reader's buffer but not yet handed to on_read.)
  void on_exit(const WorkerPtr& w) {
    if (w->phase == Worker::Phase::dead) return;
    w->exited = true;
    if (w->eof) return worker_ended(w);  // its pipe is drained and no read is in flight
    boost::system::error_code ignored;
    w->from.cancel(ignored);
  }

  // After on_exit: reads what the pipe still holds, without blocking, then ends w.
  void drain_exited(const WorkerPtr& w) {
    for (;;) {
      auto space = w->reader.prepare();
      const ssize_t n = ::read(w->from.native_handle(), space.data(), space.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (!consume(w, static_cast<std::size_t>(n))) return;
    }
    worker_ended(w);
  }

  void read_more(const WorkerPtr& w) {
    auto space = w->reader.prepare();
    w->from.async_read_some(asio::buffer(space.data(), space.size()),
                            [this, w](const boost::system::error_code& ec, std::size_t n) {
                              guarded([&] { on_read(w, ec, n); });
                            });
  }

  void on_read(const WorkerPtr& w, const boost::system::error_code& ec, std::size_t n) {
    if (w->phase == Worker::Phase::dead) return;
    if (ec == asio::error::eof && !w->exited && w->exit_watch.is_open()) {
      w->eof = true;  // on_exit ends it
      return expect_exit(w, "was stopped: it closed its output");
    }
    if (ec && !(w->exited && ec == asio::error::operation_aborted)) return worker_ended(w);
    if (!ec && !consume(w, n)) return;
    if (w->exited) return drain_exited(w);
    read_more(w);
    pump();
    maybe_close(*w);
  }

  // Handles the complete frames among n more bytes read from w; false if w has ended.
  bool consume(const WorkerPtr& w, std::size_t n) {
    w->reader.commit(n);
    try {
      while (auto f = w->reader.next()) {
        handle_frame(w, *f);
        if (w->phase == Worker::Phase::dead) return false;
      }
    } catch (const ProtocolError& e) {
      std::fprintf(stderr, "parex: worker %d sent a bad frame (%s); stopping it\n", static_cast<int>(w->pid), e.what());
      w->stopped_by_pool = std::string("was stopped: it sent a bad frame (") + e.what() + ")";
      w->killed_by_pool = true;
      worker_ended(w);
      return false;
    }
    return true;
  }

  void handle_frame(const WorkerPtr& w, const Frame& f) {
    Reader r(f.payload);
    switch (f.kind()) {
      case FrameKind::hello: {
        if (w->phase != Worker::Phase::starting) throw ProtocolError("unexpected hello");
        const auto version = r.get_raw<std::uint32_t>();
        const auto digest = r.get_raw<std::uint64_t>();
        if (version != detail::protocol_version || digest != detail::Registry::global().digest())
          return break_pool("worker process " + std::to_string(w->pid) +
                            " runs a different program: its registered functions differ from ours (was the "
                            "binary rebuilt while this program ran?)");
        w->phase = Worker::Phase::initializing;
        w->timer.cancel();
        return;
      }
      case FrameKind::ready:
        if (w->phase != Worker::Phase::initializing) throw ProtocolError("unexpected ready");
        w->phase = Worker::Phase::ready;
        startup_failures = 0;
        startup_crashes = 0;
        return;
      case FrameKind::init_failed: {
        r.get_byte();  // stage
        const std::string what = detail::describe_exception(detail::decode_exception(r));
        // On stderr too, as Python logs "Exception in initializer:" with the traceback.
        std::fprintf(stderr, "parex: exception in the initializer of worker process %d: %s\n",
                     static_cast<int>(w->pid), what.c_str());
        return break_pool("the initializer failed in worker process " + std::to_string(w->pid) + ": " + what);
      }
      case FrameKind::results:
        return on_results(*w, r, f.header);
      default:
        throw ProtocolError("unexpected frame kind from a worker");
    }
  }

  // Outcomes for the next n items sent to w, in order: each call at the front of the
  // in-flight list takes its run of them in one go.
  void deliver(Worker& w, Reader& r, std::uint32_t n) {
    while (n) {
      if (w.inflight.empty()) throw ProtocolError("a result for no call");
      RemoteCall* c = w.inflight.front();
      const std::uint32_t k = std::min(n, c->count - c->done);
      idle_deaths = 0;
      c->take_outcomes(r, k);
      complete_items(w, c, k);
      n -= k;
    }
  }

  void fail_front(Worker& w, const std::exception_ptr& e) {
    RemoteCall* c = w.inflight.front();
    c->on_error(e);
    complete_items(w, c, 1);
  }

  void complete_items(Worker& w, RemoteCall* c, std::uint32_t k) {
    w.received += k;
    if ((c->done += k) == c->count) {
      w.inflight.pop_front();
      c->finish();  // may free c
    }
  }

  void on_results(Worker& w, Reader& r, const detail::FrameHeader& h) {
    deliver(w, r, h.items);
    if (!r.empty()) throw ProtocolError("trailing bytes in a results frame");
    if (h.items) {
      const double sample = std::max(20.0, h.aux * 1000.0 / h.items);
      w.ns_per_item = 0.5 * w.ns_per_item + 0.5 * sample;
    }
  }

  bool has_room(const Worker& w) const {
    return w.in_flight() == 0 || static_cast<double>(w.in_flight()) * w.ns_per_item < target_inflight_ns;
  }

  void pump() {
    if (pending.empty() || workers.empty()) return;
    const auto snapshot = workers;  // send_calls may spawn a replacement (retiring workers)
    const std::size_t n = snapshot.size();
    for (std::size_t k = 0; k < n && !pending.empty(); ++k) {
      const WorkerPtr& w = snapshot[(next_worker + k) % n];
      if (w->phase == Worker::Phase::ready && !w->input_closed && !w->writing && has_room(*w)) send_calls(w);
    }
    ++next_worker;
  }

  void send_calls(const WorkerPtr& wp) {
    Worker& w = *wp;
    w.writer.begin();
    Buffer& f = w.writer.frame();
    detail::begin_frame(f, FrameKind::calls);
    std::uint32_t items = 0;
    while (!pending.empty() && items < max_frame_items && f.size() + w.writer.spliced_bytes() < max_frame_bytes_out &&
           (items == 0 || has_room(w))) {
      RemoteCall* c = pending.front();
      pending.pop_front();
      if (!c->state().set_running()) {  // cancelled while it waited here
        c->drop();
        continue;
      }
      const std::uint32_t n = c->count - c->done;
      c->seek_resume();  // a re-send after a crash starts at the first item without an outcome
      const auto bytes = c->args.bytes().subspan(c->resume_offset);
      const bool in_arena = arena && c->args.block_owner() == arena.get();
      f.put_varint(std::uint64_t{c->fn->id} << 1 | in_arena);
      f.put_varint(n);
      if (in_arena) {  // the worker reads the arguments where they are
        f.put_varint(arena->offset_of(bytes.data()));
        f.put_varint(bytes.size());
      } else if (bytes.size() >= splice_threshold) {
        w.writer.splice(bytes);
      } else {
        f.put(bytes.data(), bytes.size());
      }
      w.inflight.push_back(c);
      w.sent += n;
      items += n;
      if (options.max_tasks_per_child && ++w.calls_sent >= options.max_tasks_per_child) {
        w.phase = Worker::Phase::retiring;  // its replacement starts once this frame is under way
        break;
      }
    }
    if (items == 0) return;
    detail::finish_frame(f, 0, items, 0, w.writer.spliced_bytes());
    w.writer.seal();
    start_write(wp);
    // Only now: starting a worker may fail and break the pool, which must not find a
    // frame half-built for this one.
    if (w.phase == Worker::Phase::retiring) ensure_workers();
  }

  void start_write(const WorkerPtr& w) {
    w->writing = true;
    continue_write(w);
  }

  // Writes what the pipe takes now (channel/frame_writer.hpp); waits for room with Asio,
  // never blocks.
  void continue_write(const WorkerPtr& w) {
    int error = 0;
    switch (w->writer.write_some(w->to.native_handle(), error)) {
      case detail::FrameWriter::Status::would_block:
        w->to.async_wait(asio::posix::stream_descriptor::wait_write, [this, w](const boost::system::error_code& ec) {
          guarded([&] {
            if (w->phase == Worker::Phase::dead) return;
            if (ec) return write_failed(w, ec.value());
            continue_write(w);
          });
        });
        return;
      case detail::FrameWriter::Status::failed:
        return write_failed(w, error);
      case detail::FrameWriter::Status::done:
        break;
    }
    w->writing = false;
    w->writer.release(max_frame_bytes_out);  // let a frame that grew big give its memory back
    pump();
    maybe_close(*w);
  }

  // The worker is gone or going: its read side will report the end; make sure it ends.
  void write_failed(const WorkerPtr& w, int error) {
    w->writing = false;
    if (w->phase == Worker::Phase::dead) return;
    expect_exit(w, "was stopped: the pool could not write to it (" + std::string(strerror(error)) + ")");
  }

  // A retiring worker gets EOF once it has nothing left to answer; when the pool is stopping,
  // every worker does, once nothing is left to send either.
  void maybe_close(Worker& w) {
    const bool done_with_it = w.phase == Worker::Phase::retiring || (stopping && pending.empty());
    if (done_with_it && !w.input_closed && w.phase != Worker::Phase::dead && w.inflight.empty() && !w.writing) {
      w.input_closed = true;
      boost::system::error_code ignored;
      w.to.close(ignored);
    }
  }

  // ---- a worker's end: normal (closing) or not ----------------------------------------
  // Idempotent: once reaped, the pid may belong to somebody else and is never signalled.
  int reap(Worker& w) {
    if (w.reaped) return w.status;
    boost::system::error_code ignored;
    w.to.close(ignored);
    w.from.close(ignored);
    w.timer.cancel();
    w.grace.cancel();
    // It has exited (pidfd), or its output reached EOF and it is past user code: SIGKILL
    // only makes sure of it (a worker that closed its pipe itself must not leave us waiting).
    if (w.child.valid()) {
      send_signal(w, SIGKILL);
      std::error_code ec;
      w.child.wait(ec);
    }
    w.exit_watch.close(ignored);
    w.reaped = true;
    w.status = w.child.native_exit_code();
    return w.status;
  }

  struct Progress {
    std::uint64_t started = 0, finished = 0;
  };

  // Delivers results a dead worker computed but had not sent; returns how far it got.
  Progress salvage(Worker& w) {
    Progress p;
    struct stat st {};
    if (::fstat(w.shm_fd, &st) != 0 || static_cast<std::size_t>(st.st_size) < detail::shm_header_bytes) return p;
    const auto size = static_cast<std::size_t>(st.st_size);
    void* base = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, w.shm_fd, 0);
    if (base == MAP_FAILED) return p;
    const auto* sh = static_cast<const detail::WorkerShared*>(base);
    p.started = sh->started.load(std::memory_order_acquire);
    p.finished = sh->finished.load(std::memory_order_acquire);
    const auto unsent = sh->unsent();
    const std::uint64_t first = unsent.first;
    const std::size_t cap = size - detail::shm_header_bytes;
    const std::size_t begin = std::min<std::uint64_t>(unsent.begin, cap);
    const std::size_t end = std::min<std::uint64_t>(sh->out_end.load(std::memory_order_acquire), cap);
    try {
      if (begin < end) {
        Reader r({static_cast<const std::byte*>(base) + detail::shm_header_bytes + begin, end - begin});
        for (std::uint64_t seq = first; seq < p.finished && seq <= w.received; ++seq) {
          if (seq == w.received) deliver(w, r, 1);
          else detail::read_outcome(r);  // received before the worker died
        }
      }
    } catch (const std::exception&) {
      // A corrupt buffer (the worker scribbled over it): what is left fails below.
    }
    ::munmap(base, size);
    return p;
  }

  void worker_ended(const WorkerPtr& wp) {
    Worker& w = *wp;
    const auto phase = w.phase;
    w.phase = Worker::Phase::dead;
    const int status = reap(w);
    const std::string how = "worker process " + std::to_string(w.pid) + " " +
                            (w.stopped_by_pool.empty() ? describe_status(status) : w.stopped_by_pool);

    if (phase == Worker::Phase::starting || phase == Worker::Phase::initializing) {
      const bool reached = reached_init(w);
      discard(wp);
      // Told to stop before it was up, or ended by terminate_workers: fine.
      if (w.input_closed || terminate_signal) return maybe_finish();
      // An initializer that fails or crashes breaks the pool, as in Python; a kill from
      // outside is a start-up failure like any other.
      if (phase == Worker::Phase::initializing && init_fn && !killed_from_outside(status))
        return break_pool(how + " while running the initializer");
      if (const auto why = startup_verdict(w, status, reached)) return break_pool(how + " before the handshake: " + *why);
      ++startup_failures;
      respawn_later();
      return maybe_finish();
    }

    const Progress p = salvage(w);
    // 1. Items it finished whose results the shared buffer could not give back: failed,
    //    never re-run (they did run).
    const auto lost = std::make_exception_ptr(BrokenProcessPool(how + "; the results of calls it finished were lost"));
    while (w.received < p.finished && !w.inflight.empty()) fail_front(w, lost);
    // 2. The item it was running: exactly that one fails.
    if (p.started > p.finished && w.received == p.finished && !w.inflight.empty()) {
      const auto& name = w.inflight.front()->fn->name;
      const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      fail_front(w, std::make_exception_ptr(WorkerCrashed(how + " while running '" + name + "'", w.pid, sig, code, name)));
    }
    // 2b. It died between calls, holding some. The calls go out again; unless it could
    //     not read what we sent (a protocol failure: every worker would), or workers keep
    //     dying this way.
    if (terminate_signal) {  // terminate_workers: what it held fails, nothing is re-sent
      const auto e = std::make_exception_ptr(BrokenProcessPool(how));
      for (RemoteCall* c : w.inflight) c->fail_rest(e);
      w.inflight.clear();
    }
    if (p.started == p.finished && w.received == p.finished && !w.inflight.empty()) {
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      if (code == detail::exit_protocol_error || code == detail::exit_bad_setup)
        return break_pool(how + " while receiving calls: it could not read what the pool sent (its message is on "
                                "stderr)");
      if (++idle_deaths >= max_idle_deaths) {
        idle_deaths = 0;
        const auto& name = w.inflight.front()->fn->name;
        const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        const std::string why = code == detail::exit_no_memory ? " (out of memory receiving its calls)" : "";
        fail_front(w, std::make_exception_ptr(WorkerCrashed(
                          how + why + " before starting '" + name + "'; " + std::to_string(max_idle_deaths) +
                              " workers in a row died holding this call, unstarted",
                          w.pid, sig, code, name)));
      }
    }
    // 3. What it held but had not started goes back to the front of the queue, in order.
    for (auto it = w.inflight.rbegin(); it != w.inflight.rend(); ++it) pending.push_front(*it);
    w.inflight.clear();
    discard(wp);
    ensure_workers();
    pump();
    maybe_finish();
  }

  // Whether a worker that died before its handshake shows that this program cannot start
  // workers (the reason, then), or may have been killed from outside (nullopt: retry).
  std::optional<std::string> startup_verdict(const Worker& w, int status, bool reached) {
    if (WIFEXITED(status)) {
      const int code = WEXITSTATUS(status);
      if (code == detail::exit_no_memory) return std::nullopt;
      if (code == detail::exit_bad_setup || code == detail::exit_protocol_error)
        return std::string("it could not set up as a worker (its message is on stderr)");
      if (code == detail::exit_forgot_init || !reached) return std::string(detail::init_advice);
      return startup_crash();
    }
    if (killed_from_outside(status) && !w.killed_by_pool) return std::nullopt;
    if (!reached && w.killed_by_pool) return std::string(detail::init_advice);  // closed its channel and lived on
    return startup_crash();
  }

  // A crash during start-up (a signal it raised itself, an exit after parex::init): a
  // few in a row show a program whose workers cannot start.
  std::optional<std::string> startup_crash() {
    if (++startup_crashes < max_startup_crashes) return std::nullopt;
    return std::to_string(max_startup_crashes) + " workers in a row crashed while starting (a crash in a static "
           "constructor, or before parex::init?)";
  }

  // Signals that a process does not send itself by crashing: somebody ended it.
  static bool killed_from_outside(int status) noexcept {
    if (!WIFSIGNALED(status)) return false;
    const int sig = WTERMSIG(status);
    return sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGHUP;
  }

  // Whether w's process got as far as parex::init (it marks the shared page there).
  bool reached_init(const Worker& w) const {
    if (w.shm_fd < 0) return false;
    void* p = ::mmap(nullptr, detail::shm_header_bytes, PROT_READ, MAP_SHARED, w.shm_fd, 0);
    if (p == MAP_FAILED) return false;
    const bool r = static_cast<const detail::WorkerShared*>(p)->reached_init.load(std::memory_order_acquire) != 0;
    ::munmap(p, detail::shm_header_bytes);
    return r;
  }

  void discard(const WorkerPtr& w) {
    if (w->shm_fd >= 0) ::close(w->shm_fd);
    w->shm_fd = -1;
    std::erase(workers, w);
  }

  // ---- shutdown and breakage ---------------------------------------------------------
  void begin_shutdown(RemoteCall* rest, bool cancel_futures) {
    stopping = true;
    for (RemoteCall* c = rest; c;) {
      RemoteCall* next = c->next;
      pending.push_back(c);
      c = next;
    }
    if (cancel_futures) {
      std::deque<RemoteCall*> keep;
      for (RemoteCall* c : pending) {
        if (c->done == 0 && c->state().cancel()) c->drop();
        else keep.push_back(c);
      }
      pending.swap(keep);
    }
    pump();
    for (auto& w : workers) maybe_close(*w);
    maybe_finish();
  }

  // terminate_workers / kill_workers: shutdown(wait=false, cancel_futures=true), then the
  // signal to every worker. Calls that cannot be cancelled (part of a chunk already ran)
  // fail; so do those the workers hold (worker_ended).
  void force_stop(RemoteCall* rest, int sig) {
    stopping = true;
    terminate_signal = sig;
    for (RemoteCall* c = rest; c;) {
      RemoteCall* next = c->next;
      pending.push_back(c);
      c = next;
    }
    const char* by = sig == SIGKILL ? "kill_workers()" : "terminate_workers()";
    const auto e = std::make_exception_ptr(BrokenProcessPool(std::string("the pool was ended by ") + by));
    for (RemoteCall* c : pending) {
      if (c->done == 0 && c->state().cancel()) c->drop();
      else c->fail_rest(e);
    }
    pending.clear();
    for (auto& w : workers) {
      if (w->phase == Worker::Phase::dead) continue;
      w->stopped_by_pool = std::string("was ended by ") + by;
      send_signal(*w, sig);
    }
    maybe_finish();
  }

  void maybe_finish() {
    if (stopping && pending.empty() && workers.empty()) {
      respawn_timer.cancel();
      guard.reset();
    }
  }

  void break_pool(const std::string& reason) noexcept {
    if (broken.load(std::memory_order_relaxed)) return;
    try {
      broken_reason = reason;
      broken.store(true, std::memory_order_release);
      const auto e = std::make_exception_ptr(BrokenProcessPool(reason));
      for (RemoteCall* c = inbox.close(); c;) {
        RemoteCall* next = c->next;
        c->fail_rest(e);
        c = next;
      }
      for (RemoteCall* c : pending) c->fail_rest(e);
      pending.clear();
      auto all = workers;
      for (auto& w : all) {
        w->phase = Worker::Phase::dead;
        reap(*w);  // first: a live worker may still be reading arguments the calls own
        for (RemoteCall* c : w->inflight) c->fail_rest(e);
        w->inflight.clear();
        discard(w);
      }
      respawn_timer.cancel();
      maybe_finish();
    } catch (...) {
      std::fprintf(stderr, "parex: cannot tear down a broken process pool: %s\n", reason.c_str());
      std::abort();
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
  detail::Inbox<RemoteCall> inbox;
  std::atomic<bool> broken{false};
  std::string broken_reason;  // written before broken is set (release)

  // reactor thread only
  std::deque<RemoteCall*> pending;
  std::vector<WorkerPtr> workers;
  std::size_t next_worker = 0;
  bool stopping = false;
  int startup_failures = 0;  // workers in a row that died before their handshake
  int startup_crashes = 0;   // of those, crashes (see startup_crash)
  asio::steady_timer respawn_timer{io};
  bool respawn_scheduled = false;
  int terminate_signal = 0;  // set by terminate_workers / kill_workers
  int idle_deaths = 0;  // see max_idle_deaths

  const detail::FunctionEntry* init_fn = nullptr;
  std::vector<std::byte> init_args;
};

ProcessPoolExecutor::ProcessPoolExecutor(ProcessPoolOptions options) : Executor(true) {
  if (!initialized()) {
    if (std::getenv(detail::worker_env)) {
      // This is a worker whose main() forgot parex::init: starting a pool here would
      // spawn workers of workers. Say why and leave; the parent reports it.
      std::fprintf(stderr, "parex: this worker process reached a ProcessPoolExecutor without parex::init: %s\n",
                   detail::init_advice);
      std::_Exit(detail::exit_forgot_init);
    }
    throw InvalidStateError("ProcessPoolExecutor needs parex::init(argc, argv) as the first statement of main(): "
                            "its workers are this program re-executed, and init is where they branch off");
  }
  detail::Registry::global().freeze();
  impl_ = std::make_unique<Impl>(std::move(options));
  if (impl_->options.initializer) {
    impl_->init_fn = detail::Registry::global().by_pointer(impl_->options.initializer.function());
    if (!impl_->init_fn) detail::throw_unregistered(impl_->options.initializer.function(), nullptr);
    impl_->init_args = impl_->options.initializer.encoded_args();
  }
  impl_->reactor = std::thread([impl = impl_.get()] { impl->run(); });
}

ProcessPoolExecutor::~ProcessPoolExecutor() {
  end_map_ranges();
  try {
    impl_->shutdown(true, false);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parex: ProcessPoolExecutor destroyed from its own reactor thread: %s\n", e.what());
    std::abort();
  }
}

std::size_t ProcessPoolExecutor::max_workers() const noexcept { return impl_->n_workers; }

void ProcessPoolExecutor::dispatch(detail::LocalTask*) {
  throw InvalidStateError("a ProcessPoolExecutor runs registered functions in workers, not local tasks");
}

void ProcessPoolExecutor::dispatch_remote(RemoteCall* call) { impl_->submit(call); }

detail::BlockAllocator* ProcessPoolExecutor::block_allocator() noexcept { return impl_->arena.get(); }

void ProcessPoolExecutor::do_shutdown(bool wait, bool cancel_futures) { impl_->shutdown(wait, cancel_futures); }

void ProcessPoolExecutor::terminate_workers() { impl_->end_workers(SIGTERM); }

void ProcessPoolExecutor::kill_workers() { impl_->end_workers(SIGKILL); }

}  // namespace parex
