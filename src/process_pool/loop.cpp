// Who runs the pool's loop (its Asio handlers): the reactor thread, or a thread that waits
// for one of the pool's calls and drives the loop itself meanwhile (drive). When a waiter
// drives is remote/driving.hpp's policy; this file is how.
//
// The loop runs under loop_mutex. The reactor holds it while it runs handlers and while it
// sleeps in epoll; it lets go while it yields between polls (reactor_idle_yields). A
// waiter takes it then and runs the handlers itself: it sends its call to a worker and
// reads the worker's answer, one hand-off each way instead of four.
//
// While a waiter holds the loop, and while waiters drive (a drive ended less than
// deferral_window ago) and no worker holds a call, the reactor naps instead of sleeping in
// epoll (which would hold the loop): for deferred_pickup at most, then it looks at the
// loop and naps again. Nothing waits on a nap for longer: timers, deaths of idle workers
// and calls no one drives are seen within deferred_pickup. Who wakes it sooner
// (wake_reactor): a submit from a thread that will not drive, a burst, a drive that leaves
// work behind, a post from another thread. With calls out and no waiter driving, it
// sleeps in epoll as before: their results are read as they come.
//
// A thread that drove its last call to the end within deferral_window submits its next
// call without waking the reactor: it will drive that one too (will_drive). A wrong guess
// (the thread waits another way: a callback, as_completed) costs that call up to
// deferred_pickup; the reactor notes it (last_miss), and no thread guesses for
// miss_penalty after.
//
// A future may outlive its pool, and a waiter may find its call not done just before
// the pool that completes it is destroyed: calls name a driver that lives for ever
// (pool_driver), which touches the pool only while the call is not done, and the pool's
// destruction waits for waiters that are in it (wait_for_drivers).
//
// What only the reactor thread may do: spawn a worker (PR_SET_PDEATHSIG follows the thread
// that forked). A driver that comes to a spawn sets reactor_needed and leaves; the reactor
// spawns as soon as it has the loop back. A driver's writes may meet a worker that is gone:
// FrameWriter takes back the SIGPIPE (its thread has not blocked it).
#include "process_pool/impl.hpp"

#include "remote/driving.hpp"
#include "sync/futex.hpp"

