// Starts a pool, prints its workers' pids, then waits to be killed (test/process_pool/test_processes.cpp
// SIGKILLs it and checks that the workers die with it).
#include <parex/parex.hpp>

#include <chrono>
#include <cstdio>
#include <set>
#include <thread>
#include <unistd.h>

int worker_pid(int) {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return static_cast<int>(::getpid());
}
PAREX_REGISTER(worker_pid);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::ProcessPoolExecutor pool{{.max_workers = 3}};
  std::set<int> pids;
  for (int round = 0; round < 50 && pids.size() < 3; ++round) {
    std::vector<parex::Future<int>> fs;
    for (int i = 0; i < 12; ++i) fs.push_back(pool.submit(worker_pid, i));
    for (auto& f : fs) pids.insert(f.result(std::chrono::seconds(30)));
  }
  for (int p : pids) std::printf("%d ", p);
  std::printf("\n");
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::minutes(10));
}
