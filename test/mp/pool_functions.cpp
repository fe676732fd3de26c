// Registered functions of the Pool tests (see pool_functions.hpp).
#include "mp/pool_functions.hpp"

#include <chrono>
#include <csignal>
#include <stdexcept>
#include <thread>
#include <unistd.h>

namespace pool_test {
namespace {
int g_ready = 0;  // set by the initializer in each worker
}
int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
int add3(int a, int b, int c) { return a + b + c; }
int fail_at(int x, int bad) {
  if (x == bad) throw std::invalid_argument("bad item " + std::to_string(x));
  return x;
}
int pool_kill_self_at(int x, int bad) {
  if (x == bad) ::kill(::getpid(), SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return x;
}
int slow_square(int x, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return x * x;
}
int sleep_then_return(int ms) { return slow_square(ms, ms), ms; }
int worker_pid(int) { return static_cast<int>(::getpid()); }
void set_ready(parex::Value<int> flag) {
  g_ready = 1;
  ++flag.value();
}
int ready_flag(int) { return g_ready; }
int pid_then_sleep(parex::Array<int> pids, int slot, int ms) {
  pids[static_cast<std::size_t>(slot)] = static_cast<int>(::getpid());
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return slot;
}
}  // namespace pool_test

using namespace pool_test;
PAREX_REGISTER_AS("pool_test::square", square);
PAREX_REGISTER_AS("pool_test::add", add);
PAREX_REGISTER_AS("pool_test::add3", add3);
PAREX_REGISTER_AS("pool_test::fail_at", fail_at);
PAREX_REGISTER_AS("pool_test::pool_kill_self_at", pool_kill_self_at);
PAREX_REGISTER_AS("pool_test::slow_square", slow_square);
PAREX_REGISTER_AS("pool_test::worker_pid", worker_pid);
PAREX_REGISTER_AS("pool_test::sleep_then_return", sleep_then_return);
PAREX_REGISTER_AS("pool_test::set_ready", set_ready);
PAREX_REGISTER_AS("pool_test::ready_flag", ready_flag);
PAREX_REGISTER_AS("pool_test::pid_then_sleep", pid_then_sleep);
