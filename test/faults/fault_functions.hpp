// Registered functions of the fault campaign (test_faults*.cpp), beside those of
// support/contract_functions.hpp.
#pragma once

#include <parex/parex.hpp>

#include <string>
#include <utility>

/// {3x + 1, the pid of the process that ran it}; sleeps 100 us (every 10th item: 2 ms),
/// so that a map of a few hundred items takes long enough to be hit.
std::pair<int, int> fault_item(int x);
/// Forks (no exec) a child that sleeps ms milliseconds and then _exit(0)s; writes the
/// child's pid to pid_file; then, if die, SIGKILLs itself. Returns the child's pid.
int fork_sleeper(std::string pid_file, int ms, bool die);
/// Creates the file `path` (the call has started), sleeps ms milliseconds, returns ms.
int announce_then_sleep(std::string path, int ms);
