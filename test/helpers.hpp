// Shared test helpers. Every wait in the suite is bounded by deadlock_timeout: a hang
// fails as a TimeoutError (a deadlock), never as a stuck CI job.
#pragma once

#include <parex/parex.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

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

}  // namespace test
