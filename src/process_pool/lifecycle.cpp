// Starting, replacing and stopping workers; shutdown and breaking the pool (see impl.hpp).
#include "process_pool/impl.hpp"

namespace parex {

std::size_t ProcessPoolExecutor::Impl::active_workers() const {
  return static_cast<std::size_t>(std::count_if(workers.begin(), workers.end(), [](auto& w) { return w->active(); }));
}

// Keeps max_workers workers. While stopping, only as long as accepted calls are left:
// a worker that crashes during shutdown hands its unstarted calls back, and they still
// need someone to run them. With idle_timeout, workers start only for calls that wait.
void ProcessPoolExecutor::Impl::ensure_workers() {
  if (respawn_scheduled) return;  // the back-off timer calls again
  if (t_reactor != this) {  // a waiter drives the loop: spawning is the reactor's (loop.cpp)
    reactor_needed = true;
    return;
  }
  const bool on_demand = stopping || options.idle_timeout.count() != 0;
  while (!broken.load(std::memory_order_relaxed) && active_workers() < n_workers &&
         (!on_demand || pending.size() > free_workers()))
    spawn();
}

// Active workers holding nothing (starting, or idle): each will take a waiting call.
std::size_t ProcessPoolExecutor::Impl::free_workers() const {
  return static_cast<std::size_t>(
      std::count_if(workers.begin(), workers.end(), [](auto& w) { return w->active() && w->outstanding.empty(); }));
}

// After a start-up failure: the next worker starts after a back-off (see respawn_backoff_first).
void ProcessPoolExecutor::Impl::respawn_later() {
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

void ProcessPoolExecutor::Impl::spawn() {
  auto w = std::make_shared<WorkerProcess>(io, options.max_frame_bytes);
  detail::SpawnedWorker sp;
  try {
    sp = detail::spawn_worker(arena ? arena->fd() : -1);
  } catch (const std::exception& e) {
    return break_pool(e.what());
  }
  w->child = std::move(sp.child);
  w->pid = sp.pid;
  w->shm_fd = sp.shm_fd;
  if (void* page = ::mmap(nullptr, detail::shm_header_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, sp.shm_fd, 0);
      page != MAP_FAILED)
    w->page = static_cast<detail::WorkerShared*>(page);
  if (sp.pidfd >= 0) w->exit_watch.assign(sp.pidfd);
  w->to.assign(sp.to_fd);
  w->from.assign(sp.from_fd);
  w->to.non_blocking(true);
  w->from.non_blocking(true);
  workers.push_back(w);
  ++spawned;

  // The first frame: the initializer (or none).
  w->writer.begin();
  Buffer& f = w->writer.frame();
  const auto at = detail::begin_frame(f, FrameKind::init);
  f.put_varint(options.max_rss_per_child);
  f.put_varint(w->page ? options.shared_results_bytes : SIZE_MAX);  // no page: nothing to acknowledge with
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
  if (w->phase == WorkerProcess::Phase::dead) return;  // writing broke the pool (a failed respawn)
  w->timer.expires_after(options.handshake_timeout);
  w->timer.async_wait([this, w](const boost::system::error_code& e) {
    if (!e && w->phase == WorkerProcess::Phase::starting) guarded([&] { handshake_timed_out(w); });
  });
  if (w->exit_watch.is_open())
    w->exit_watch.async_wait(asio::posix::stream_descriptor::wait_read, [this, w](const boost::system::error_code& e) {
      if (!e) guarded([&] { on_exit(w); });
    });
  read_more(w);
}

void ProcessPoolExecutor::Impl::handshake_timed_out(const WorkerPtr& w) {
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
void ProcessPoolExecutor::Impl::send_signal(WorkerProcess& w, int sig) noexcept {
  if (w.exit_watch.is_open()) ::syscall(SYS_pidfd_send_signal, w.exit_watch.native_handle(), sig, nullptr, 0);
  else ::kill(w.pid, sig);
}

// The worker's channel ended (EOF, EPIPE): it is exiting, or it closed its fds and lives
// on. With a pidfd, its exit is awaited, so that its own status tells why it went; one
// still alive after exit_grace is killed, and its death is then the pool's doing.
// Without a pidfd it is killed at once, as before.
void ProcessPoolExecutor::Impl::expect_exit(const WorkerPtr& w, std::string why) {
  if (w->channel_ended) return;  // once: the grace period is not extended
  w->channel_ended = true;       // no more calls go to it (pump)
  if (!w->exit_watch.is_open()) {
    if (w->stopped_by_pool.empty()) w->stopped_by_pool = std::move(why);
    w->killed_by_pool = true;
    return send_signal(*w, SIGKILL);
  }
  w->grace.expires_after(exit_grace);
  w->grace.async_wait([this, w, why = std::move(why)](const boost::system::error_code& e) {
    if (e || w->phase == WorkerProcess::Phase::dead || w->exited) return;
    guarded([&] {
      if (w->stopped_by_pool.empty()) w->stopped_by_pool = why + ", and did not exit";
      w->killed_by_pool = true;
      send_signal(*w, SIGKILL);
    });
  });
}

// ---- a worker's end: normal (closing) or not ----------------------------------------
// Idempotent: once reaped, the pid may belong to somebody else and is never signalled.
int ProcessPoolExecutor::Impl::reap(WorkerProcess& w) {
  if (w.reaped) return w.status;
  boost::system::error_code ignored;
  w.to.close(ignored);
  w.from.close(ignored);
  w.timer.cancel();
  w.grace.cancel();
  w.watch.cancel();
  w.idle.cancel();
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

void ProcessPoolExecutor::Impl::discard(const WorkerPtr& w) {
  calls_done += w->calls_done;  // its figures stay in the pool's
  calls_failed += w->calls_failed;
  w->calls_done = w->calls_failed = 0;
  if (w->shm_fd >= 0) ::close(w->shm_fd);
  w->shm_fd = -1;
  if (w->page) ::munmap(w->page, detail::shm_header_bytes);
  w->page = nullptr;
  if (last_answered == w.get()) last_answered = nullptr;
  std::erase(workers, w);
}

// ---- shutdown and breakage ---------------------------------------------------------
void ProcessPoolExecutor::Impl::begin_shutdown(RemoteCall* rest, bool cancel_futures) {
  stopping = true;
  take_rest(rest);
  if (broken.load(std::memory_order_relaxed)) {  // broke between close() and now: nobody will run them
    const auto e = std::make_exception_ptr(BrokenProcessPool(broken_reason));
    for (RemoteCall* c : pending) c->fail_rest(e);
    pending.clear();
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
  ensure_workers();  // calls that came with the shutdown, and no worker (idle_timeout)
  for (auto& w : workers) maybe_close(*w);
  maybe_finish();
}

// terminate_workers / kill_workers: shutdown(wait=false, cancel_futures=true), then the
// signal to every worker. Calls that cannot be cancelled (part of a chunk already ran)
// fail; so do those the workers hold (worker_ended).
void ProcessPoolExecutor::Impl::force_stop(RemoteCall* rest, int sig) {
  stopping = true;
  terminate_signal = sig;
  take_rest(rest);
  const char* by = sig == SIGKILL ? "kill_workers()" : "terminate_workers()";
  const auto e = std::make_exception_ptr(BrokenProcessPool(std::string("the pool was ended by ") + by));
  for (RemoteCall* c : pending) {
    if (c->done == 0 && c->state().cancel()) c->drop();
    else c->fail_rest(e);
  }
  pending.clear();
  for (auto& w : workers) {
    if (w->phase == WorkerProcess::Phase::dead) continue;
    w->stopped_by_pool = std::string("was ended by ") + by;
    send_signal(*w, sig);
  }
  maybe_finish();
}

void ProcessPoolExecutor::Impl::maybe_finish() {
  if (stopping && pending.empty() && workers.empty()) {
    respawn_timer.cancel();
    rebalance_timer.cancel();
    guard.reset();
  }
}

void ProcessPoolExecutor::Impl::break_pool(const std::string& reason) noexcept {
  if (broken.load(std::memory_order_relaxed)) return;
  try {
    broken_reason = reason;
    broken.store(true, std::memory_order_release);
    const auto e = std::make_exception_ptr(BrokenProcessPool(reason));
    for (RemoteCall* c = inbox.close(); c;) {
      RemoteCall* next = c->next;
      in_inbox.fetch_sub(1, std::memory_order_relaxed);
      c->fail_rest(e);
      c = next;
    }
    for (RemoteCall* c : pending) c->fail_rest(e);
    pending.clear();
    auto all = workers;
    for (auto& w : all) {
      w->phase = WorkerProcess::Phase::dead;
      reap(*w);  // first: a live worker may still be reading arguments the calls own
      for (RemoteCall* c : w->outstanding) c->fail_rest(e);
      w->outstanding.clear();
      discard(w);
    }
    respawn_timer.cancel();
    maybe_finish();
  } catch (...) {
    std::fprintf(stderr, "parex: cannot tear down a broken process pool: %s\n", reason.c_str());
    std::abort();
  }
}

}  // namespace parex
