// The future's state machine (see detail/future/state.hpp for the word layout) and the
// completion watch behind wait() and as_completed().
//
// Why a futex word instead of std::mutex + std::condition_variable per future: a condvar
// costs ~88 bytes and a lock per completion; here completing is one CAS and a wake-up
// syscall happens only if somebody is actually asleep (has_waiters).
#include <parex/future.hpp>

#include "sync/futex.hpp"
#include "sync/inbox.hpp"

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <sched.h>
#include <string>
#include <unistd.h>

namespace parex::detail {

void report_callback_error(std::exception_ptr e) noexcept {
  try {
    std::fprintf(stderr, "parex: exception in a done callback: %s\n", describe_exception(e).c_str());
  } catch (...) {  // out of memory building the message
    std::fputs("parex: exception in a done callback\n", stderr);
  }
}

namespace {
constexpr bool is_done(std::uint32_t w) noexcept { return (w & StateBase::status_mask) >= StateBase::finished; }
// The states whose callbacks this thread is running, innermost first (see
// wait_callbacks): a callback that completes another future fires that one's callbacks
// inside its own, and any of them may read any of these states' results.
struct FiringFrame {
  const StateBase* state;
  const FiringFrame* outer;
};
thread_local const FiringFrame* firing = nullptr;
bool firing_here(const StateBase* s) noexcept {
  for (const FiringFrame* f = firing; f; f = f->outer)
    if (f->state == s) return true;
  return false;
}
}  // namespace

StateBase::~StateBase() {
  // Callbacks of a state that never completed (every handle dropped): release them.
  for (CallbackNode* n = callbacks_; n;) {
    CallbackNode* next = n->next;
    n->dispose();
    n = next;
  }
}

bool StateBase::set_running() noexcept {
  std::uint32_t old = word_.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint32_t st = old & status_mask;
    if (st != pending) return st == running;
    if (word_.compare_exchange_weak(old, (old & ~status_mask) | running, std::memory_order_acq_rel,
                                    std::memory_order_relaxed))
      return true;
  }
}

bool StateBase::try_claim() noexcept {
  std::uint32_t old = word_.load(std::memory_order_relaxed);
  for (;;) {
    if (is_done(old) || (old & claimed)) return false;
    if (word_.compare_exchange_weak(old, old | claimed, std::memory_order_acquire, std::memory_order_relaxed))
      return true;
  }
}

std::uint32_t StateBase::transition_to_done(std::uint32_t done_bits, bool only_from_pending, bool& ok) noexcept {
  std::uint32_t old = word_.load(std::memory_order_relaxed);
  for (;;) {
    if (old & cb_lock) {  // an add/remove_callback is in its few-instruction window
      cpu_relax();
      old = word_.load(std::memory_order_relaxed);
      continue;
    }
    if (only_from_pending && ((old & status_mask) != pending || (old & claimed))) {
      ok = false;
      return old;
    }
    std::uint32_t nw = (old & ~(status_mask | has_waiters | has_callbacks)) | done_bits;
    if (old & has_callbacks) nw |= cb_lock | callbacks_running;  // we take the list: locked until it is ours
    if (word_.compare_exchange_weak(old, nw, std::memory_order_acq_rel, std::memory_order_relaxed)) {
      ok = true;
      return old;
    }
  }
}

void StateBase::after_done(std::uint32_t old) noexcept {
  if (old & has_waiters) futex_wake_all(word_);
  if (old & has_callbacks) run_callbacks();
}

void StateBase::complete(bool error) noexcept {
  bool ok = false;
  const auto old = transition_to_done(finished | (error ? has_error : 0u), false, ok);
  after_done(old);
}

bool StateBase::cancel() noexcept {
  bool ok = false;
  const auto old = transition_to_done(cancelled, true, ok);
  if (!ok) return (old & status_mask) == cancelled;
  after_done(old);
  return true;
}

