#include "cpython/cpython_functions.hpp"

#include "support/helpers.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace fs = std::filesystem;

namespace cpy {

// ---- registered functions -------------------------------------------------------------------

long long power(int base, int exp) {
  long long r = 1;
  for (int i = 0; i < exp; ++i) r *= base;
  return r;
}
int mul(int x, int y) { return x * y; }
int add(int x, int y) { return x + y; }
int add3(int x, int y, int z) { return x + y + z; }
int add4(int w, int x, int y, int z) { return w + x + y + z; }
std::tuple<int, std::string, double> capture(int a, std::string b, double c) { return {a, std::move(b), c}; }
std::pair<int, int> divmod(int a, int b) {
  if (b == 0) throw std::domain_error("integer division or modulo by zero");
  return {a / b, a % b};
}
int divide(int a, int b) { return divmod(a, b).first; }
int timeout_on_one(int x) {
  if (x == 1) throw parex::TimeoutError("raised by the called function");
  return x;
}
std::string str(int x) { return std::to_string(x); }
int absolute(int x) { return x < 0 ? -x : x; }
int raiser(std::string msg) { throw std::runtime_error(msg); }

int wait_for_file(std::string path) {
  const fs::path dir = fs::path(path).parent_path();
  const auto end = std::chrono::steady_clock::now() + test::deadlock_timeout;
  for (;;) {
    std::error_code ec;
    if (fs::exists(path, ec)) return 1;
    if (!fs::exists(dir, ec)) return 0;
    if (std::chrono::steady_clock::now() > end) throw parex::TimeoutError("the event " + path + " was never set");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}
int wait_and_raise(std::string path) {
  wait_for_file(path);
  throw std::runtime_error("this is an exception");
}
int sleep_and_mark(std::pair<std::string, int> job) {
  std::this_thread::sleep_for(std::chrono::milliseconds(job.second));
  std::ofstream(job.first) << job.second;
  return job.second;
}
int pid_when_set(std::string path) {
  wait_for_file(path);
  return static_cast<int>(::getpid());
}
int started_then_wait(std::string dir) {
  const int pid = static_cast<int>(::getpid());
  std::ofstream(dir + "/started.tmp") << pid;
  fs::rename(dir + "/started.tmp", dir + "/started");  // readers see the whole pid or nothing
  if (wait_for_file(dir + "/go") == 1) std::ofstream(dir + "/finished") << pid;
  return pid;
}
int worker_pid() { return static_cast<int>(::getpid()); }
int exit_now(int code) { std::exit(code); }
int crash_after_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  ::raise(SIGSEGV);
  return ms;
}
int crash_with_data(std::string data) {
  ::raise(SIGSEGV);
  return static_cast<int>(data.size());
}
int good_task(int n) {
  std::this_thread::sleep_for(std::chrono::milliseconds(10 * n));
  return n;
}
int failing_task(int) { throw std::invalid_argument("failing task"); }

namespace {
// A thread pool runs its initializer on every worker thread at once: guard the global.
std::mutex g_init_mutex;
std::string g_init_status = "uninitialized";
}  // namespace
void set_init_status(std::string status) {
  std::lock_guard lock(g_init_mutex);
  g_init_status = std::move(status);
}
std::string get_init_status() {
  std::lock_guard lock(g_init_mutex);
  return g_init_status;
}
void init_fail() {
  std::this_thread::sleep_for(std::chrono::milliseconds(10));  // let some calls be queued
  throw std::invalid_argument("error in initializer");
}

void hazard_act(int act, const char* stage) {
  switch (act) {
    case act_throw: throw std::runtime_error(std::string(stage) + " refused");
    case act_exit: ::_exit(1);
    case act_crash: ::raise(SIGSEGV); break;
    default: break;
  }
}
int take_hazard(Hazard h) { return h.v; }
Hazard make_hazard(int v, int on_save, int on_load) { return {v, on_save, on_load}; }

PAREX_REGISTER(cpy::power);
PAREX_REGISTER(cpy::mul);
PAREX_REGISTER(cpy::add);
PAREX_REGISTER(cpy::add3);
PAREX_REGISTER(cpy::add4);
PAREX_REGISTER(cpy::capture);
PAREX_REGISTER(cpy::divmod);
PAREX_REGISTER(cpy::divide);
PAREX_REGISTER(cpy::timeout_on_one);
PAREX_REGISTER(cpy::str);
PAREX_REGISTER(cpy::absolute);
PAREX_REGISTER(cpy::raiser);
PAREX_REGISTER(cpy::wait_for_file);
PAREX_REGISTER(cpy::wait_and_raise);
PAREX_REGISTER(cpy::sleep_and_mark);
PAREX_REGISTER(cpy::pid_when_set);
PAREX_REGISTER(cpy::started_then_wait);
PAREX_REGISTER(cpy::worker_pid);
PAREX_REGISTER(cpy::exit_now);
PAREX_REGISTER(cpy::crash_after_ms);
PAREX_REGISTER(cpy::crash_with_data);
PAREX_REGISTER(cpy::good_task);
PAREX_REGISTER(cpy::failing_task);
PAREX_REGISTER(cpy::set_init_status);
PAREX_REGISTER(cpy::get_init_status);
PAREX_REGISTER(cpy::init_fail);
PAREX_REGISTER(cpy::take_hazard);
PAREX_REGISTER(cpy::make_hazard);

// ---- test-side helpers ----------------------------------------------------------------------

TempDir::TempDir() {
  static std::atomic<unsigned> counter{0};
  path_ = fs::temp_directory_path() /
          ("parex-cpython-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) + "-" +
           std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  fs::create_directories(path_);
}
TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}
bool TempDir::has(const std::string& name) const {
  std::error_code ec;
  return fs::exists(path_ / name, ec);
}

void FileEvent::set() const { std::ofstream(path()) << 1; }

std::optional<int> wait_for_started(const TempDir& dir) {
  if (!test::eventually([&] { return dir.has("started"); })) return std::nullopt;
  int pid = 0;
  std::ifstream(dir.file("started")) >> pid;
  return pid;
}

bool process_gone(int pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }
std::size_t live_children() {
  std::size_t n = 0;
  for (int pid : test::children()) n += test::process_alive(pid);
  return n;
}

std::string error_name(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const parex::WorkerCrashed&) {
    return "WorkerCrashed";
  } catch (const parex::BrokenProcessPool&) {
    return "BrokenProcessPool";
  } catch (const parex::BrokenThreadPool&) {
    return "BrokenThreadPool";
  } catch (const parex::BrokenExecutor&) {
    return "BrokenExecutor";
  } catch (const parex::CancelledError&) {
    return "CancelledError";
  } catch (const parex::TimeoutError&) {
    return "TimeoutError";
  } catch (const parex::InvalidStateError&) {
    return "InvalidStateError";
  } catch (const parex::NotSerializable&) {
    return "NotSerializable";
  } catch (const parex::RemoteError& r) {
    return "RemoteError(" + r.type() + ")";
  } catch (const parex::Error&) {
    return "Error";
  } catch (const std::domain_error&) {
    return "domain_error";
  } catch (const std::invalid_argument&) {
    return "invalid_argument";
  } catch (const std::runtime_error&) {
    return "runtime_error";
  } catch (const std::exception&) {
    return "exception";
  } catch (...) {
    return "unknown";
  }
}

FutureFixtures::FutureFixtures() {
  running_p.set_running_or_notify_cancel();
  cancelled.cancel();
  exception_p.set_exception(std::make_exception_ptr(std::system_error(EIO, std::generic_category(), "OSError")));
  success_p.set_result(42);
}


}  // namespace cpy
