// parex::init and the worker loop.
//
// A worker is the program re-executed with PAREX_WORKER in its environment. init() sees
// the marker, and this file takes over for good:
//
//   hello ──▶ pool            (protocol, registry digest: a different binary fails here)
//   init  ◀── pool            run the initializer, answer ready / init_failed
//   loop: calls frame ◀── pool
//           for each item: started++ · decode · run · encode outcome into the results
//                          buffer (shared memory) · finished++
//           flush the results as one frame when: the input has run dry, or the buffer
//           holds flush_bytes, or its oldest result has waited flush_latency; while a
//           call runs, a flusher thread sends results that wait behind it (so tiny calls
//           travel in batches and a slow call delays nobody's result but its own)
//   EOF on the input (pool shut down or gone) ──▶ flush, exit(0)
//
// Workers ignore SIGINT (the parent decides), die with the parent (PR_SET_PDEATHSIG plus
// EOF), and never write anything but frames to their output pipe: the program's own
// stdout and stderr stay the user's.
#include <parex/detail/wire/frame.hpp>
#include <parex/init.hpp>
#include <parex/registry.hpp>

#include "mp/child.hpp"
#include "process/marker.hpp"
#include "process/shared_page.hpp"
#include "remote/take_back.hpp"
#include "worker/mpi_entry.hpp"
#include "worker/result_stream.hpp"
#include "worker/run_calls.hpp"
#include "sync/futex.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <malloc.h>
#include <mutex>
#include <optional>
#include <sys/uio.h>
#include <thread>
#include <poll.h>
#include <sched.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace parex {

namespace {
std::atomic<bool> g_initialized{false};
}

bool initialized() noexcept { return g_initialized.load(std::memory_order_acquire); }

namespace detail {

void (*mpi_entry)(int argc, char** argv) = nullptr;

namespace {

using Clock = std::chrono::steady_clock;
using worker_io::ArenaView;
using worker_io::ResultStream;
using worker_io::die;
using worker_io::write_all;

// After answering, yield this many times, looking for input, before blocking: on a
// machine whose idle CPUs wake slowly (here ~45 us a wake-up) the next call of a caller
// waiting on each result then finds the worker awake. Measured round trip: 95-115 us
// without, 7-12 us with 8-16 yields; throughput unchanged or better. A yield costs
// ~1 us of CPU when nobody else wants the core, and gives it away when someone does.
constexpr int idle_yields = 16;
// Freed memory a worker keeps for its next call: glibc's mmap for big blocks (off here)
// gave each big argument fresh zeroed pages, halving its throughput against a bare pipe.
// An idle worker holding more free memory than this gives it back (checked at most every
// trim_check_interval).
constexpr int keep_freed_bytes = 256 << 20;
constexpr auto trim_check_interval = std::chrono::milliseconds(100);
// A frame from the pool larger than this is a ProtocolError: the pool never sends more
// than one call past max_frame_bytes_out (16 MiB), and a call's arguments beyond 1 TiB are
// a corrupt length, not a call.
constexpr std::uint64_t max_input_frame_bytes = std::uint64_t{1} << 40;

class WorkerLoop {
 public:
  explicit WorkerLoop(const WorkerMarker& m)
      : in_(m.in_fd), out_fd_(m.out_fd), input_(max_input_frame_bytes), arena_(m.arena_fd) {
    send_hello();
    try {
      run_initializer();
    } catch (const std::exception& e) {  // a malformed init frame (the initializer's own errors are outcomes)
      die(exit_protocol_error, e.what());
    }
    results_.emplace(m.shm_fd, m.out_fd, shared_results_bytes_, channel_);  // the flusher starts only after the handshake
  }

  [[noreturn]] void run() {
    for (;;) {
      std::optional<Frame> f;
      try {
        f = input_.next();
      } catch (const std::exception& e) {
        input_failed(exit_protocol_error, e.what());
      }
      if (!f) {
        try {
          fill_input();
        } catch (const std::bad_alloc&) {  // a frame too big for what this process may map
          die(exit_no_memory, "out of memory receiving calls from the pool");
        }
        continue;
      }
      if (f->kind() != FrameKind::calls) input_failed(exit_protocol_error, "unexpected frame kind from the pool");
      run_calls(*f);
    }
  }

 private:
  void send_hello() {
    Buffer b;
    const auto at = begin_frame(b, FrameKind::hello);
    put_hello(b, Registry::global().digest());
    finish_frame(b, at, 0);
    write_all(out_fd_, b.data(), b.size());
  }

