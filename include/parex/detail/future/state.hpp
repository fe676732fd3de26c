// parex/detail/future/state.hpp - the shared state behind Future<T> and Promise<T>.
//
// One allocation per call: executors derive their task objects from State<R>, so the
// future, the callable and its arguments live together. Thread-safety: every member
// function may be called from any thread. The whole state machine is one 32-bit atomic
// word, so completing a future is a single CAS (release) and reading a finished one is a
// single load (acquire); a futex wake is issued only when a waiter has set has_waiters.
//
// Word layout: bits 0-1 status (pending, running, finished, cancelled), then flags.
// Invariant: status leaves pending/running only while cb_lock is clear, so a thread that
// holds cb_lock sees a stable "not done" and can add a callback without losing it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <utility>

namespace parex::detail {

using Clock = std::chrono::steady_clock;

class StateBase;

/// A callback attached to a state. fire() runs once, on the completing thread (or on the
/// adding thread if the state is already done), and is the state's last touch of the
/// node: the node may free itself, or its owner may free it, as soon as fire() has done
/// its work. dispose() runs instead if the state dies unfinished.
struct CallbackNode {
  CallbackNode* next = nullptr;
  /// Fired before the other callbacks: wait() and as_completed() learn of the completion
  /// first, so a user callback that blocks cannot hold them up (Python notifies its
  /// waiters before it invokes callbacks, too).
  bool notify_first = false;
  virtual void fire(StateBase& state) noexcept = 0;
  virtual void dispose() noexcept = 0;

 protected:
  ~CallbackNode() = default;
};

/// Reports an exception that escaped a done callback (to stderr, like Python's logger).
void report_callback_error(std::exception_ptr e) noexcept;

class StateBase {
 public:
  enum : std::uint32_t {
    pending = 0,
    running = 1,
    finished = 2,
    cancelled = 3,
    status_mask = 3,
    has_waiters = 1u << 2,    // someone sleeps on the futex
    has_callbacks = 1u << 3,  // callbacks_ is non-empty
    cb_lock = 1u << 4,        // guards callbacks_
    has_error = 1u << 5,      // finished with error_ set
    claimed = 1u << 6,        // a producer owns the right to complete
    callbacks_running = 1u << 7,  // done, and the callbacks taken at completion still run
  };

  StateBase() noexcept = default;
  StateBase(const StateBase&) = delete;
  StateBase& operator=(const StateBase&) = delete;

  // References: a Future handle counts 1; the producer (the task in a queue, a Promise)
  // counts producer_unit, so that one load tells how many *handles* exist, even in the
  // window where a finished task has not yet dropped its own reference.
  static constexpr std::uint32_t producer_unit = 1u << 24;
  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept { unref(1); }
  void retain_producer() noexcept { refs_.fetch_add(producer_unit, std::memory_order_relaxed); }
  void release_producer() noexcept { unref(producer_unit); }
  /// Future handles alive (the producer's reference not counted).
  std::uint32_t handle_count() const noexcept {
    return refs_.load(std::memory_order_acquire) & (producer_unit - 1);
  }

  std::uint32_t status() const noexcept { return word_.load(std::memory_order_acquire) & status_mask; }
  bool done() const noexcept { return status() >= finished; }
  std::uint32_t word() const noexcept { return word_.load(std::memory_order_acquire); }
  bool failed() const noexcept {
    return (word_.load(std::memory_order_acquire) & has_error) != 0;
  }

  /// pending -> cancelled; true if the state is (now or already) cancelled.
  bool cancel() noexcept;
  /// pending -> running; false if it was cancelled (Python's set_running_or_notify_cancel).
  bool set_running() noexcept;
  /// Future::interrupt: cancels a call not started; a producer that can stop a running
  /// call (a process pool) overrides this. True if the call is cancelled now, or will be
  /// stopped and fail with CancelledError.
  virtual bool interrupt() noexcept { return cancel(); }
  /// Takes the exclusive right to store a result; false if done or already claimed.
  bool try_claim() noexcept;
  /// try_claim for a producer that alone can complete the state from here on (a remote
  /// call once running: only its backend's loop completes it), without the atomic
  /// read-modify-write. Profile (bench_process_pool (a), 2-vCPU AMD VM): with the caller
  /// spinning on the state, try_claim's compare-and-swap missed the cache each time, 8 %
  /// of all samples. False if done or claimed.
  bool sole_claim() const noexcept {
    const std::uint32_t w = word_.load(std::memory_order_relaxed);
    return (w & status_mask) < finished && !(w & claimed);
  }
  /// After try_claim(): stores the exception and completes.
  void finish_with_error(std::exception_ptr e) noexcept {
    error_ = std::move(e);
    complete(true);
  }
  /// claim + store exception + complete; false if someone else completed it first.
  bool set_exception(std::exception_ptr e) noexcept {
    if (!try_claim()) return false;
    finish_with_error(std::move(e));
    return true;
  }

