// Stopping a running call: a call's deadline (CallOptions::timeout, MapOptions::
// call_timeout) and Future::interrupt. A running call cannot be taken back from a process,
// so its worker is stopped (SIGTERM, then SIGKILL after stop_grace) and replaced at once;
// worker_ended (crash_policy.cpp) then fails that call with TimeoutError or CancelledError,
// delivers what the worker finished and sends the calls it had not started elsewhere.
//
// Deadlines are watched without a message per item: a worker stamps the start of each
// item of a timed call in its shared page (started_ns, then started), and one timer per
// worker wakes at the earliest moment a call it holds could pass its deadline: the
// running item's start plus its timeout, or now plus the timeout of one not started.
#include "process_pool/impl.hpp"

#include <parex/detail/executor/deadline.hpp>

#include <atomic>
#include <unordered_set>
#include <utility>

namespace parex {

namespace {
// How often the watch looks at a worker holding an interrupted call that has not started
// (it runs behind another call), and the shortest wait for a timed one not started.
constexpr auto interrupt_poll = std::chrono::milliseconds(1);
constexpr auto min_watch_poll = std::chrono::milliseconds(1);
// The pools alive in this process: Future::interrupt reaches a pool only through here,
// under this mutex, so that a pool being destroyed is never posted to.
std::mutex pools_mutex;
std::unordered_set<const void*>& pools() {
  static auto* p = new std::unordered_set<const void*>;  // never destroyed: pools may outlive main
  return *p;
}
}  // namespace

void ProcessPoolExecutor::Impl::enroll() {
  std::lock_guard lock(pools_mutex);
  pools().insert(this);
}

void ProcessPoolExecutor::Impl::withdraw() noexcept {
  {
    std::lock_guard lock(pools_mutex);
    pools().erase(this);
  }
  wait_for_drivers();  // loop.cpp
}

namespace {
std::atomic<detail::InterruptHook> other_backend{nullptr};
}  // namespace

void detail::set_interrupt_hook(InterruptHook hook) noexcept { other_backend.store(hook, std::memory_order_release); }

// From the thread that called Future::interrupt: the pool decides on its reactor thread.
bool detail::request_interrupt(RemoteCall& c) noexcept {
  try {
    std::unique_lock lock(pools_mutex);
    if (!c.owner || !pools().contains(c.owner)) {
      lock.unlock();
      const InterruptHook other = other_backend.load(std::memory_order_acquire);
      return c.owner && other && other(c);
    }
    auto* impl = static_cast<ProcessPoolExecutor::Impl*>(const_cast<void*>(c.owner));
    if (impl->broken.load(std::memory_order_acquire)) return false;
    // The reference keeps the call alive until the reactor has looked (a handler never
    // run is destroyed with the io_context, releasing it). A producer's reference, not a
    // handle: a handle would make the caller's result() copy instead of move.
    struct Keep {
      StateBase* s;
      explicit Keep(StateBase* p) noexcept : s(p) { s->retain_producer(); }
      Keep(Keep&& o) noexcept : s(std::exchange(o.s, nullptr)) {}
      ~Keep() {
        if (s) s->release_producer();
      }
    };
    impl->post_to_loop([impl, &c, keep = Keep(&c.state())] { impl->guarded([&] { impl->interrupt(&c); }); });
    return true;
  } catch (...) {  // no memory for the handler
    return false;
  }
}

void ProcessPoolExecutor::Impl::interrupt(RemoteCall* c) {
  if (c->state().done()) return;
  if (auto it = std::find(pending.begin(), pending.end(), c); it != pending.end()) {
    pending.erase(it);  // sent once, back after a crash: it ran, so cancel() could not
    ++calls_done, ++calls_failed;
    return c->fail_rest(std::make_exception_ptr(CancelledError("the call was interrupted")));
  }
  for (const WorkerPtr& w : workers) {
    if (std::find(w->outstanding.begin(), w->outstanding.end(), c) == w->outstanding.end()) continue;
    // Its worker may be running another call: the watch stops the worker once one of its
    // items runs (at once, if one does), and a call that finishes first keeps its result.
    c->interrupted = true;
    return check_deadlines(w);
  }
}

void ProcessPoolExecutor::Impl::watch_deadline(const WorkerPtr& wp, Clock::time_point at) {
  WorkerProcess& w = *wp;
  if (at >= w.watch_at || w.stopped_for_call) return;
  w.watch_at = at;
  w.watch.expires_at(at);  // cancels the wait for a later moment
  w.watch.async_wait([this, wp](const boost::system::error_code& e) {
    if (!e) guarded([&] { check_deadlines(wp); });
  });
}

void ProcessPoolExecutor::Impl::check_deadlines(const WorkerPtr& wp) {
  WorkerProcess& w = *wp;
  w.watch_at = Clock::time_point::max();
  if (w.phase == WorkerProcess::Phase::dead || w.stopped_for_call) return;
  if (!w.page) {  // its mapping failed at spawn: a worker nobody can watch is stopped
    return stop_worker(wp, "was stopped: its shared page could not be mapped to watch its deadlines");
  }
  const auto now = Clock::now();
  const std::uint64_t started = w.page->started.load(std::memory_order_acquire);
  const std::uint64_t finished = w.page->finished.load(std::memory_order_acquire);
  auto next = Clock::time_point::max();
  std::uint64_t first = w.received;  // the worker's number of the call's first item not received
  for (RemoteCall* c : w.outstanding) {
    const std::uint64_t end = first + (c->count - c->done);
    const bool runs = started > finished && finished >= first && finished < end;  // its item `finished` runs
    if (c->interrupted && finished < end) {
      if (runs) return stop_worker(wp, "was stopped: its call '" + c->fn->name + "' was interrupted");
      next = std::min(next, now + interrupt_poll);  // not started: looked at again soon
    }
    if (c->timeout.count() && finished < end) {
      if (runs) {
        // A stamp newer than that item's start (it moved on meanwhile) only delays this.
        const Clock::time_point t0{Clock::duration(w.page->started_ns.load(std::memory_order_relaxed))};
        if (now - t0 >= c->timeout) {
          w.deadline_item = finished;
          const double ms = std::chrono::duration<double, std::milli>(c->timeout).count();
          return stop_worker(wp, "was stopped: '" + c->fn->name + "' ran past its deadline of " +
                                     std::to_string(static_cast<long long>(ms + 0.5)) + " ms");
        }
        next = std::min(next, t0 + c->timeout);
      } else {  // not started yet: not before now (and never a busy poll)
        next = std::min(next, now + std::max<Clock::duration>(c->timeout, min_watch_poll));
      }
    }
    first = end;
  }
  if (next != Clock::time_point::max()) watch_deadline(wp, next);
}

// The worker gets no more calls, a replacement starts now, and it is signalled.
void ProcessPoolExecutor::Impl::stop_worker(const WorkerPtr& wp, std::string why) {
  WorkerProcess& w = *wp;
  if (w.phase == WorkerProcess::Phase::dead || w.stopped_for_call) return;
  w.stopped_for_call = true;
  w.channel_ended = true;
  w.killed_by_pool = true;
  if (w.stopped_by_pool.empty()) w.stopped_by_pool = std::move(why);
  if (w.phase == WorkerProcess::Phase::ready) w.phase = WorkerProcess::Phase::retiring;
  w.watch.cancel();
  send_signal(w, SIGTERM);
  w.grace.expires_after(options.stop_grace);
  w.grace.async_wait([this, wp](const boost::system::error_code& e) {
    if (e || wp->phase == WorkerProcess::Phase::dead || wp->exited) return;
    guarded([&] { send_signal(*wp, SIGKILL); });
  });
  ensure_workers();
}

// What the item that a stopped worker was running fails with.
std::exception_ptr ProcessPoolExecutor::Impl::stopped_call_error(const WorkerProcess& w, RemoteCall& c,
                                                                 std::uint64_t item, const std::string& how) const {
  if (c.interrupted) return std::make_exception_ptr(CancelledError("the call was interrupted; " + how));
  if (item == w.deadline_item)
    return detail::deadline_error(c.fn->name.c_str(), c.timeout,
                                  ("worker process " + std::to_string(w.pid) + " was stopped").c_str());
  return nullptr;  // stopped for another call's sake: a crash like any other
}

// After the running item: interrupted calls the stopped worker held fail, not re-sent.
void ProcessPoolExecutor::Impl::fail_interrupted(WorkerProcess& w) {
  std::deque<RemoteCall*> keep;
  std::vector<RemoteCall*> gone;
  for (RemoteCall* c : w.outstanding) {
    if (c->interrupted) gone.push_back(c);
    else keep.push_back(c);
  }
  if (gone.empty()) return;
  w.outstanding.swap(keep);
  const auto e = std::make_exception_ptr(CancelledError("the call was interrupted"));
  calls_done += gone.size(), calls_failed += gone.size();
  for (RemoteCall* c : gone) c->fail_rest(e);
}

}  // namespace parex
