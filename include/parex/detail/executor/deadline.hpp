// parex/detail/executor/deadline.hpp - per-call deadlines for calls that run in this
// process (CallOptions::timeout, MapOptions::call_timeout on a thread pool).
//
// A thread cannot be stopped, so a deadline here only fails the future: while a timed
// call runs, one process-wide watch thread holds it, and at its deadline completes the
// future with TimeoutError unless the call completed first (both claim the state; one
// wins). The call runs on to its end and its result is dropped. Thread-safe.
#pragma once

#include <parex/detail/future/state.hpp>

#include <chrono>
#include <cstdint>
#include <exception>

namespace parex::detail {

/// Watches one running call: armed by the constructor, disarmed by the destructor. The state must outlive the guard.
class DeadlineGuard {
 public:
  DeadlineGuard(StateBase& state, std::chrono::nanoseconds timeout);
  ~DeadlineGuard();
  DeadlineGuard(const DeadlineGuard&) = delete;
  DeadlineGuard& operator=(const DeadlineGuard&) = delete;

 private:
  std::uint64_t id_ = 0;
  Clock::time_point at_{};
};

/// The TimeoutError of a call past its deadline (one message for every backend).
std::exception_ptr deadline_error(const char* function, std::chrono::nanoseconds timeout, const char* what_then);

}  // namespace parex::detail
