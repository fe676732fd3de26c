// mpi_map: the demo's map (demo.hpp) on the ranks of an MPI job; the code is map_demo's
// but for the executor line. Run it under MPI:
//   mpirun -np 3 ./mpi_map [--blocks N] [--block-size S]
// Rank 0 runs main; ranks 1..N-1 become workers inside parex::init.
#include <parex/mpi.hpp>

#include "demo.hpp"

PAREX_REGISTER(count_primes);

int main(int argc, char** argv) {
  parex::init(argc, argv);  // worker ranks branch off here and never return
  parex::MpiExecutor ex;    // the one line that differs: every other rank is a worker
  const DemoInput in = demo_input("mpi_map", argc, argv, ex.max_workers());
  double serial_s = 0, mpi_s = 0;
  const std::uint64_t serial_total = run_serial(in.blocks, serial_s);
  const std::uint64_t total = run(ex, "MpiExecutor", in.blocks, mpi_s);
  std::printf("  %5.2fx\n", serial_s / mpi_s);
  std::printf("primes found: %llu (%s)\n", static_cast<unsigned long long>(total),
              total == serial_total ? "all runs agree" : "MISMATCH");
  return total == serial_total ? 0 : 1;
}