  // The first frame from the pool: the initializer call, or none.
  void run_initializer() {
    std::optional<Frame> f;
    while (!(f = input_.next())) read_blocking();
    if (f->kind() != FrameKind::init) die(exit_protocol_error, "expected the init frame");
    Reader r(f->payload);
    Buffer reply;
    std::size_t at;
    max_rss_ = r.get_varint();
    shared_results_bytes_ = static_cast<std::size_t>(std::min<std::uint64_t>(r.get_varint(), SIZE_MAX));
    if (r.get_byte()) {
      const FunctionEntry* e = Registry::global().by_id(static_cast<std::uint32_t>(r.get_varint()));
      if (!e) die(exit_protocol_error, "unknown initializer id");
      Reader args = read_item(r);
      Buffer outcome;
      e->invoke(*e, args, outcome);
      Reader o(outcome.bytes());
      if (const OutcomeView v = read_outcome(o); v.status != OutcomeStatus::ok) {
        Reader body = v.body;
        at = begin_frame(reply, FrameKind::init_failed);
        reply.put(body.position(), body.remaining());
        finish_frame(reply, at, 0);
        write_all(out_fd_, reply.data(), reply.size());
        std::exit(0);
      }
    }
    at = begin_frame(reply, FrameKind::ready);
    finish_frame(reply, at, 0);
    write_all(out_fd_, reply.data(), reply.size());
  }

  // The pipe worker's side of run_calls: outcomes go to the shared results buffer, the
  // shared page counts items for the parent's crash salvage, and results are flushed as
  // the flush tunables say.
  struct PipeSink {
    WorkerLoop& loop;
    ResultStream& stream;

    // Looked up each time: the page moves when the results buffer grows (mremap).
    WorkerShared& shared() noexcept { return stream.shared(); }

    Writer& out() noexcept { return stream; }
    bool claim(std::uint64_t items) { return loop.gate_.claim(shared().claim, shared().revoke_to, items); }
    bool overhead_due() const noexcept { return loop.max_rss_ && loop.started_; }
    void begin_call() {
      // Between calls (after one at least: a limit below a fresh worker's size must not
      // turn workers over without running anything): the call about to start goes elsewhere.
      if (overhead_due()) loop.check_rss();
      stream.maybe_rewind();
    }
    void item_started_at(Clock::time_point t) noexcept {
      shared().started_ns.store(t.time_since_epoch().count(), std::memory_order_relaxed);
    }
    bool results_waiting() const noexcept { return stream.pending(); }
    void item_started() noexcept {
      stream.arm();  // results wait while this item runs: the flusher watches them (once per batch)
      shared().started.store(++loop.started_, std::memory_order_release);
    }
    void item_finished() noexcept { stream.commit(++loop.finished_); }
    bool tick(Clock::time_point now, Clock::duration busy) {
      stream.add_busy(busy);
      if (now - stream.pending_since() < flush_latency) return false;
      stream.flush();
      return true;
    }
    bool flush_due() const noexcept { return stream.size() >= flush_bytes; }
    bool after_item() {
      if (!flush_due()) return false;
      stream.flush();
      return true;
    }
    std::span<const std::byte> arena(ArenaRef a) const { return loop.arena_.at(a.offset, a.length); }
  };

  void run_calls(const Frame& f) {
    PipeSink sink{*this, *results_};
    try {
      detail::run_calls(f.payload, sink);
    } catch (const std::exception& e) {
      input_failed(exit_protocol_error, e.what());
    }
  }

  // What came in cannot be read. If the code this worker ran closed or replaced its pipes
  // (closing every fd, dup2 of /dev/null), that is no fault of the pool's: exit so that
  // the pool salvages what it finished (the results buffer is mapped, not a pipe) and
  // sends the rest elsewhere. Otherwise the pool sent something unreadable.
  [[noreturn]] void input_failed(int code, const char* what) {
    if (!channel_.intact())
      die(exit_channel_lost, (std::string("its pipes to the pool were closed or replaced by the code it ran (") + what +
                              ")").c_str());
    die(code, what);
  }

  // Reads what the pipe holds now; when it holds nothing, flushes and then blocks.
  void fill_input() {
    auto space = input_.prepare();
    const ssize_t n = ::read(in_, space.data(), space.size());
    if (n > 0) {
      input_.commit(static_cast<std::size_t>(n));
      return;
    }
    if (n == 0) {
      if (!channel_.intact()) input_failed(exit_channel_lost, "the end of the input");
      finish();
    }
    if (errno == EINTR) return;
    if (errno != EAGAIN) input_failed(exit_channel_lost, "reading from the pool failed");
    results_->settle();  // the input ran dry: this is the moment to answer
    give_back_memory();
    pollfd p{in_, POLLIN, 0};
    for (int i = 0; i < idle_yields; ++i) {  // see idle_yields
      sched_yield();
      if (::poll(&p, 1, 0) > 0) return;
    }
    while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
  }

