// ThreadPoolExecutor.
//
//   submit ──CAS──▶ inbox (lock-free LIFO) ──exchange──▶ worker i's deque ──pop──▶ run
//                                                          ▲ steal half │
//                                              worker j ───┘            ▼ complete future
//
// Why this shape: a queue with one lock and one wake-up per task collapses as soon as
// there are more runnable threads than cores (a descheduled lock holder stalls everyone,
// and every submit pays a futex wake). Here a submit is one CAS and wakes a worker only
// when the inbox goes from empty to non-empty while someone sleeps. A worker takes the
// whole inbox at once, keeps it in its own deque (one uncontended lock per pop), and wakes
// one sleeper who steals half of it; that one wakes the next while work is left anywhere,
// and so on: wake-ups grow with the number of workers, not with the number of tasks.
//
// Sleeping uses a Dekker pair on (inbox or deque sizes, sleepers): a producer publishes
// work and then reads sleepers; a worker bumps sleepers and then re-reads the work, both
// seq_cst, so at least one of them sees the other and no wake-up is lost.
//
// Ownership: a task in a queue holds one reference to its state; run()/discard() drop it.
#include <parex/thread_pool.hpp>

#include "sync/futex.hpp"
#include "sync/inbox.hpp"
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <mutex>
#include <pthread.h>
#include <sched.h>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace parex {

using detail::LocalTask;

namespace {
using Inbox = detail::Inbox<LocalTask>;
// The pool whose worker this thread is, if any: shutdown(wait=true) from one of its own
// threads must refuse instead of joining itself.
thread_local const void* this_threads_pool = nullptr;
// The pool whose queued tasks this thread is cancelling in shutdown, if any.
thread_local const void* this_threads_cancelling = nullptr;
}  // namespace

struct ThreadPoolExecutor::Impl {
  struct alignas(64) Worker {
    std::mutex mutex;
    std::deque<LocalTask*> queue;      // guarded by mutex; owner pops the front, thieves take the front half
    std::atomic<std::size_t> size{0};  // queue.size(), for lock-free peeking
    std::thread thread;
    // Statistics (stats()): written by this worker only.
    std::atomic<std::size_t> calls{0}, failed{0};
    std::atomic<bool> busy{false};
  };

  explicit Impl(ThreadPoolOptions o) : options(std::move(o)) {
    // Python numbers its pools ("ThreadPoolExecutor-3_0"): names stay unique across pools.
    static std::atomic<unsigned> pools{0};
    if (options.thread_name_prefix.empty())
      options.thread_name_prefix = "parex-" + std::to_string(pools.fetch_add(1, std::memory_order_relaxed));
    const std::size_t n = options.max_workers ? options.max_workers : process_cpu_count();
    workers.reserve(n);
    for (std::size_t i = 0; i < n; ++i) workers.push_back(std::make_unique<Worker>());
  }

  void start() {
    try {
      for (std::size_t i = 0; i < workers.size(); ++i) workers[i]->thread = std::thread([this, i] { worker_main(i); });
    } catch (...) {  // a thread could not start: stop those that did, then report
      stopping.store(true, std::memory_order_seq_cst);
      wake_all();
      for (auto& w : workers)
        if (w->thread.joinable()) w->thread.join();
      throw;
    }
  }

  // ---- producers ---------------------------------------------------------------------
  void push(LocalTask* t) {
    submitted.fetch_add(1, std::memory_order_relaxed);
    switch (inbox.push(t)) {
      case Inbox::Push::first: return wake_one();
      case Inbox::Push::more: return;
      case Inbox::Push::closed:
        submitted.fetch_sub(1, std::memory_order_relaxed);
        throw_closed();
    }
  }

  [[noreturn]] void throw_closed() const {
    if (broken.load(std::memory_order_acquire)) throw BrokenThreadPool(broken_reason);
    throw InvalidStateError("cannot submit after shutdown");
  }

  void wake_one() noexcept {
    if (sleepers.load(std::memory_order_seq_cst) != 0) {
      epoch.fetch_add(1, std::memory_order_seq_cst);
      detail::futex_wake(epoch, 1);
    }
  }
  void wake_all() noexcept {
    epoch.fetch_add(1, std::memory_order_seq_cst);
    detail::futex_wake_all(epoch);
  }

