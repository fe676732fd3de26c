// Shared test helpers. Every wait in the suite is bounded by deadlock_timeout: a hang
// fails as a TimeoutError (a deadlock), never as a stuck CI job.
#pragma once

#include <parex/parex.hpp>

#ifndef BOOST_TEST_DYN_LINK
#define BOOST_TEST_DYN_LINK  // Debian's Boost.Test is a shared library (STYLE.md, Tests)
#endif
#include <boost/core/demangle.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <source_location>
#include <stdexcept>
#include <thread>
#include <typeinfo>
#include <utility>

namespace test {

using namespace std::chrono_literals;

inline constexpr auto deadlock_timeout = 60s;

/// A one-shot gate: threads block in wait() until open() (bounded by deadlock_timeout).
class Gate {
 public:
  void open() {
    std::lock_guard lock(m_);
    open_ = true;
    cv_.notify_all();
  }
  bool wait() {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, deadlock_timeout, [&] { return open_; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// How many fds this process has open (for leak checks).
inline std::size_t open_fds() {
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"), {}));
}

/// Polls pred until true or deadlock_timeout; returns pred's last value.
template <class Pred>
bool eventually(Pred pred) {
  const auto end = std::chrono::steady_clock::now() + deadlock_timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// Calls fn and returns a copy of the E it throws, for the caller to check (what(), pid(),
/// ...). Fails the test case if fn returns normally; any other exception propagates, and
/// Boost.Test reports it. The copy is an E: a check on the thrown object's dynamic type
/// (typeid, dynamic_cast, std::rethrow_if_nested) needs a try/catch of its own.
///
///   auto e = expect_error<parex::WorkerCrashed>([&] { f.result(deadlock_timeout); });
///   BOOST_TEST(e.signal() == 9);
/// (loc only puts the caller's line in the failure message; callers leave it out.)
template <class E, class F>
E expect_error(F&& fn, std::source_location loc = std::source_location::current()) {
  try {
    (void)std::forward<F>(fn)();
  } catch (const E& e) {
    return e;
  }
  BOOST_FAIL("expected an exception of type " << boost::core::demangle(typeid(E).name()) << ", got none (at "
                                               << loc.file_name() << ":" << loc.line() << ")");
  throw std::logic_error("unreachable: BOOST_FAIL returned");  // BOOST_FAIL throws; the compiler cannot tell
}

}  // namespace test