void StateBase::run_callbacks() noexcept {
  CallbackNode* list = std::exchange(callbacks_, nullptr);
  word_.fetch_and(~cb_lock, std::memory_order_release);
  // Nodes were pushed at the head: reversed, they run in registration order; waiters'
  // nodes (notify_first) before the users' callbacks.
  CallbackNode* first = nullptr;
  CallbackNode** first_tail = &first;
  CallbackNode* rest = nullptr;
  CallbackNode** rest_tail = &rest;
  for (CallbackNode* n = reverse_chain(list); n;) {
    CallbackNode* next = n->next;
    CallbackNode**& tail = n->notify_first ? first_tail : rest_tail;
    *tail = n;
    tail = &n->next;
    n = next;
  }
  *first_tail = rest;
  *rest_tail = nullptr;
  const FiringFrame frame{this, firing};
  firing = &frame;
  for (CallbackNode* n = first; n;) {
    CallbackNode* next = n->next;  // read first: fire() may free the node
    n->fire(*this);
    n = next;
  }
  firing = frame.outer;
  if (word_.fetch_and(~(callbacks_running | has_waiters), std::memory_order_acq_rel) & has_waiters)
    futex_wake_all(word_);
}

bool StateBase::wait_callbacks(const Clock::time_point* deadline) const noexcept {
  std::uint32_t old = word_.load(std::memory_order_acquire);
  if (!(old & callbacks_running) || firing_here(this)) return true;
  for (int i = 0; i < 16 && (old & callbacks_running); ++i) {
    sched_yield();
    old = word_.load(std::memory_order_acquire);
  }
  while (old & callbacks_running) {
    if (!(old & has_waiters)) {
      if (!word_.compare_exchange_weak(old, old | has_waiters, std::memory_order_acq_rel, std::memory_order_acquire))
        continue;
      old |= has_waiters;
    }
    const bool in_time = futex_wait(word_, old, deadline);
    old = word_.load(std::memory_order_acquire);
    if (!in_time && (old & callbacks_running)) return false;
  }
  return true;
}

std::uint32_t StateBase::lock_callbacks() noexcept {
  std::uint32_t old = word_.load(std::memory_order_relaxed);
  for (;;) {
    if (old & cb_lock) {
      cpu_relax();
      old = word_.load(std::memory_order_relaxed);
      continue;
    }
    if (word_.compare_exchange_weak(old, old | cb_lock, std::memory_order_acquire, std::memory_order_relaxed))
      return old;
  }
}

void StateBase::add_callback(CallbackNode* node) noexcept {
  if (!is_done(word_.load(std::memory_order_acquire))) {
    const auto old = lock_callbacks();
    if (!is_done(old)) {  // status cannot leave "not done" while we hold cb_lock
      node->next = callbacks_;
      callbacks_ = node;
      word_.fetch_or(has_callbacks, std::memory_order_relaxed);
      word_.fetch_and(~cb_lock, std::memory_order_release);
      return;
    }
    word_.fetch_and(~cb_lock, std::memory_order_release);
  }
  node->fire(*this);
}

bool StateBase::remove_callback(CallbackNode* node) noexcept {
  lock_callbacks();
  bool found = false;
  for (CallbackNode** p = &callbacks_; *p; p = &(*p)->next) {
    if (*p == node) {
      *p = node->next;
      found = true;
      break;
    }
  }
  if (!callbacks_) word_.fetch_and(~has_callbacks, std::memory_order_relaxed);
  word_.fetch_and(~cb_lock, std::memory_order_release);
  return found;
}

std::size_t StateBase::callback_count() const noexcept {
  auto& self = const_cast<StateBase&>(*this);
  self.lock_callbacks();
  std::size_t n = 0;
  for (const CallbackNode* p = callbacks_; p; p = p->next) ++n;
  word_.fetch_and(~cb_lock, std::memory_order_release);
  return n;
}

bool StateBase::wait_until(const Clock::time_point* deadline) const noexcept {
  std::uint32_t old = word_.load(std::memory_order_acquire);
  if (is_done(old)) return true;
  if (drive(deadline)) {
    old = word_.load(std::memory_order_acquire);
    if (is_done(old)) return true;
  }
  // A short spin first: a result that lands within a microsecond or two costs no
  // syscalls on either side. Kept short because on small machines the spinner may be
  // stealing the very core that would finish the call.
  for (int i = 0; i < 64; ++i) {
    cpu_relax();
    old = word_.load(std::memory_order_acquire);
    if (is_done(old)) return true;
  }
  // Then a few yields: they give the core away to whoever will complete the future when
  // the machine is busy, and keep this thread awake a little longer when it is not.
  for (int i = 0; i < 16; ++i) {
    sched_yield();
    old = word_.load(std::memory_order_acquire);
    if (is_done(old)) return true;
    if (drive(deadline)) {  // the loop that was busy a moment ago may be free now
      old = word_.load(std::memory_order_acquire);
      if (is_done(old)) return true;
    }
  }
  for (;;) {
    if (!(old & has_waiters)) {
      if (!word_.compare_exchange_weak(old, old | has_waiters, std::memory_order_acq_rel, std::memory_order_acquire)) {
        if (is_done(old)) return true;
        continue;
      }
      old |= has_waiters;
    }
    const bool in_time = futex_wait(word_, old, deadline);
    old = word_.load(std::memory_order_acquire);
    if (is_done(old)) return true;
    if (!in_time) return false;
  }
}

