// What the CPython translations (test_cpython_*.cpp) share: the registered free functions
// they ship to either pool (CPython's module-level helpers: mul, capture, _crash, ...), a
// type whose encoding or decoding fails, crashes or exits on demand (test_deadlock.py's
// ErrorAtPickle, CrashAtUnpickle, ...), and test-side helpers. Functions live in namespace
// cpy and are registered as "cpy::<name>", so they cannot clash with the other suites'.
#pragma once

#include "support/processes.hpp"

#include <parex/parex.hpp>

#include <boost/serialization/split_member.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace cpy {

// ---- registered functions (cpython_functions.cpp) -------------------------------------------

long long power(int base, int exp);                             // pow
int mul(int x, int y);                                          // executor.py: mul
int add(int x, int y);                                          // operator.add
int add3(int x, int y, int z);
int add4(int w, int x, int y, int z);
std::tuple<int, std::string, double> capture(int a, std::string b, double c);  // executor.py: capture
/// divmod; throws std::domain_error (Python's ZeroDivisionError) when b == 0.
std::pair<int, int> divmod(int a, int b);
/// a / b; throws std::domain_error when b == 0 (divmod where the futures hold an int).
int divide(int a, int b);
/// Throws parex::TimeoutError for x == 1, else returns x (executor.py: timeout_on_one).
int timeout_on_one(int x);
std::string str(int x);
int absolute(int x);
/// Throws std::runtime_error(msg) (executor.py: raiser; test_deadlock.py: _raise_error).
int raiser(std::string msg);
/// Blocks until the file `path` exists (1) or its directory is gone (0: the FileEvent was
/// dropped); throws parex::TimeoutError after test::deadlock_timeout.
int wait_for_file(std::string path);
/// wait_for_file, then throws std::runtime_error("this is an exception") (test_wait.py).
int wait_and_raise(std::string path);
/// Sleeps job.second ms, then creates the file job.first; returns job.second.
int sleep_and_mark(std::pair<std::string, int> job);
/// wait_for_file(path), then returns this process's pid.
int pid_when_set(std::string path);
/// Writes <dir>/started (holding its pid), waits for <dir>/go, then writes <dir>/finished.
int started_then_wait(std::string dir);
int worker_pid();
/// std::exit(code) in the middle of a call (Python: sys.exit).
int exit_now(int code);
/// Sleeps ms, then SIGSEGV (test_deadlock.py: _crash).
int crash_after_ms(int ms);
/// SIGSEGV with a big argument in hand (test_deadlock.py: _crash_with_data).
int crash_with_data(std::string data);
/// Sleeps 10 ms x n, returns n; throws std::invalid_argument("failing task") (gh-132969).
int good_task(int n);
int failing_task(int n);
/// test_init.py: the initializer's global, per process.
void set_init_status(std::string status);
std::string get_init_status();
/// Sleeps 10 ms, then throws std::invalid_argument("error in initializer").
void init_fail();

/// What Hazard does at one stage (test_deadlock.py's ErrorAt*, ExitAt*, CrashAt*).
enum Act : int { act_none = 0, act_throw = 1, act_exit = 2, act_crash = 3 };
void hazard_act(int act, const char* stage);

/// A value whose save (encoding) or load (decoding) throws, _exit(1)s or segfaults on
/// demand. Never let the parent decode one with on_load = act_exit or act_crash.
struct Hazard {
  int v = 0;
  int on_save = act_none;
  int on_load = act_none;
  template <class Ar>
  void save(Ar& ar, unsigned) const {
    hazard_act(on_save, "save");
    ar & v & on_save & on_load;
  }
  template <class Ar>
  void load(Ar& ar, unsigned) {
    ar & v & on_save & on_load;
    hazard_act(on_load, "load");
  }
  BOOST_SERIALIZATION_SPLIT_MEMBER()
};
int take_hazard(Hazard h);                             // returns h.v
Hazard make_hazard(int v, int on_save, int on_load);  // the result carries its hazard

// ---- test-side helpers ----------------------------------------------------------------------

/// A pool of either backend with n workers.
template <class Pool>
Pool make_pool(std::size_t workers) {
  return Pool{{.max_workers = workers}};
}

/// The what() of an exception_ptr's exception ("" if none or not a std::exception).
inline std::string what_of(const std::exception_ptr& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
  }
  return "";
}

/// A fresh directory, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  bool has(const std::string& name) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// A cross-process event (Python: manager.Event()): set() creates a file that
/// wait_for_file() polls for. Destroying it releases every waiter, so declare it after
/// the pool: it dies first, and the pool's destructor never waits on a blocked call.
class FileEvent {
 public:
  std::string path() const { return dir_.file("set"); }
  void set() const;

 private:
  TempDir dir_;
};

/// Reads the pid that started_then_wait wrote to <dir>/started, waiting for it.
std::optional<int> wait_for_started(const TempDir& dir);

using test::process_alive;
/// No such process at all (reaped, not a zombie).
bool process_gone(int pid);
/// Live (non-zombie) child processes of this process.
std::size_t live_children();

/// The name of e's most derived known type: "TimeoutError", "WorkerCrashed",
/// "domain_error", ... (exact types matter to these tests, not messages).
std::string error_name(const std::exception_ptr& e);

using Log = std::vector<std::string>;

/// Walks a map range to its end as a Python loop of next() calls would, recording each
/// step: show(item) for an item, "!<error_name>" for an exception from * or from ++ (or
/// from begin()). After a throwing ++ that is not at the end it steps again.
template <class Range, class Show>
Log drain(Range& results, Show show, std::size_t limit = 100000) {
  Log log;
  auto note = [&] { log.push_back("!" + error_name(std::current_exception())); };
  std::optional<decltype(results.begin())> it;
  try {
    it.emplace(results.begin());
  } catch (...) {
    note();
    return log;
  }
  while (*it != results.end() && log.size() < limit) {
    try {
      log.push_back(show(**it));
    } catch (...) {
      note();
    }
    for (;;) {
      try {
        ++*it;
        break;
      } catch (...) {
        note();
        if (*it == results.end() || log.size() >= limit) break;
      }
    }
  }
  return log;
}

/// For BOOST_TEST messages: "[a, b, c]".
inline std::string joined(const Log& log) {
  std::string s = "[";
  for (std::size_t i = 0; i < log.size(); ++i) s += (i ? ", " : "") + log[i];
  return s + "]";
}

inline std::string show_int(long long v) { return std::to_string(v); }
inline std::string show_pair(const std::pair<int, int>& p) {
  return "(" + std::to_string(p.first) + "," + std::to_string(p.second) + ")";
}
inline std::string show_str(const std::string& s) { return s; }

/// Python's util.py futures, one of each state, all Future<int>. Python's CANCELLED and
/// CANCELLED_AND_NOTIFIED are one state in parex (cancel() notifies at once): `cancelled`.
struct FutureFixtures {
  parex::Promise<int> pending_p, running_p, cancelled_p, exception_p, success_p;
  parex::Future<int> pending = pending_p.get_future();
  parex::Future<int> running = running_p.get_future();
  parex::Future<int> cancelled = cancelled_p.get_future();
  parex::Future<int> exception = exception_p.get_future();  // failed with std::system_error (OSError)
  parex::Future<int> success = success_p.get_future();      // 42
  FutureFixtures();
};

using test::StderrCapture;  // support/processes.hpp

}  // namespace cpy
