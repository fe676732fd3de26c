// CallOptions' retry policy and the final error of a retried call (see
// detail/executor/call_options.hpp).
#include <parex/detail/executor/call_options.hpp>

#include <string>

namespace parex::detail {

namespace {
// The user's predicate; one that throws says no.
bool asks_retry(const RetryPolicy& p, const std::exception_ptr& e) noexcept {
  try {
    return p.error && p.error(e);
  } catch (...) {
    return false;
  }
}
}  // namespace

bool should_retry(const RetryPolicy& p, const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError&) {
    return false;
  } catch (const WorkerCrashed&) {
    if (p.crash) return true;
  } catch (const TimeoutError&) {
    if (p.timeout) return true;
  } catch (...) {
  }
  return asks_retry(p, e);
}

std::exception_ptr with_attempts(const std::exception_ptr& e, std::size_t n) noexcept {
  if (n < 2) return e;
  try {
    const std::string suffix = " (after " + std::to_string(n) + " attempts)";
    try {
      std::rethrow_exception(e);
    } catch (const WorkerCrashed& w) {
      return std::make_exception_ptr(
          WorkerCrashed(w.what() + suffix, w.pid(), w.signal(), w.exit_code(), w.function()));
    } catch (const TimeoutError& t) {
      return std::make_exception_ptr(TimeoutError(t.what() + suffix));
    } catch (const CancelledError& c) {
      return std::make_exception_ptr(CancelledError(c.what() + suffix));
    } catch (const BrokenProcessPool& b) {
      return std::make_exception_ptr(BrokenProcessPool(b.what() + suffix));
    } catch (const RemoteError& r) {
      return std::make_exception_ptr(RemoteError(r.type(), r.remote_what() + suffix));
    }
  } catch (...) {  // another type (kept as it is), or no memory for the message
  }
  return e;
}

}  // namespace parex::detail