  /// Waits until done or until the deadline (nullptr: forever). Returns done().
  /// Lets drive() work first.
  bool wait_until(const Clock::time_point* deadline) const noexcept;
  /// A producer whose completions come from a loop that a waiting thread may run itself
  /// (the MPI engine) overrides this: it runs that loop on the waiting thread for a while,
  /// if no other thread runs it now, and returns whether it did. Returns false here.
  virtual bool drive(const Clock::time_point* deadline) const noexcept {
    (void)deadline;
    return false;
  }
  /// Once done: waits until the callbacks that completion started have returned (at once
  /// on the thread that runs them). Returns false if the deadline passed first. Moving a
  /// result out waits for this, since callbacks may be reading it.
  bool wait_callbacks(const Clock::time_point* deadline) const noexcept;

  /// Runs node at once if done, else when the state completes.
  void add_callback(CallbackNode* node) noexcept;
  /// Unlinks node if it has not been taken by a completing thread; true if unlinked.
  /// A node that fired is never found again (a done state lists no callbacks), so a
  /// pointer to a node that may already have fired and been freed is safe to pass.
  bool remove_callback(CallbackNode* node) noexcept;
  /// Callbacks waiting for this state to complete (for tests: nothing may pile up).
  std::size_t callback_count() const noexcept;

  const std::exception_ptr& error() const noexcept { return error_; }

 protected:
  virtual ~StateBase();
  /// Publishes the stored value (error=false) or error_ (error=true). Caller claimed.
  void complete(bool error) noexcept;
  bool has_value() const noexcept {
    const auto w = word_.load(std::memory_order_acquire);
    return (w & status_mask) == finished && !(w & has_error);
  }

  std::exception_ptr error_;

 private:
  // Moves to a done status (finished or cancelled) once cb_lock is clear, taking the
  // callback list with it; returns the word seen before, or 0 with ok=false if it lost.
  std::uint32_t transition_to_done(std::uint32_t done_bits, bool only_from_pending, bool& ok) noexcept;
  void after_done(std::uint32_t old) noexcept;
  void run_callbacks() noexcept;
  std::uint32_t lock_callbacks() noexcept;
  void unref(std::uint32_t units) noexcept {
    if (refs_.fetch_sub(units, std::memory_order_acq_rel) == units) delete this;
  }

  mutable std::atomic<std::uint32_t> word_{pending};
  std::atomic<std::uint32_t> refs_{1};  // starts as one handle, adopted by its first owner
  CallbackNode* callbacks_ = nullptr;  // guarded by cb_lock
};

/// The typed state: adds storage for a T (none for void).
template <class T>
class State : public StateBase {
 public:
  State() noexcept {}
  /// Claims and stores a value; false if the state was already completed or claimed.
  template <class... A>
  bool set_value(A&&... a) noexcept {
    if (!try_claim()) return false;
    emplace_claimed(std::forward<A>(a)...);
    return true;
  }
  /// After try_claim(): constructs the value (a throwing constructor becomes the error).
  template <class... A>
  void emplace_claimed(A&&... a) noexcept {
    try {
      ::new (static_cast<void*>(&value_)) T(std::forward<A>(a)...);
    } catch (...) {
      finish_with_error(std::current_exception());
      return;
    }
    complete(false);
  }
  T& value() noexcept { return value_; }

 protected:
  ~State() override {
    if (has_value()) value_.~T();
  }

 private:
  union {
    T value_;
  };
};

template <>
class State<void> : public StateBase {
 public:
  bool set_value() noexcept {
    if (!try_claim()) return false;
    emplace_claimed();
    return true;
  }
  void emplace_claimed() noexcept { complete(false); }
};

/// An owning handle to a state (intrusive reference count).
template <class S>
class StateRef {
 public:
  StateRef() noexcept = default;
  /// Adopts one reference already counted for us.
  static StateRef adopt(S* s) noexcept {
    StateRef r;
    r.s_ = s;
    return r;
  }
  /// Takes a new reference.
  static StateRef share(S* s) noexcept {
    if (s) s->retain();
    return adopt(s);
  }
  StateRef(const StateRef& o) noexcept : s_(o.s_) {
    if (s_) s_->retain();
  }
  StateRef(StateRef&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  StateRef& operator=(StateRef o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~StateRef() {
    if (s_) s_->release();
  }
  S* get() const noexcept { return s_; }
  S* operator->() const noexcept { return s_; }
  explicit operator bool() const noexcept { return s_ != nullptr; }

 private:
  S* s_ = nullptr;
};

}  // namespace parex::detail