  // ---- workers -----------------------------------------------------------------------
  void worker_main(std::size_t self) {
    this_threads_pool = this;
    const std::string name = options.thread_name_prefix + "_" + std::to_string(self);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    if (options.initializer) {
      try {
        options.initializer();
      } catch (...) {
        // Reported on stderr as Python logs "Exception in initializer:", then the pool breaks.
        const std::string what = detail::describe_exception(std::current_exception());
        std::fprintf(stderr, "parex: exception in the initializer of thread %s: %s\n", name.c_str(), what.c_str());
        break_pool("a thread initializer failed: " + what);
      }
    }
    for (;;) {
      if (LocalTask* t = next_task(self)) {
        run(self, t);
        continue;
      }
      // Stopping: shutdown handed what was queued to a deque before it set the flag, so
      // one more look finds it (a worker that looked before it arrived must not leave it).
      if (stopping.load(std::memory_order_acquire)) {
        if (LocalTask* t = next_task(self)) {
          run(self, t);
          continue;
        }
        return;
      }
      sleep();
    }
  }

  void run(std::size_t self, LocalTask* t) noexcept {
    Worker& me = *workers[self];
    me.busy.store(true, std::memory_order_relaxed);
    const detail::RunOutcome out = t->run();
    if (out == detail::RunOutcome::skipped) skipped.fetch_add(1, std::memory_order_relaxed);
    else me.calls.store(me.calls.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (out == detail::RunOutcome::failed)
      me.failed.store(me.failed.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    me.busy.store(false, std::memory_order_release);
  }

  ExecutorStats stats() const {
    ExecutorStats s;
    std::size_t started = 0;
    for (const auto& w : workers) {
      const std::size_t calls = w->calls.load(std::memory_order_relaxed);
      const bool busy = w->busy.load(std::memory_order_acquire);
      s.workers.push_back({static_cast<int>(::getpid()), calls, w->failed.load(std::memory_order_relaxed), {}, -1});
      s.done += calls;
      s.failed += s.workers.back().failed;
      s.running += busy;
      started += calls + busy;
    }
    // Calls that left without running (cancelled, discarded at shutdown) are not queued.
    const std::size_t gone = skipped.load(std::memory_order_relaxed) + dropped.load(std::memory_order_relaxed);
    const std::size_t all = submitted.load(std::memory_order_relaxed);
    s.queued = all > started + gone ? all - started - gone : 0;
    return s;
  }

  LocalTask* next_task(std::size_t self) {
    Worker& me = *workers[self];
    if (me.size.load(std::memory_order_relaxed) != 0) {
      std::lock_guard lock(me.mutex);
      if (!me.queue.empty()) {
        LocalTask* t = me.queue.front();
        me.queue.pop_front();
        me.size.store(me.queue.size(), std::memory_order_relaxed);
        return t;
      }
    }
    if (LocalTask* first = inbox.take_all()) {
      if (LocalTask* rest = first->next) keep(me, rest);
      else pass_on_the_wake();
      return first;
    }
    return steal(self);
  }

  // The wake-up chain: a worker that took work from elsewhere wakes the next sleeper if
  // any work is left anywhere. Without it, a thief taking the last task of one deque left
  // another deque's tasks behind a worker blocked in a long call while threads slept (n
  // tasks that wait for each other on n threads never all started).
  void pass_on_the_wake() noexcept {
    if (sleepers.load(std::memory_order_seq_cst) != 0 && has_work()) wake_one();
  }

  // Appends a FIFO chain to my deque, then lets a sleeper come and steal from it.
  void keep(Worker& me, LocalTask* chain) {
    {
      std::lock_guard lock(me.mutex);
      for (; chain; chain = chain->next) me.queue.push_back(chain);
      me.size.store(me.queue.size(), std::memory_order_seq_cst);
    }
    wake_one();
  }

  LocalTask* steal(std::size_t self) {
    const std::size_t n = workers.size();
    for (std::size_t k = 1; k < n; ++k) {
      Worker& victim = *workers[(self + k) % n];
      if (victim.size.load(std::memory_order_relaxed) == 0) continue;
      LocalTask* chain = nullptr;
      {
        std::lock_guard lock(victim.mutex);
        const std::size_t take = (victim.queue.size() + 1) / 2;
        if (take == 0) continue;
        // Link the oldest half into a FIFO chain: the thief runs what has waited longest.
        for (std::size_t i = take; i-- > 0;) {
          victim.queue[i]->next = chain;
          chain = victim.queue[i];
        }
        victim.queue.erase(victim.queue.begin(), victim.queue.begin() + static_cast<std::ptrdiff_t>(take));
        victim.size.store(victim.queue.size(), std::memory_order_relaxed);
      }
      if (LocalTask* rest = chain->next) keep(*workers[self], rest);
      else pass_on_the_wake();
      return chain;
    }
    return nullptr;
  }

  bool has_work() const noexcept {
    if (inbox.has_items()) return true;
    for (auto& w : workers)
      if (w->size.load(std::memory_order_seq_cst) != 0) return true;
    return false;
  }

  // Before sleeping, look again for a moment: a caller waiting on a result often submits
  // the next call right away, and catching it awake saves a futex wake and a context
  // switch on both sides. A short spin, then a few yields: on a loaded machine a yield
  // hands the core to the caller instead of burning it. Measured round trips (2 cores,
  // idle / with 2 busy threads): no spin 3.7 / 4.5 us, 256 pauses 0.5 / 10 us, this
  // 0.6 / 0.7-3.4 us.
  static constexpr int yield_before_sleep = 4;
  static constexpr int spin_before_sleep = 32;

  void sleep() noexcept {
    for (int i = 0; i < spin_before_sleep; ++i) {
      detail::cpu_relax();
      if (inbox.has_items() || stopping.load(std::memory_order_relaxed)) return;
    }
    for (int i = 0; i < yield_before_sleep; ++i) {
      sched_yield();
      if (inbox.has_items() || stopping.load(std::memory_order_relaxed)) return;
    }
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    const std::uint32_t e = epoch.load(std::memory_order_seq_cst);
    if (!has_work() && !stopping.load(std::memory_order_seq_cst)) detail::futex_wait(epoch, e, nullptr);
    sleepers.fetch_sub(1, std::memory_order_seq_cst);
  }

  // ---- shutdown ----------------------------------------------------------------------
  // Takes every queued task out of the pool (the inbox, closed for good, and every deque).
  std::vector<LocalTask*> drain_all() {
    std::vector<LocalTask*> out;
    for (LocalTask* t = inbox.close(); t;) {
      LocalTask* next = t->next;
      out.push_back(t);
      t = next;
    }
    for (auto& w : workers) {
      std::lock_guard lock(w->mutex);
      out.insert(out.end(), w->queue.begin(), w->queue.end());
      w->queue.clear();
      w->size.store(0, std::memory_order_relaxed);
    }
    return out;
  }

  void break_pool(std::string reason) {
    std::vector<LocalTask*> queued;
    {
      std::lock_guard lock(stop_mutex);
      if (broken.load(std::memory_order_relaxed)) return;
      broken_reason = std::move(reason);
      broken.store(true, std::memory_order_release);
      queued = drain_all();
      ++cancelling;
      stopping.store(true, std::memory_order_seq_cst);
    }
    wake_all();
    const auto error = std::make_exception_ptr(BrokenThreadPool(broken_reason));
    dropped.fetch_add(queued.size(), std::memory_order_relaxed);
    for (LocalTask* t : queued) t->discard(error);
    std::lock_guard lock(stop_mutex);
    if (--cancelling == 0) cancelled_all.notify_all();
  }

  // No lock is held while tasks are cancelled (their done callbacks run) or while joining:
  // a callback or a task may call shutdown itself, and a worker whose initializer fails
  // calls break_pool while the owner may already be joining it.
  //
  // stop_mutex makes "collect what is queued, then set stopping" one step. Without it, a
  // shutdown(cancel_futures=false) that had closed the inbox but not yet handed its tasks
  // to a deque could be overtaken by a concurrent shutdown or break_pool that set
  // stopping: the workers then found nothing, exited, and the tasks were never run.
  //
  // Cancelling runs done callbacks, which may call shutdown: it happens outside the lock,
  // and a shutdown(wait=true) elsewhere waits for it (cancelling counts those under way),
  // so that when it returns every call submitted before it is done, run or cancelled.
  void shutdown(bool wait, bool cancel_futures) {
    std::vector<LocalTask*> cancelled;
    {
      std::lock_guard lock(stop_mutex);
      if (cancel_futures) {
        cancelled = drain_all();
        ++cancelling;
      } else if (LocalTask* rest = inbox.close()) {
        keep(*workers[0], rest);
      }
      stopping.store(true, std::memory_order_seq_cst);
    }
    wake_all();
    if (cancel_futures) {
      const void* outer = this_threads_cancelling;
      this_threads_cancelling = this;
      dropped.fetch_add(cancelled.size(), std::memory_order_relaxed);
      for (LocalTask* t : cancelled) t->cancel_and_release();
      this_threads_cancelling = outer;
      std::lock_guard lock(stop_mutex);
      if (--cancelling == 0) cancelled_all.notify_all();
    }
    if (!wait) return;
    if (this_threads_pool == this)
      throw InvalidStateError("shutdown(wait=true) called from one of the pool's own threads would wait for itself");
    {
      std::lock_guard lock(join_mutex);
      if (!joined) {
        for (auto& w : workers) w->thread.join();
        joined = true;
      }
    }
    // A callback of a cancellation under way on this thread cannot wait for its end.
    if (this_threads_cancelling == this) return;
    std::unique_lock lock(stop_mutex);
    cancelled_all.wait(lock, [&] { return cancelling == 0; });
  }

  ThreadPoolOptions options;
  alignas(64) Inbox inbox;                             // producers push; workers take all at once
  alignas(64) std::atomic<std::uint32_t> sleepers{0};  // workers inside sleep()
  alignas(64) std::atomic<std::uint32_t> epoch{0};     // futex word: bumped to wake sleepers
  std::atomic<bool> stopping{false};                   // read by every spinning worker
  std::atomic<bool> broken{false};
  // Statistics (stats()), on a line of their own: submitted is bumped by every submit, and
  // beside stopping it cost a spinning worker a cache miss per call.
  alignas(64) std::atomic<std::size_t> submitted{0};  // calls pushed
  std::atomic<std::size_t> skipped{0};                // taken but cancelled meanwhile
  std::atomic<std::size_t> dropped{0};                // discarded or cancelled by shutdown
  std::mutex stop_mutex;      // one shutdown or break_pool at a time hands queued tasks over
  int cancelling = 0;         // shutdowns (or break_pool) failing what they took; guarded by stop_mutex
  std::condition_variable cancelled_all;
  std::string broken_reason;  // written before broken is set (release)
  std::mutex join_mutex;      // one thread joins the workers; others wait for it
  bool joined = false;        // guarded by join_mutex
  std::vector<std::unique_ptr<Worker>> workers;
};

ThreadPoolExecutor::ThreadPoolExecutor(ThreadPoolOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->start();
}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  if (this_threads_cancelling == impl_.get()) {
    // A done callback of a call this pool's shutdown is cancelling: the shutdown would go
    // on inside freed memory.
    std::fputs("parex: ThreadPoolExecutor destroyed by a done callback of its own shutdown\n", stderr);
    std::abort();
  }
  end_map_ranges();
  try {
    impl_->shutdown(true, false);
  } catch (const std::exception& e) {
    // Destroyed from one of its own threads: the thread would run on inside freed memory.
    std::fprintf(stderr, "parex: ThreadPoolExecutor destroyed by one of its own threads: %s\n", e.what());
    std::abort();
  }
}

std::size_t ThreadPoolExecutor::max_workers() const noexcept { return impl_->workers.size(); }

void ThreadPoolExecutor::dispatch(LocalTask* task) { impl_->push(task); }

ExecutorStats ThreadPoolExecutor::stats() { return impl_->stats(); }

void ThreadPoolExecutor::do_shutdown(bool wait, bool cancel_futures) { impl_->shutdown(wait, cancel_futures); }

}  // namespace parex
