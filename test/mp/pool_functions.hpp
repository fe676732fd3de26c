// Registered functions the Pool tests run on pool workers.
#pragma once

#include <parex/parex.hpp>

namespace pool_test {
int square(int x);
int add(int a, int b);
int add3(int a, int b, int c);
int fail_at(int x, int bad);         // std::invalid_argument at x == bad
int pool_kill_self_at(int x, int bad);    // SIGKILLs its own worker at x == bad
int slow_square(int x, int ms);
int sleep_then_return(int ms);
int worker_pid(int x);
void set_ready(parex::Value<int> flag);  // an initializer
int ready_flag(int x);               // what set_ready left in this worker (1), else 0
int pid_then_sleep(parex::Array<int> pids, int slot, int ms);
}  // namespace pool_test
