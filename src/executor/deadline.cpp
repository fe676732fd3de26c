// The process-wide watch thread behind DeadlineGuard (see detail/executor/deadline.hpp).
#include <parex/detail/executor/deadline.hpp>
#include <parex/errors.hpp>

#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <pthread.h>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace parex::detail {

namespace {

struct Entry {
  StateBase* state;
  std::chrono::nanoseconds timeout;
};

class Watch {
 public:
  static Watch& get() {
    // Never destroyed: its thread may still wait when the program exits.
    static Watch* w = new Watch;
    return *w;
  }

  std::uint64_t arm(StateBase& s, Clock::time_point at, std::chrono::nanoseconds timeout) {
    std::lock_guard lock(mutex_);
    if (!thread_started_) {
      std::thread([this] { run(); }).detach();
      thread_started_ = true;
    }
    const std::uint64_t id = ++last_id_;
    const bool earliest = entries_.empty() || std::pair{at, id} < entries_.begin()->first;
    entries_.emplace(std::pair{at, id}, Entry{&s, timeout});
    if (earliest) cv_.notify_one();
    return id;
  }

  void disarm(Clock::time_point at, std::uint64_t id) {
    std::lock_guard lock(mutex_);
    entries_.erase(std::pair{at, id});  // gone already if it fired
  }

 private:
  void run() {
    pthread_setname_np(pthread_self(), "parex-deadline");
    std::unique_lock lock(mutex_);
    for (;;) {
      if (entries_.empty()) {
        cv_.wait(lock);
        continue;
      }
      const auto at = entries_.begin()->first.first;
      if (Clock::now() < at) {
        cv_.wait_until(lock, at);
        continue;
      }
      // Expired: held by a producer's reference of ours (not a handle: a handle would make
      // the caller's result() copy instead of move), and completed on a thread of their
      // own: completing runs the future's callbacks, which must hold up neither this
      // thread (other deadlines) nor, by waiting on a deadline, themselves.
      std::vector<Entry> due;
      const auto now = Clock::now();
      while (!entries_.empty() && entries_.begin()->first.first <= now) {
        Entry e = entries_.begin()->second;
        e.state->retain_producer();
        due.push_back(e);
        entries_.erase(entries_.begin());
      }
      lock.unlock();
      try {
        std::thread([due] { complete(due); }).detach();
      } catch (...) {  // no thread to be had: complete them here
        complete(due);
      }
      lock.lock();
    }
  }

  static void complete(const std::vector<Entry>& due) noexcept {
    for (const Entry& e : due) {
      e.state->set_exception(deadline_error(nullptr, e.timeout, "its thread cannot be stopped and runs on"));
      e.state->release_producer();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::pair<Clock::time_point, std::uint64_t>, Entry> entries_;
  std::uint64_t last_id_ = 0;
  bool thread_started_ = false;
};

}  // namespace

DeadlineGuard::DeadlineGuard(StateBase& state, std::chrono::nanoseconds timeout) {
  at_ = Clock::now() + timeout;
  id_ = Watch::get().arm(state, at_, timeout);
}

DeadlineGuard::~DeadlineGuard() {
  if (id_) Watch::get().disarm(at_, id_);
}

std::exception_ptr deadline_error(const char* function, std::chrono::nanoseconds timeout, const char* what_then) {
  const double ms = std::chrono::duration<double, std::milli>(timeout).count();
  char num[32];
  std::snprintf(num, sizeof num, "%g", ms);
  std::string msg = function ? std::string("'") + function + "'" : std::string("the call");
  msg += std::string(" ran past its deadline of ") + num + " ms; " + what_then;
  return std::make_exception_ptr(TimeoutError(msg));
}

}  // namespace parex::detail
