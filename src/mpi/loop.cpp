// Who runs rank 0's loop (engine.hpp): the progress thread, or a thread that waits for
// one of its calls (drive); submitting, waking and sleeping around that.
#include "mpi/engine.hpp"

#include "remote/driving.hpp"
#include "sync/futex.hpp"

#include <parex/errors.hpp>

#include <algorithm>
#include <cstdio>
#include <pthread.h>
#include <sched.h>

namespace parex::detail::mpi {

namespace {
// How often the watchdogs are looked at.
constexpr auto watchdog_period = std::chrono::milliseconds(100);
// With nothing to do, look again this many times (yielding) before sleeping on the futex:
// a caller that waits for each result submits its next call a few microseconds later,
// and a futex wake-up costs ~30-50 us on a machine whose idle cores sleep deeply.
constexpr int idle_yields = 200;
// While ranks hold calls, the thread polls MPI; a result waits at most this long to be
// noticed after a quiet spell (a long call), at the price of that many wake-ups a second.
constexpr auto max_poll_sleep = std::chrono::microseconds(50);
// A call submitted without waking the loop (will_drive) waits at most this long for a
// thread to drive it, the rare time that the guess is wrong.
constexpr auto deferred_pickup = std::chrono::milliseconds(1);
// A thread's guess that it will drive holds this long after its last drive; the progress
// thread naps timed (deferred_pickup) only that long after any drive.
constexpr auto deferral_window = std::chrono::milliseconds(10);
// The engine whose loop this thread runs: its progress thread, or a thread that drives
// it (Engine::drive) for now.
thread_local const Engine* t_driving = nullptr;
// The engine whose loop this thread drove until its call completed, the last time it
// waited for one, and the engine's missed_ count then (Engine::will_drive).
thread_local const Engine* t_drove = nullptr;
thread_local std::uint32_t t_drove_missed = 0;
thread_local Clock::time_point t_drove_at{};
// Calls in a burst submitted without waking the loop: the loop is woken every this many,
// so that it sends while the submitting thread goes on.
constexpr std::size_t unwoken_calls = 64;
using driving::max_drive;         // remote/driving.hpp: how long and when a waiter drives
using driving::max_driven_calls;
}  // namespace

void Engine::submit(Client& c, RemoteCall* call) {
  if (c.broken.load(std::memory_order_acquire)) throw BrokenExecutor(c.broken_why);
  const std::size_t queued = c.in_inbox.fetch_add(1, std::memory_order_relaxed) + 1;
  switch (c.inbox.push(call)) {
    case Inbox<RemoteCall>::Push::first: {
      const Clock::time_point now = Clock::now();
      if (!will_drive(now)) {
        wake();
        break;
      }
      deferred_.store(true, std::memory_order_seq_cst);
      // Published, then looked (nap announces, then looks: one of the two sees the other):
      // a progress thread about to sleep without a timer is woken.
      if (untimed_nap_.load(std::memory_order_seq_cst)) wake();
      break;
    }
    case Inbox<RemoteCall>::Push::more:
      if (queued % unwoken_calls == 0) wake();  // a burst: the progress thread sends while this thread submits
      break;
    case Inbox<RemoteCall>::Push::closed:
      c.in_inbox.fetch_sub(1, std::memory_order_relaxed);
      throw InvalidStateError("cannot submit after shutdown");
  }
}

// The sleeper stores sleeping_ then looks for work; a waker publishes work, bumps
// wake_seq_, then reads sleeping_ (all seq_cst): one of them sees the other.
void Engine::wake() noexcept {
  wake_seq_.fetch_add(1, std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_seq_cst)) futex_wake(wake_seq_, 1);
}

// Whether this thread will most likely wait for the call it submits now, and drive the
// loop then: it did so last time, less than deferral_window ago, and no guess has been
// wrong since.
bool Engine::will_drive(Clock::time_point now) const noexcept {
  return t_drove == this && t_driving != this && t_drove_missed == missed_.load(std::memory_order_relaxed) &&
         now - t_drove_at < deferral_window;
}

