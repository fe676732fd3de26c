// ProcessPoolExecutor: the parent side of the batched channel.
//
//  submit (any thread)                    reactor thread (Boost.Asio, one per pool)
//  ───────────────────                    ──────────────────────────────────────────────────
//  encode args into a RemoteCall   ──▶    drain inbox ──▶ pending (FIFO) ──▶ pump():
//  push on the lock-free inbox            for each ready worker with room: one calls frame
//  (post a wake-up only when it           [header | record | record ...] in one write
//   was empty)                                          │
//                                                       ▼  pipe (1 MiB)           worker process
//                                                      read batch → run items → results buffer
//                                                       ▲  pipe                   (shared memory)
//  future.result() ◀── complete  ◀──  results frame: one outcome per item, in send order;
//                      the future     the front of the worker's outstanding list owns it
//
// One batch's life: calls that pile up while a worker's pipe is busy leave as one frame;
// the worker answers with one frame per burst (see worker/worker.cpp for when it flushes); the
// reactor walks the outcomes in order, completing futures as it goes, without a lock.
//
// Invariants:
//  - Only the thread that runs the loop (the reactor, or a waiter driving it: loop.cpp,
//    under loop_mutex) touches pending, workers and every RemoteCall once it has left the
//    inbox. Submitters touch only the inbox; the futures are atomic on their own.
//  - Each worker runs its input in order, so outcome k of a worker belongs to the k-th
//    item sent to it: the outstanding list needs no ids.
//  - A worker gets work as remote/batching.hpp says, from estimates per function: many
//    tiny calls per frame, one slow call at a time - the rest stay here, cancellable and
//    free to go to whichever worker frees up first. With nothing pending and a worker
//    idle, calls held unclaimed behind a stalled worker's running call are taken back
//    (rebalance.cpp): outcome k still belongs to the k-th item sent, since both sides
//    number items as if the calls taken back had never been sent.
//  - When a worker dies, its shared page tells exactly how far it got (process/shared_page.hpp):
//    finished results are delivered, the running item fails with WorkerCrashed, the rest
//    go back to the front of pending, and a replacement starts. Nothing is run twice.
//  - Large arguments are encoded straight into a shared arena (process/arena.hpp) that workers
//    map read-only; their records carry (offset, length), not the bytes.
//  - Workers are spawned only from the reactor thread: PR_SET_PDEATHSIG fires when the
//    *thread* that forked dies, and this one lives exactly as long as the pool.
#include "process_pool/impl.hpp"

#include <cstdlib>
#include <future>

