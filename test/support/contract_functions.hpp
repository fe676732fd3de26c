// Free functions the contract tests submit: the same calls run on every backend.
#pragma once

#include <parex/parex.hpp>

#include <string>
#include <utility>
#include <vector>

// The backends the contract runs on; the MPI test binary (parex_mpi_tests, under mpirun)
// runs the same contract on MpiExecutor alone.
#ifdef PAREX_TEST_MPI
#include <parex/mpi.hpp>
#define PAREX_TEST_BACKENDS parex::MpiExecutor
#else
#define PAREX_TEST_BACKENDS parex::ThreadPoolExecutor, parex::ProcessPoolExecutor
#endif

int square(int x);
std::string concat(std::string a, const std::string& b);
void do_nothing();
std::vector<int> iota_vector(int n);
/// Throws std::invalid_argument("negative: <x>") for x < 0, else returns x.
int fail_if_negative(int x);
/// Sleeps ms milliseconds, returns ms.
int sleep_then_echo(int ms);
/// Sleeps 5 ms, then creates the file <dir>/<i> and returns i (a side effect that any
/// process can see).
int mark_done(std::pair<std::string, int> job);