// The latest end of a drive (steady clock ticks), never moving back (nap relies on it).
void Engine::note_drive_end(Clock::time_point t) noexcept {
  const Clock::rep v = t.time_since_epoch().count();
  Clock::rep old = last_drive_end_.load(std::memory_order_relaxed);
  while (old < v && !last_drive_end_.compare_exchange_weak(old, v, std::memory_order_seq_cst)) {
  }
}

bool Engine::on_progress_thread() const noexcept {
  return t_driving == this;
}

void Engine::run() {
  pthread_setname_np(pthread_self(), "parex-mpi");
  t_driving = this;
  Backoff backoff(max_poll_sleep);
  int idle_rounds = 0;
  try {
    for (;;) {
      std::unique_lock loop(loop_, std::try_to_lock);
      if (!loop) {  // a thread waiting for its call drives the loop: sleep until it leaves
        const std::uint32_t seen = wake_seq_.load(std::memory_order_seq_cst);
        sleeping_.store(true, std::memory_order_seq_cst);
        if (driven_.load(std::memory_order_seq_cst)) nap(seen);
        else sched_yield();  // a driver arriving or leaving: it holds the loop a moment more
        sleeping_.store(false, std::memory_order_relaxed);
        backoff.reset();
        idle_rounds = 0;
        continue;
      }
      const bool progressed = step();
      if (stop_seen_ && clients_.empty() && idle()) {
        while (run_posted()) {
        }
        return;
      }
      if (wanted_.load(std::memory_order_relaxed) && wanted_.exchange(false, std::memory_order_relaxed)) {
        // a thread waits to drive
        loop.unlock();
        sched_yield();
        continue;
      }
      if (progressed) {
        backoff.reset();
        idle_rounds = 0;
      } else if (idle() && ++idle_rounds > idle_yields) {
        sleep(loop);
        backoff.reset();
        idle_rounds = 0;
      } else {
        loop.unlock();
        backoff.pause();
      }
    }
  } catch (const std::exception& e) {  // a bug or out of memory: nothing sane is left to do
    std::fprintf(stderr, "parex: the MPI progress thread failed: %s\n", e.what());
    std::abort();
  }
}

bool Engine::step() {
  if (slept_) {
    last_loop_ = polling_since_ = Clock::now();
    slept_ = false;
  }
  bool progressed = take_commands();
  progressed |= drain_inboxes();
  bool drained = false;
  progressed |= receive(drained);
  progressed |= pump();
  const Clock::time_point now = Clock::now();
  progressed |= rebalance(now);
  if (interrupts_waiting_) progressed |= revoke_for_interrupts();
  if (now >= next_deadline_check_) {
    progressed |= check_deadlines(now);
    next_deadline_check_ = now + std::chrono::milliseconds(1);
  }
  // Silence is judged only on a loop that keeps up: after a gap (a long done callback,
  // a long receive, a sleep) every rank is given the benefit of the doubt, and messages
  // still queued are read before anyone is judged.
  if (now - last_loop_ > watchdog_period) {
    for (Rank& r : ranks_) r.heard = std::max(r.heard, now);
    polling_since_ = now;
  }
  last_loop_ = now;
  if (drained && now >= next_watchdog_check_) {
    check_watchdogs(now);
    next_watchdog_check_ = now + watchdog_period;
  }
  finish_clients();
  // Calls held, not those in inboxes: in_inbox is the submitters' line, and reading it at
  // every step slowed a burst of submits.
  std::size_t held = 0;
  for (const auto& c : clients_) held += c->held;
  if (held != held_calls_.load(std::memory_order_relaxed)) held_calls_.store(held, std::memory_order_relaxed);
  return progressed;
}

