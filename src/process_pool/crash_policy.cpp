// What a worker's death means for the calls it held and for the pool (see impl.hpp).
#include "process_pool/impl.hpp"

namespace parex {

namespace detail {
std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::sigdescr_np(sig);
    return "was killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
  }
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  return "ended (status " + std::to_string(status) + ")";
}
}  // namespace detail

// Delivers results a dead worker computed but had not sent; returns how far it got.
ProcessPoolExecutor::Impl::Progress ProcessPoolExecutor::Impl::salvage(WorkerProcess& w) {
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

void ProcessPoolExecutor::Impl::worker_ended(const WorkerPtr& wp) {
  WorkerProcess& w = *wp;
  const auto phase = w.phase;
  w.phase = WorkerProcess::Phase::dead;
  const int status = reap(w);
  const std::string how = "worker process " + std::to_string(w.pid) + " " +
                          (w.stopped_by_pool.empty() ? detail::describe_status(status) : w.stopped_by_pool);

  if (phase == WorkerProcess::Phase::starting || phase == WorkerProcess::Phase::initializing)
    return ended_starting(wp, phase, status, how);
  const Progress p = salvage(w);
  // 1. Items it finished whose results the shared buffer could not give back: failed,
  //    never re-run (they did run).
  const auto lost = std::make_exception_ptr(BrokenProcessPool(how + "; the results of calls it finished were lost"));
  while (w.received < p.finished && !w.outstanding.empty()) fail_front(w, lost);
  // 2. The item it was running: exactly that one fails.
  //    Stopped by the pool for it (a deadline, an interrupt): TimeoutError or CancelledError.
  if (p.started > p.finished && w.received == p.finished && !w.outstanding.empty()) {
    RemoteCall& c = *w.outstanding.front();
    auto e = w.stopped_for_call ? stopped_call_error(w, c, p.finished, how) : nullptr;
    if (!e) {
      const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      e = std::make_exception_ptr(
          WorkerCrashed(how + " while running '" + c.fn->name + "'", w.pid, sig, code, c.fn->name));
    }
    fail_front(w, e);
  }
  fail_interrupted(w);  // however it ended: an interrupted call is never sent again
  if (terminate_signal) {  // terminate_workers: what it held fails, nothing is re-sent
    const auto e = std::make_exception_ptr(BrokenProcessPool(how));
    for (RemoteCall* c : w.outstanding) c->fail_rest(e);
    w.outstanding.clear();
  }
  // (A worker that ended itself past max_rss_per_child, between calls, is no crash.)
  const bool rss_retired = WIFEXITED(status) && WEXITSTATUS(status) == detail::exit_rss_limit;
  if (p.started == p.finished && w.received == p.finished && !w.outstanding.empty() && !w.stopped_for_call &&
      !rss_retired && !died_idle(w, status, how))
    return;
  // 3. What it held but had not started goes back to the front of the queue, in order.
  for (auto it = w.outstanding.rbegin(); it != w.outstanding.rend(); ++it) pending.push_front(*it);
  w.outstanding.clear();
  discard(wp);
  ensure_workers();
  pump();
  maybe_finish();
}

// A worker that died before its handshake: judged by startup_verdict; replaced, or the
// pool breaks.
void ProcessPoolExecutor::Impl::ended_starting(const WorkerPtr& wp, WorkerProcess::Phase phase, int status,
                                               const std::string& how) {
  WorkerProcess& w = *wp;
  const bool reached = reached_init(w);
  discard(wp);
  // Told to stop before it was up, or ended by terminate_workers: fine.
  if (w.input_closed || terminate_signal) return maybe_finish();
  // An initializer that fails or crashes breaks the pool, as in Python; a kill from
  // outside is a start-up failure like any other.
  if (phase == WorkerProcess::Phase::initializing && init_fn && (!killed_from_outside(status) || w.killed_by_pool))
    return break_pool(how + " while running the initializer");
  if (const auto why = startup_verdict(w, status, reached)) return break_pool(how + " before the handshake: " + *why);
  ++startup_failures;
  respawn_later();
  maybe_finish();
}

// It died between calls, holding some (nothing of the user's ran). The calls go out
// again (true); unless it could not read what we sent (a protocol failure: every worker
// would; the pool breaks, false), or workers keep dying this way (the first call fails).
bool ProcessPoolExecutor::Impl::died_idle(WorkerProcess& w, int status, const std::string& how) {
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == detail::exit_protocol_error || code == detail::exit_bad_setup) {
    break_pool(how + " while receiving calls: it could not read what the pool sent (its message is on stderr)");
    return false;
  }
  if (++idle_deaths >= max_idle_deaths) {
    idle_deaths = 0;
    const auto& name = w.outstanding.front()->fn->name;
    const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    const std::string why = code == detail::exit_no_memory ? " (out of memory receiving its calls)" : "";
    fail_front(w, std::make_exception_ptr(WorkerCrashed(how + why + " before starting '" + name + "'; " +
                                                            std::to_string(max_idle_deaths) +
                                                            " workers in a row died holding this call, unstarted",
                                                        w.pid, sig, code, name)));
  }
  return true;
}

// Whether a worker that died before its handshake shows that this program cannot start
// workers (the reason, then), or may have been killed from outside (nullopt: retry).
std::optional<std::string> ProcessPoolExecutor::Impl::startup_verdict(const WorkerProcess& w, int status, bool reached) {
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
std::optional<std::string> ProcessPoolExecutor::Impl::startup_crash() {
  if (++startup_crashes < max_startup_crashes) return std::nullopt;
  return std::to_string(max_startup_crashes) + " workers in a row crashed while starting (a crash in a static "
         "constructor, or before parex::init?)";
}

// Signals that a process does not send itself by crashing: somebody ended it.
bool ProcessPoolExecutor::Impl::killed_from_outside(int status) noexcept {
  if (!WIFSIGNALED(status)) return false;
  const int sig = WTERMSIG(status);
  return sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGHUP;
}

// Whether w's process got as far as parex::init (it marks the shared page there).
bool ProcessPoolExecutor::Impl::reached_init(const WorkerProcess& w) const {
  if (w.shm_fd < 0) return false;
  void* p = ::mmap(nullptr, detail::shm_header_bytes, PROT_READ, MAP_SHARED, w.shm_fd, 0);
  if (p == MAP_FAILED) return false;
  const bool r = static_cast<const detail::WorkerShared*>(p)->reached_init.load(std::memory_order_acquire) != 0;
  ::munmap(p, detail::shm_header_bytes);
  return r;
}

}  // namespace parex
