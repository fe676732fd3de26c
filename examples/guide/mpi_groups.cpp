// docs/05-mpi.md: one rank per node, threads inside. Each call a worker rank gets is a
// group of blocks, which it maps over its cores with a ThreadPoolExecutor of its own.
//   mpirun -np 3 ./guide_mpi_groups
#include <parex/mpi.hpp>
#include <parex/thread_pool.hpp>

#include <cstdio>
#include <vector>

#include "../demo.hpp"

std::uint64_t count_group(std::vector<Block> group) {    // runs on a worker rank
  static parex::ThreadPoolExecutor threads;              // one per rank: all its cores
  std::uint64_t total = 0;
  for (auto primes : threads.map(count_primes, group)) total += primes;
  return total;
}
PAREX_REGISTER(count_group);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::MpiExecutor ex;
  std::vector<std::vector<Block>> groups(4);
  std::uint64_t serial = 0, total = 0;
  for (std::uint64_t i = 0; i < 16; ++i) {
    const Block b{1'000'000 + i * 1000, 1000};
    groups[i % groups.size()].push_back(b);
    serial += count_primes(b);
  }
  for (auto t : ex.map(count_group, groups)) total += t;
  std::printf("primes found: %llu (%s)\n", static_cast<unsigned long long>(total),
              total == serial ? "the serial loop agrees" : "MISMATCH");
  return total == serial ? 0 : 1;
}
