// Tools of the fault campaign (test_faults*.cpp): which processes this one has started,
// how many descriptors it holds, round counts and the seed from the environment, and a
// watchdog for the one wait that takes no timeout (a pool's destructor), so that a hang
// fails the run with a message instead of sticking until CTest's timeout.
//
//   PAREX_FAULT_ROUNDS  multiplies every case's rounds (default 1; the soak sets 100)
//   PAREX_FAULT_POOLS   pools created and destroyed by many_pools_... (default 50)
//   PAREX_FAULT_SEED    the random seed (default: a fresh one; each case logs its own)
#pragma once

#include "support/processes.hpp"

#include "support/helpers.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <csignal>
#include <fcntl.h>
#include <sys/wait.h>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace faults {

using test::children;
using test::process_state;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline std::size_t env_count(const char* name, std::size_t fallback) {
  const char* s = std::getenv(name);
  return s && *s ? static_cast<std::size_t>(std::stoull(s)) : fallback;
}

/// A case's rounds: its default share times PAREX_FAULT_ROUNDS.
inline std::size_t rounds(std::size_t per_unit) { return per_unit * env_count("PAREX_FAULT_ROUNDS", 1); }

/// PAREX_FAULT_SEED, or a fresh seed; log it (BOOST_TEST_MESSAGE) to replay a failure.
inline std::uint32_t seed() {
  if (const char* s = std::getenv("PAREX_FAULT_SEED"); s && *s) return static_cast<std::uint32_t>(std::stoul(s));
  return std::random_device{}();
}

inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Not running any more: gone, or a zombie waiting for whoever adopted it.
inline bool gone(int pid) {
  const char s = process_state(pid);
  return s == 0 || s == 'Z' || s == 'X';
}

/// The children still here (a pool that was just destroyed should have left none): each
/// is SIGKILLed and reaped, so that one leak does not spill into the next round.
inline std::vector<int> leftovers() {
  auto left = children();
  for (int pid : left) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  return left;
}

inline std::string pid_list(const std::vector<int>& pids) {
  std::string s;
  for (int p : pids) s += (s.empty() ? "" : " ") + std::to_string(p);
  return "[" + s + "]";
}

inline std::size_t open_fds() {
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"), {}));
}

/// Polls pred every millisecond for at most `limit`; returns its last value.
template <class Pred>
bool within(Clock::duration limit, Pred pred) {
  const auto end = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > end) return pred();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// Where messages that must be seen go while StderrCapture holds fd 2.
inline std::atomic<int>& real_stderr() {
  static std::atomic<int> fd{2};
  return fd;
}

/// Ends the whole run (exit code 124) with `what` on stderr unless disarmed (destroyed)
/// within `limit`: for the waits that cannot time out themselves, such as a pool's
/// destructor or a join. A hang is then a failure that names itself.
class Watchdog {
 public:
  explicit Watchdog(std::string what, Clock::duration limit = test::deadlock_timeout)
      : what_(std::move(what)), thread_([this, limit] {
          std::unique_lock lock(m_);
          if (!cv_.wait_for(lock, limit, [&] { return disarmed_; })) {
            const std::string msg =
                "\nfaults: HANG: " + what_ + " did not finish within " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(limit).count()) + " s\n";
            if (::write(real_stderr().load(), msg.data(), msg.size()) < 0) {
            }
            std::_Exit(124);
          }
        }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      std::lock_guard lock(m_);
      disarmed_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::string what_;
  std::mutex m_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  std::thread thread_;  // last: started once the members it reads exist
};

/// Sends this process's stderr (fd 2, which workers and host programs inherit) to a
/// temporary file until finish(), which restores it, echoes what was written and returns
/// it: a case can then assert that the pool never complained ("parex: ..." lines).
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    char path[] = "/tmp/parex_faults_stderr_XXXXXX";
    file_ = ::mkostemp(path, O_CLOEXEC);
    if (file_ < 0) return;
    ::unlink(path);
    saved_ = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (saved_ < 0 || ::dup2(file_, 2) < 0) {
      ::close(file_);
      file_ = -1;
      return;
    }
    real_stderr() = saved_;
  }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;
  ~StderrCapture() { finish(); }

  std::string finish() {
    if (file_ < 0) return text_;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    real_stderr() = 2;
    ::close(saved_);
    char buf[4096];
    for (off_t at = 0;;) {
      const ssize_t n = ::pread(file_, buf, sizeof buf, at);
      if (n <= 0) break;
      text_.append(buf, static_cast<std::size_t>(n));
      at += n;
    }
    ::close(file_);
    file_ = -1;
    if (!text_.empty() && ::write(2, text_.data(), text_.size()) < 0) {
    }
    return text_;
  }

  /// The lines the library wrote ("parex: ...", "parex worker ...").
  static std::string complaints(const std::string& text) {
    std::string out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
      if (line.find("parex:") != std::string::npos || line.find("parex worker") != std::string::npos)
        out += line + "\n";
    return out;
  }

 private:
  int file_ = -1;
  int saved_ = -1;
  std::string text_;
};

/// The suite's fixture: each case runs with stderr captured and fails if the library
/// complained there (a bad frame, a failed teardown, a worker's own message): none of the
/// faults here is a reason to.
struct QuietLibrary {
  StderrCapture capture;
  void teardown() {
    const auto lines = StderrCapture::complaints(capture.finish());
    BOOST_TEST(lines.empty(), "the library wrote to stderr:\n" << lines);
  }
};

/// Destroys the pool (the destructor is shutdown(wait=true)) under a watchdog; returns the
/// seconds it took.
template <class Pool>
double destroy(std::unique_ptr<Pool>& pool, const std::string& what) {
  Watchdog dog("destroying the pool (" + what + ")");
  const auto t0 = Clock::now();
  pool.reset();
  return seconds_since(t0);
}

}  // namespace faults
