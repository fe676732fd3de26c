// parex/detail/executor/call_options.hpp - CallOptions: a deadline and retries for one
// call, on every executor (submit(parex::CallOptions{...}, fn, args...)).
#pragma once

#include <parex/errors.hpp>
#include <parex/future.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>

namespace parex {

/// Which failures a call with CallOptions::retries is tried again after. A cancellation
/// (cancel, interrupt, shutdown) is never retried.
struct RetryPolicy {
  /// WorkerCrashed: the worker process running the call died.
  bool crash = true;
  /// TimeoutError: the call ran past CallOptions::timeout.
  bool timeout = true;
  /// Any other exception: tried again if this says so (parex::exception_is<E...>).
  std::function<bool(const std::exception_ptr&)> error{};
};

/// True if e is one of E... (or derived from one): RetryPolicy{.error = parex::exception_is<MyError>}.
template <class... E>
bool exception_is(const std::exception_ptr& e) noexcept {
  if (!e) return false;
  bool match = false;
  auto test = [&]<class X>() {
    if (match) return;
    try {
      std::rethrow_exception(e);
    } catch (const X&) {
      match = true;
    } catch (...) {
    }
  };
  (test.template operator()<E>(), ...);
  return match;
}

/// Options of one call: Executor::submit(CallOptions{...}, fn, args...).
struct CallOptions {
  /// How long the call may run, counted from its start (not from submit). Past it the
  /// future fails with TimeoutError. A process pool stops the worker that runs it
  /// (SIGTERM, then SIGKILL after ProcessPoolOptions::stop_grace) and starts another; the
  /// calls that worker held but had not started run elsewhere. A thread cannot be
  /// stopped: a thread pool fails the future at the deadline and the call runs on.
  Timeout timeout{};
  /// Tries after the first one, for idempotent calls (see RetryPolicy). The arguments are
  /// kept (copied) for them. The final error is the last attempt's, and for parex's own
  /// errors its message ends with how many attempts were made.
  std::size_t retries = 0;
  RetryPolicy retry{};
};

namespace detail {
/// A deadline as calls carry it: 0 is none, a zero timeout is the shortest one.
inline std::chrono::nanoseconds deadline_of(const Timeout& t) noexcept {
  if (!t.finite()) return std::chrono::nanoseconds(0);
  return t.duration().count() > 0 ? t.duration() : std::chrono::nanoseconds(1);
}
/// Whether a failed attempt is tried again under policy p.
bool should_retry(const RetryPolicy& p, const std::exception_ptr& e) noexcept;
/// The final error of a call tried n times: parex's own errors say so in their message.
std::exception_ptr with_attempts(const std::exception_ptr& e, std::size_t n) noexcept;
}  // namespace detail

}  // namespace parex