  // max_rss_per_child, before each call: past it, send what is done and end (the pool
  // sends what this worker held but did not start elsewhere). The resident set now, from
  // /proc/self/statm (getrusage's peak would count the parent's, inherited across fork).
  void check_rss() {
    if (statm_ < 0) statm_ = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    char text[128];
    const ssize_t n = statm_ < 0 ? -1 : ::pread(statm_, text, sizeof text - 1, 0);
    if (n <= 0) return;
    text[n] = 0;
    unsigned long long pages = 0, resident = 0;
    if (std::sscanf(text, "%llu %llu", &pages, &resident) != 2) return;
    if (resident * static_cast<unsigned long long>(::sysconf(_SC_PAGESIZE)) <= max_rss_) return;
    results_->flush();
    std::_Exit(exit_rss_limit);  // not exit(): a static destructor that crashed would read as a crash
  }

  // See keep_freed_bytes. Free memory that a trim could not give back (fragments) is not
  // trimmed for again until as much more is free.
  void give_back_memory() {
    const auto now = Clock::now();
    if (now - last_trim_check_ < trim_check_interval) return;
    last_trim_check_ = now;
    if (::mallinfo2().fordblks <= free_after_trim_ + static_cast<std::size_t>(keep_freed_bytes)) return;
    ::malloc_trim(keep_freed_bytes);
    free_after_trim_ = ::mallinfo2().fordblks;
  }

  void read_blocking() {
    for (;;) {
      auto space = input_.prepare();
      const ssize_t n = ::read(in_, space.data(), space.size());
      if (n > 0) return input_.commit(static_cast<std::size_t>(n));
      if (n == 0) std::exit(0);
      if (errno == EAGAIN) {
        pollfd p{in_, POLLIN, 0};
        ::poll(&p, 1, -1);
      } else if (errno != EINTR) {
        input_failed(exit_channel_lost, "reading from the pool failed");
      }
    }
  }

  [[noreturn]] void finish() {
    if (input_.mid_frame()) die(exit_protocol_error, "the pool's input ended inside a frame");
    results_->flush();
    std::exit(0);  // normal exit: the program's static destructors and atexit handlers run
  }

  int in_;
  int out_fd_;
  worker_io::Channel channel_{in_, out_fd_};
  FrameReader input_;
  ArenaView arena_;
  std::optional<ResultStream> results_;
  ClaimGate gate_;  // remote/take_back.hpp, on the shared page
  std::uint64_t started_ = 0, finished_ = 0;
  Clock::time_point last_trim_check_{};
  std::size_t free_after_trim_ = 0;
  std::uint64_t max_rss_ = 0;
  std::size_t shared_results_bytes_ = SIZE_MAX;
  int statm_ = -1;
};

[[noreturn]] void run_worker(const char* marker_text) {
  const std::optional<WorkerMarker> parsed = parse_marker(marker_text);
  if (!parsed) die(exit_bad_setup, "malformed PAREX_WORKER marker");
  const WorkerMarker m = *parsed;
  ::unsetenv(worker_env);  // nested pools in this worker are ordinary pools again
  if (void* p = ::mmap(nullptr, shm_header_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, m.shm_fd, 0); p != MAP_FAILED) {
    static_cast<WorkerShared*>(p)->reached_init.store(1, std::memory_order_release);
    ::munmap(p, shm_header_bytes);
  }
  // The channel fds were inherited across exec; a process the user's code starts
  // (system(), popen) must not inherit them, or it would hold the pipes open and the
  // pool would never see this worker end.
  for (int fd : {m.in_fd, m.out_fd, m.shm_fd, m.arena_fd})
    if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != m.parent) std::_Exit(exit_bad_setup);  // the parent died before prctl
  std::signal(SIGINT, SIG_IGN);
  ::mallopt(M_MMAP_MAX, 0);  // see keep_freed_bytes
  ::mallopt(M_TRIM_THRESHOLD, keep_freed_bytes);
  ::fcntl(m.in_fd, F_SETFL, ::fcntl(m.in_fd, F_GETFL) | O_NONBLOCK);
  try {
    Registry::global().freeze();
  } catch (const std::exception& e) {
    die(exit_bad_setup, e.what());
  }
  // Leaked on purpose: the worker ends with exit(), and the flusher thread must not be
  // destroyed (std::terminate) on the way out.
  (new WorkerLoop(m))->run();
}

}  // namespace
}  // namespace detail

void init(int argc, char** argv) {
  g_initialized.store(true, std::memory_order_release);
  if (const char* marker = std::getenv(detail::worker_env)) detail::run_worker(marker);
  if (const char* marker = std::getenv(detail::process_env)) detail::run_process_child(marker);
  detail::Registry::global().freeze();
  if (detail::mpi_entry) detail::mpi_entry(argc, argv);  // a worker rank never returns
}

}  // namespace parex