// Profile (bench_mpi --round-trips, 2-vCPU AMD VM): a round trip was four hand-offs
// between threads that poll (caller, progress thread, rank, progress thread, caller);
// three polling threads shared two cores. The caller that drives hands its call to the
// rank and takes the result itself, while the progress thread sleeps.
bool Engine::drive(const StateBase& waited, const Clock::time_point* deadline) noexcept {
  if (t_driving == this) return false;  // a done callback on a thread that runs the loop already
  // A burst in flight: the progress thread streams it; a waiter taking the loop for each
  // result would cost a wake-up each (bench_mpi's tiny calls: 0.88x). Calls deferred
  // behind this thread's back must not wait for the timer then.
  if (held_calls_.load(std::memory_order_relaxed) > max_driven_calls) {
    if (deferred_.load(std::memory_order_relaxed)) wake();
    return false;
  }
  std::unique_lock loop(loop_, std::try_to_lock);
  if (!loop) {
    wanted_.store(true, std::memory_order_relaxed);  // the progress thread lets go after its step
    return false;
  }
  if (stop_seen_) return false;  // exiting: the progress thread finishes alone
  // A wake() meanwhile (a submit that did not defer, a command, a post) may have woken
  // the progress thread into a loop it could not take: it sleeps again, so the driver
  // passes the wake-up on when it leaves.
  const std::uint32_t seq_before = wake_seq_.load(std::memory_order_seq_cst);
  driven_.store(true, std::memory_order_seq_cst);
  t_driving = this;
  try {
    const Clock::time_point until = Clock::now() + max_drive;
    while (!waited.done()) {
      const bool progressed = step();
      if (waited.done()) break;
      const Clock::time_point now = last_loop_;
      if (now >= until || (deadline && now >= *deadline) || stop_seen_) break;
      if (!progressed) sched_yield();  // the rank may share this core
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parex: the MPI loop failed in a waiting thread: %s\n", e.what());
    std::abort();
  }
  t_driving = nullptr;
  if (waited.done()) {
    t_drove = this;
    t_drove_missed = missed_.load(std::memory_order_relaxed);
    t_drove_at = Clock::now();
    note_drive_end(t_drove_at);
  } else {
    t_drove = nullptr;
  }
  const bool more = !idle() || stop_seen_;
  driven_.store(false, std::memory_order_seq_cst);
  loop.unlock();
  // more: the progress thread polls for what is still out. An untimed nap began before
  // this drive's end was noted: it must nap timed now, for the calls this thread may defer.
  if (more || wake_seq_.load(std::memory_order_seq_cst) != seq_before ||
      untimed_nap_.load(std::memory_order_seq_cst))
    wake();
  return true;
}

void Engine::sleep(std::unique_lock<std::mutex>& loop) {
  const std::uint32_t seen = wake_seq_.load(std::memory_order_seq_cst);
  sleeping_.store(true, std::memory_order_seq_cst);
  bool work = has_commands_.load(std::memory_order_seq_cst);
  for (const auto& c : clients_) work = work || c->inbox.has_items();
  slept_ = true;  // the next step starts the loop's clocks afresh
  loop.unlock();  // a waiting thread may drive meanwhile: it finds the loop free
  if (!work) nap(seen);
  sleeping_.store(false, std::memory_order_relaxed);
}

// Sleeps until woken. A call submitted without a wake-up (will_drive) may wait for a
// thread that does not come: while such calls can be submitted (deferral_window after the
// last drive), look every deferred_pickup, and count a call found waiting as a wrong
// guess, which makes every thread wake the loop again. After that, sleep untimed: the
// sleeper announces it (untimed_nap_) before it looks; a submitter that publishes a
// deferred call, and a driver that notes its end, look at the announcement after: one of
// the two sees the other, and a submitter or driver that sees it wakes the sleeper.
void Engine::nap(std::uint32_t seen) noexcept {
  for (;;) {
    untimed_nap_.store(true, std::memory_order_seq_cst);  // announced, then looked: see submit
    const Clock::time_point now = Clock::now();
    const Clock::time_point last(Clock::duration(last_drive_end_.load(std::memory_order_seq_cst)));
    const bool deferred = deferred_.load(std::memory_order_seq_cst);
    if (!deferred && now - last >= deferral_window) {
      futex_wait(wake_seq_, seen, nullptr);
      untimed_nap_.store(false, std::memory_order_relaxed);
      return;
    }
    untimed_nap_.store(false, std::memory_order_relaxed);
    const std::uint64_t drains = drains_.load(std::memory_order_seq_cst);
    const Clock::time_point until = now + deferred_pickup;
    if (futex_wait(wake_seq_, seen, &until)) return;
    // The same deferred call, seen before a whole pickup period and after it: a wrong guess.
    if (deferred && deferred_.load(std::memory_order_seq_cst) && drains_.load(std::memory_order_seq_cst) == drains) {
      missed_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
}

}  // namespace parex::detail::mpi
