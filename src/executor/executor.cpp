// The Executor base: the parts of submit/map that need no template.
#include <parex/detail/executor/executor_core.hpp>

#include <cstdio>

namespace parex {

Executor::~Executor() = default;

ExecutorStats Executor::stats() { throw InvalidStateError("this executor keeps no statistics"); }

void Executor::post(detail::LocalTask* task) {
  try {
    dispatch(task);
  } catch (...) {
    // Not queued: drop the queue's reference; the caller's future (about to unwind) has the other.
    task->cancel_and_release();
    throw;
  }
}

namespace detail {
[[noreturn]] void throw_map_timeout(std::chrono::nanoseconds timeout) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "map: next result not ready within the %.3g ms timeout",
                std::chrono::duration<double, std::milli>(timeout).count());
  throw TimeoutError(buf);
}

std::exception_ptr map_executor_gone() {
  return std::make_exception_ptr(
      InvalidStateError("map: its executor was destroyed while the map range still had input to submit"));
}
}  // namespace detail

}  // namespace parex