namespace parex {

// ---- from any thread (submit: loop.cpp) ------------------------------------------------
void ProcessPoolExecutor::Impl::shutdown(bool wait, bool cancel_futures) {
  RemoteCall* rest = inbox.close();
  post_to_loop([this, rest, cancel_futures] { guarded([&] { begin_shutdown(rest, cancel_futures); }); });
  if (!wait) return;
  // Checked before the lock: the owner may hold it, joining the reactor, while a done
  // callback on the reactor calls shutdown too.
  if (runs_loop_here())
    throw InvalidStateError("shutdown(wait=true) called from a done callback on a thread that runs the pool's loop "
                            "(its reactor, or a thread waiting for one of its calls) would wait for itself");
  std::lock_guard lock(join_mutex);
  if (reactor.joinable()) reactor.join();
}

void ProcessPoolExecutor::Impl::end_workers(int sig) {
  RemoteCall* rest = inbox.close();
  post_to_loop([this, rest, sig] { guarded([&] { force_stop(rest, sig); }); });
}

// ---- the reactor thread, or a thread that drives the loop (loop.cpp) -------------
void ProcessPoolExecutor::Impl::drain_inbox() {
  deferred_at.store(0, std::memory_order_relaxed);  // a deferred call is here now (loop.cpp)
  take_rest(inbox.take_all());
  pump();
  if (options.idle_timeout.count() && !pending.empty()) ensure_workers();  // workers on demand
}

// Calls taken from the inbox (a chain) go to the end of pending.
void ProcessPoolExecutor::Impl::take_rest(RemoteCall* chain) {
  std::size_t n = 0;
  for (RemoteCall* c = chain; c; ++n) {
    RemoteCall* next = c->next;
    pending.push_back(c);
    c = next;
  }
  in_inbox.fetch_sub(n, std::memory_order_relaxed);
}

// ---- statistics (Executor::stats) --------------------------------------------------
ExecutorStats ProcessPoolExecutor::Impl::snapshot() const {
  ExecutorStats s;
  s.queued = pending.size() + in_inbox.load(std::memory_order_relaxed);
  s.done = calls_done;
  s.failed = calls_failed;
  s.restarts = spawned > n_workers ? spawned - n_workers : 0;
  for (const WorkerPtr& w : workers) {
    s.running += w->outstanding.size();
    s.done += w->calls_done;
    s.failed += w->calls_failed;
    if (w->phase != WorkerProcess::Phase::dead)
      s.workers.push_back({static_cast<int>(w->pid), w->calls_done, w->calls_failed,
                           std::chrono::microseconds(w->busy_us), -1});
  }
  return s;
}

ExecutorStats ProcessPoolExecutor::Impl::stats() {
  if (runs_loop_here()) return snapshot();  // a done callback: this thread runs the loop
  auto asked = std::make_shared<std::promise<ExecutorStats>>();
  auto answer = asked->get_future();
  {
    std::lock_guard lock(stats_mutex);
    if (reactor_done) return final_stats;
    post_to_loop([this, asked] {
      try {
        asked->set_value(snapshot());
      } catch (...) {  // no memory for the figures: the asker gets the error
        asked->set_exception(std::current_exception());
      }
    });
  }
  // The reactor may end before it gets to the question: then its last figures answer.
  while (answer.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready) {
    std::lock_guard lock(stats_mutex);
    if (reactor_done) return final_stats;
  }
  return answer.get();
}

ProcessPoolExecutor::ProcessPoolExecutor(ProcessPoolOptions options) : Executor(true) {
  if (!initialized()) {
    if (std::getenv(detail::worker_env)) {
      // This is a worker whose main() forgot parex::init: starting a pool here would
      // spawn workers of workers. Say why and leave; the parent reports it.
      std::fprintf(stderr, "parex: this worker process reached a ProcessPoolExecutor without parex::init: %s\n",
                   detail::init_advice);
      std::_Exit(detail::exit_forgot_init);
    }
    throw InvalidStateError(std::string("ProcessPoolExecutor: ") + detail::init_advice);
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
    std::fprintf(stderr, "parex: ProcessPoolExecutor destroyed from a done callback on a thread that runs its loop: %s\n", e.what());
    std::abort();
  }
}

std::size_t ProcessPoolExecutor::max_workers() const noexcept { return impl_->n_workers; }

void ProcessPoolExecutor::dispatch(detail::LocalTask*) {
  throw InvalidStateError("a ProcessPoolExecutor runs registered functions in workers, not local tasks");
}

void ProcessPoolExecutor::dispatch_remote(RemoteCall* call) { impl_->submit(call); }

detail::BlockAllocator* ProcessPoolExecutor::block_allocator() noexcept { return impl_->arena.get(); }

std::size_t ProcessPoolExecutor::adaptive_chunk(const detail::FunctionEntry& fn) const noexcept {
  return impl_->costs.chunk_for(fn.id);
}

void ProcessPoolExecutor::do_shutdown(bool wait, bool cancel_futures) { impl_->shutdown(wait, cancel_futures); }

ExecutorStats ProcessPoolExecutor::stats() { return impl_->stats(); }

void ProcessPoolExecutor::terminate_workers() { impl_->end_workers(SIGTERM); }

void ProcessPoolExecutor::kill_workers() { impl_->end_workers(SIGKILL); }

}  // namespace parex