[[noreturn]] void throw_timeout(const char* what, std::chrono::nanoseconds waited) {
  const double ms = std::chrono::duration<double, std::milli>(waited).count();
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s not ready after %.3g ms", what, ms);
  throw TimeoutError(buf);
}

[[noreturn]] void throw_no_state() { throw InvalidStateError("the future has no state (default-constructed or moved from)"); }

void await_done(const StateBase& s, const Timeout& t, const char* what, bool and_callbacks) {
  if (!s.done() || (and_callbacks && (s.word() & StateBase::callbacks_running))) {
    const auto deadline = t.deadline();
    if (!s.wait_until(deadline_ptr(deadline))) throw_timeout(what, t.duration());
    if (and_callbacks && !s.wait_callbacks(deadline_ptr(deadline))) throw_timeout(what, t.duration());
  }
  if (s.status() == StateBase::cancelled) throw CancelledError();
}

// ---------------------------------------------------------------------------------------
// CompletionWatch: one callback node per state, all feeding one queue of indices.
// The nodes' memory belongs to the watch. A completing thread that has taken a node off a
// state's list may still be invoking it when the watch dies, so the destructor waits for
// those in-flight invocations (fired counts them) before freeing the nodes.

struct CompletionWatch::Core {
  struct Node final : CallbackNode {
    Core* core = nullptr;
    std::size_t index = 0;
    void fire(StateBase&) noexcept override {
      std::lock_guard lock(core->mutex);  // the last touch: the watch may be freed once fired is counted
      core->ready.push_back(index);
      ++core->fired;
      core->cv.notify_all();
    }
    void dispose() noexcept override {}
  };
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::size_t> ready;  // completed, not yet handed out; guarded by mutex
  std::size_t head = 0;            // next ready entry to hand out; consumer only
  std::size_t fired = 0;           // nodes invoked so far; guarded by mutex
  std::vector<Node> nodes;
  std::vector<StateBase*> states;
};

CompletionWatch::CompletionWatch(std::vector<StateBase*> states) : core_(std::make_shared<Core>()) {
  core_->states = std::move(states);
  core_->nodes.resize(core_->states.size());
  core_->ready.reserve(core_->states.size());
  for (std::size_t i = 0; i < core_->states.size(); ++i) {
    core_->nodes[i].core = core_.get();
    core_->nodes[i].index = i;
    core_->nodes[i].notify_first = true;
    core_->states[i]->add_callback(&core_->nodes[i]);
  }
}

CompletionWatch::~CompletionWatch() {
  std::size_t removed = 0;
  for (std::size_t i = 0; i < core_->states.size(); ++i)
    if (core_->states[i]->remove_callback(&core_->nodes[i])) ++removed;
  // Every node not removed was taken by a completing thread: wait until it has run.
  std::unique_lock lock(core_->mutex);
  core_->cv.wait(lock, [&] { return core_->fired + removed == core_->states.size(); });
}


std::optional<std::size_t> CompletionWatch::next(const Clock::time_point* deadline) {
  std::unique_lock lock(core_->mutex);
  auto has_ready = [&] { return core_->head < core_->ready.size(); };
  if (!has_ready()) {
    // As wait_until: the loop of a state's producer may run on this thread first
    // (StateBase::drive), when one state alone is not done (a wait for one call; over a
    // burst of calls the producer's own thread streams, and a driver would be in its way).
    // Unlocked: its completion fires a node, which takes the mutex.
    StateBase* pending = nullptr;
    std::size_t n = 0;
    for (StateBase* s : core_->states)
      if (!s->done() && ++n == 1) pending = s;
    if (n == 1) {
      lock.unlock();
      pending->drive(deadline);
      lock.lock();
    }
  }
  if (deadline) {
    if (!core_->cv.wait_until(lock, *deadline, has_ready)) return std::nullopt;
  } else {
    core_->cv.wait(lock, has_ready);
  }
  return core_->ready[core_->head++];
}

}  // namespace parex::detail
