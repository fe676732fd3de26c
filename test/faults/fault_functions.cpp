#include "faults/fault_functions.hpp"

#include <chrono>
#include <csignal>
#include <ctime>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <unistd.h>

std::pair<int, int> fault_item(int x) {
  std::this_thread::sleep_for(std::chrono::microseconds(x % 10 == 0 ? 2000 : 100));
  return {3 * x + 1, static_cast<int>(::getpid())};
}

int fork_sleeper(std::string pid_file, int ms, bool die) {
  const pid_t child = ::fork();
  if (child < 0) throw std::runtime_error("fork failed");
  if (child == 0) {  // async-signal-safe calls only: the worker has other threads
    timespec t{ms / 1000, (ms % 1000) * 1'000'000L};
    while (::nanosleep(&t, &t) != 0) {
    }
    ::_exit(0);
  }
  std::ofstream(pid_file) << child << '\n';
  if (die) ::raise(SIGKILL);
  return static_cast<int>(child);
}

int announce_then_sleep(std::string path, int ms) {
  std::ofstream(path) << "started\n";
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

PAREX_REGISTER(fault_item);
PAREX_REGISTER(fork_sleeper);
PAREX_REGISTER(announce_then_sleep);