namespace parex {

thread_local const ProcessPoolExecutor::Impl* ProcessPoolExecutor::Impl::t_reactor = nullptr;

namespace {
using detail::driving::max_drive;
using detail::driving::max_driven_pool_calls;
// A waiter that finds the reactor yielding tries this many times for the loop: the
// reactor lets go of it for each yield, a microsecond or so after it took it.
constexpr int handoff_tries = 256;
// A nap's length: how late, at most, the reactor sees what no one woke it for while
// waiters drive. Each nap costs it a wake-up: 1000 a second while the window lasts.
constexpr auto deferred_pickup = std::chrono::milliseconds(1);
// A thread's guess that it will drive holds this long after its last drive; the reactor
// naps only that long after any drive.
constexpr auto deferral_window = std::chrono::milliseconds(10);
// A waiter drives only once its thread alone has submitted this many calls in a row: with
// threads submitting side by side, drivers and a napping reactor would take the loop from
// each other and wake each other (4 threads of round trips without this rule: 22.7 us
// each against 19.5; bench_ab.py over bench_process_pool --only g, 11 rounds, 2-vCPU AMD
// VM, 2026-12-08).
constexpr std::uint32_t min_solo_calls = 8;
// After a wrong guess, no thread guesses for this long: a program that waits for every
// other call another way pays deferred_pickup at most once in this long.
constexpr auto miss_penalty = std::chrono::milliseconds(100);
// Calls in a burst submitted while the reactor naps: it is woken every this many, so that
// it sends while the submitting thread goes on.
constexpr std::size_t unwoken_calls = 64;
// The call a thread last drove for until max_drive ran out, or was refused the loop for
// (not for the loop being busy), and when: it waits for it on its futex now, and does not
// look again at each of its yields. (Call objects are reused: the same address later is
// most likely another call, which may be driven.)
constexpr auto give_up_memory = std::chrono::milliseconds(1);
thread_local const void* t_gave_up = nullptr;
thread_local Clock::time_point t_gave_up_at{};
// The pools whose loops this thread runs now, innermost last: its own pool if it is a
// reactor, and the pools it drives (a done callback on one loop may wait for a call of
// another pool, and drive that). Deeper nesting than this does not drive.
constexpr int max_nested_loops = 8;
thread_local const void* t_loops[max_nested_loops];
thread_local int t_loop_count = 0;

// The pool whose loop this thread drove until its call completed, the last time it
// waited for one, and when (will_drive).
thread_local const void* t_drove = nullptr;
thread_local Clock::time_point t_drove_at{};

Clock::rep ticks(Clock::time_point t) noexcept { return t.time_since_epoch().count(); }
Clock::time_point at_ticks(Clock::rep r) noexcept { return Clock::time_point(Clock::duration(r)); }

// A full fence between a store and a later load of another variable (store buffering: the
// waiter's count, then its call's state; the calls' completions, then the counts). TSan
// does not model fences (GCC warns, -Wtsan): left out there, where x86's locked RMW before
// it orders them anyway.
void store_load_fence() noexcept {
#if !defined(__SANITIZE_THREAD__)
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// Waiters between finding their call not done and counting themselves in their pool's
// drivers (PoolDriver). A pool is destroyed only once every call it took is done; then
// withdraw waits until no waiter is in that window, nor counted in its drivers.
std::atomic<int> entering{0};

// Every process pool's calls name this driver: a waiter whose call is not done counts
// itself in the call's pool, which is alive since the call is not done, and drives it.
class PoolDriver final : public detail::CallDriver {
 public:
  bool drive(const detail::StateBase& waited, const Clock::time_point* deadline) noexcept override {
    if (t_gave_up == &waited && Clock::now() - t_gave_up_at < give_up_memory) return false;
    const auto* call = dynamic_cast<const RemoteCall*>(&waited);
    if (!call) return false;
    entering.fetch_add(1, std::memory_order_seq_cst);
    store_load_fence();  // the count, then the call's state
    if (waited.done()) {  // its pool may be gone: not touched
      entering.fetch_sub(1, std::memory_order_release);
      return false;
    }
    auto* pool = static_cast<ProcessPoolExecutor::Impl*>(const_cast<void*>(call->owner));
    pool->drivers.fetch_add(1, std::memory_order_seq_cst);
    entering.fetch_sub(1, std::memory_order_release);
    const bool drove = pool->drive(waited, deadline);
    pool->drivers.fetch_sub(1, std::memory_order_release);  // the last touch of the pool
    return drove;
  }
};
PoolDriver pool_driver;
}  // namespace

// From ~Impl: every call this pool took is done (shutdown waited for them).
void ProcessPoolExecutor::Impl::wait_for_drivers() noexcept {
  store_load_fence();  // the calls' completions, then the counts
  while (entering.load(std::memory_order_seq_cst) != 0 || drivers.load(std::memory_order_seq_cst) != 0)
    sched_yield();
}

bool ProcessPoolExecutor::Impl::runs_loop_here() const noexcept {
  for (int i = 0; i < t_loop_count; ++i)
    if (t_loops[i] == this) return true;
  return false;
}

// ---- submitting and waking (any thread) ------------------------------------------------
void ProcessPoolExecutor::Impl::submit(RemoteCall* c) {
  c->owner = this;            // for Future::interrupt
  c->driver = &pool_driver;  // a thread waiting for it may run the loop (drive)
  t_gave_up = nullptr;       // a new call, perhaps where the call given up on was
  // Calls from several threads at once: the reactor serves them (solo_calls).
  std::uint32_t solo = 0;
  if (const void* me = &t_drove; last_submitter.load(std::memory_order_relaxed) != me) {
    last_submitter.store(me, std::memory_order_relaxed);
    solo_calls.store(0, std::memory_order_relaxed);
  } else if (solo = solo_calls.load(std::memory_order_relaxed); solo < min_solo_calls) {
    solo_calls.store(++solo, std::memory_order_relaxed);
  }
  // Deferred (no wake) only as drive will allow, and marked before the call is in the
  // inbox: a drain that comes first clears the mark, never a later one.
  bool defer = false;
  if (t_drove == this && solo >= min_solo_calls && in_inbox.load(std::memory_order_relaxed) == 0) {
    const Clock::time_point now = Clock::now();
    if ((defer = will_drive(now))) deferred_at.store(std::max<Clock::rep>(ticks(now), 1), std::memory_order_seq_cst);
  }
  // seq_cst: against the reactor's nap, which sets napping and then looks at in_inbox.
  const std::size_t queued = in_inbox.fetch_add(1, std::memory_order_seq_cst) + 1;
  switch (inbox.push(c)) {
    case detail::Inbox<RemoteCall>::Push::first: {
      asio::post(io, [this] { guarded([&] { drain_inbox(); }); });  // wakes a reactor in epoll
      // Not when deferred, nor from a done callback on this pool's loop (it drains the post).
      if (!defer && !runs_loop_here() && napping.load(std::memory_order_seq_cst)) wake_reactor();
      break;
    }
    case detail::Inbox<RemoteCall>::Push::more:
      if (queued % unwoken_calls == 0 && napping.load(std::memory_order_seq_cst)) wake_reactor();
      break;
    case detail::Inbox<RemoteCall>::Push::closed:
      in_inbox.fetch_sub(1, std::memory_order_relaxed);
      if (broken.load(std::memory_order_acquire)) throw BrokenProcessPool(broken_reason);
      throw InvalidStateError("cannot submit after shutdown");
  }
}

bool ProcessPoolExecutor::Impl::will_drive(Clock::time_point now) const noexcept {
  return t_drove == this && now - t_drove_at < deferral_window &&
         now - at_ticks(last_miss.load(std::memory_order_relaxed)) >= miss_penalty;
}

void ProcessPoolExecutor::Impl::wake_reactor() noexcept {
  wake_seq.fetch_add(1, std::memory_order_seq_cst);
  if (napping.load(std::memory_order_seq_cst)) detail::futex_wake(wake_seq, 1);
}

// ---- the reactor thread ----------------------------------------------------------------
// Whether the reactor may nap: no worker holds a call whose results it would be late for
// (results are read by whoever runs the loop, and a nap would leave a worker's answers
// unread for up to deferred_pickup), and waiters drove lately.
bool ProcessPoolExecutor::Impl::holds_nothing() const noexcept {
  return held_calls.load(std::memory_order_relaxed) == 0 && in_inbox.load(std::memory_order_relaxed) == 0;
}

bool ProcessPoolExecutor::Impl::driven_lately() const noexcept {
  return Clock::now() - at_ticks(last_drive_end.load(std::memory_order_relaxed)) < deferral_window;
}

void ProcessPoolExecutor::Impl::note_held() noexcept {
  std::size_t held = pending.size();
  for (const WorkerPtr& w : workers) held += w->outstanding.size();
  held_calls.store(held, std::memory_order_relaxed);
}

std::size_t ProcessPoolExecutor::Impl::run_ready() {
  const std::size_t n = io.poll();
  if (n) note_held();
  return n;
}

void ProcessPoolExecutor::Impl::run() {
  // Writes to a dead worker must fail with EPIPE, not kill the program.
  detail::FrameWriter::block_sigpipe_here();
  pthread_setname_np(pthread_self(), "parex-reactor");
  t_loops[t_loop_count++] = this;  // a new thread: its first entry
  t_reactor = this;
  std::unique_lock lock(loop_mutex);
  guarded([&] { ensure_workers(); });
  bool napped = false;
  while (!io.stopped()) {
    if (reactor_needed) {
      reactor_needed = false;
      guarded([&] {
        ensure_workers();
        pump();
        maybe_finish();
      });
      note_held();
    }
    // The wake sequence is read before each look at the loop: a wake after it (a post, a
    // drive that ends once the loop is let go) ends the nap that may follow.
    std::uint32_t seen = wake_seq.load(std::memory_order_seq_cst);
    if (run_ready()) {
      napped = false;
      continue;
    }
    // Idle: yield a few times looking for more, letting a waiter take the loop meanwhile.
    bool ran = false, taken = false;
    if (!napped) {
      reactor_idle.store(true, std::memory_order_relaxed);
      for (int i = 0; i < reactor_idle_yields && !ran; ++i) {
        lock.unlock();
        sched_yield();
        if (!lock.try_lock()) {
          taken = true;
          break;
        }
        seen = wake_seq.load(std::memory_order_seq_cst);
        ran = reactor_needed || run_ready() != 0;
      }
      reactor_idle.store(false, std::memory_order_relaxed);
    }
    if (ran) continue;
    if (taken || (holds_nothing() && driven_lately())) {
      if (lock.owns_lock()) lock.unlock();
      nap(lock, seen);
      napped = true;
      continue;
    }
    napped = false;
    if (io.run_one() == 0) break;
    note_held();
  }
  lock.unlock();
  std::lock_guard stats_lock(stats_mutex);
  final_stats = snapshot();
  reactor_done = true;
}

// Without the loop: sleeps until woken or deferred_pickup passes, then takes the loop back
// (naps again while a waiter holds it). A call deferred by a thread that did not drive it
// within a nap is a wrong guess (will_drive).
void ProcessPoolExecutor::Impl::nap(std::unique_lock<std::mutex>& lock, std::uint32_t seen) {
  for (bool first = true;; first = false) {
    napping.store(true, std::memory_order_seq_cst);
    // A call submitted (not deferred) after the last look, whose wake came before `seen`
    // was read: no sleep. (Once a waiter holds the loop, it drains the inbox itself.)
    const bool undeferred_work = first && in_inbox.load(std::memory_order_seq_cst) != 0 &&
                                 deferred_at.load(std::memory_order_seq_cst) == 0;
    bool woken = true;
    if (!undeferred_work) {
      const Clock::time_point until = Clock::now() + deferred_pickup;
      woken = detail::futex_wait(wake_seq, seen, &until);
    }
    seen = wake_seq.load(std::memory_order_seq_cst);
    if (!lock.try_lock()) continue;  // still napping: a waker meanwhile wakes the next sleep
    napping.store(false, std::memory_order_relaxed);
    const Clock::rep at = deferred_at.load(std::memory_order_relaxed);
    const Clock::time_point now = Clock::now();
    if (!woken && at != 0 && in_inbox.load(std::memory_order_relaxed) != 0 && now - at_ticks(at) >= deferred_pickup)
      last_miss.store(ticks(now), std::memory_order_relaxed);  // deferred a whole nap ago, still not driven
    return;
  }
}

// ---- a waiting thread ------------------------------------------------------------------
// Through pool_driver, which holds the pool alive meanwhile.
bool ProcessPoolExecutor::Impl::drive(const detail::StateBase& waited, const Clock::time_point* deadline) noexcept {
  if (runs_loop_here() || t_loop_count == max_nested_loops) return false;  // a done callback of this loop
  // Not for this call (the memory spares the pool this thread's next looks while it waits).
  auto refuse = [&] {
    if (napping.load(std::memory_order_seq_cst)) wake_reactor();  // what this thread deferred is its
    t_gave_up = &waited;
    t_gave_up_at = Clock::now();
    return false;
  };
  if (held_calls.load(std::memory_order_relaxed) + in_inbox.load(std::memory_order_relaxed) > max_driven_pool_calls) {
    return refuse();  // a burst is the reactor's
  }
  if (last_submitter.load(std::memory_order_relaxed) != &t_drove ||
      solo_calls.load(std::memory_order_relaxed) < min_solo_calls)
    return refuse();
  std::unique_lock lock(loop_mutex, std::try_to_lock);
  for (int i = 0; !lock && i < handoff_tries && reactor_idle.load(std::memory_order_relaxed); ++i) {
    detail::cpu_relax();
    (void)lock.try_lock();
  }
  if (!lock) return false;
  if (reactor_needed || io.stopped()) {
    lock.unlock();
    wake_reactor();
    return false;
  }
  t_loops[t_loop_count++] = this;
  const std::uint32_t seq_before = wake_seq.load(std::memory_order_seq_cst);
  Clock::time_point now = Clock::now();
  try {
    const Clock::time_point until = now + max_drive;
    for (;;) {
      const std::size_t ran = run_ready();
      if (waited.done() || reactor_needed || io.stopped()) break;
      now = Clock::now();
      if (now >= until || (deadline && now >= *deadline)) break;
      if (!ran) sched_yield();  // the worker may share this core
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parex: the process pool's loop failed in a waiting thread: %s\n", e.what());
    std::abort();
  }
  --t_loop_count;
  const bool done = waited.done();
  if (done) {
    t_drove = this;
    t_drove_at = now;
    last_drive_end.store(ticks(now), std::memory_order_relaxed);
    t_gave_up = nullptr;
  } else {
    t_drove = nullptr;
    t_gave_up = &waited;
    t_gave_up_at = now;
  }
  // Work left behind (other calls out, a spawn, a call not done, a post or wake meanwhile)
  // is the reactor's again.
  const bool more = !done || reactor_needed || io.stopped() ||
                    held_calls.load(std::memory_order_relaxed) + in_inbox.load(std::memory_order_relaxed) != 0 ||
                    wake_seq.load(std::memory_order_seq_cst) != seq_before;
  lock.unlock();
  if (more) wake_reactor();
  return true;
}

}  // namespace parex
