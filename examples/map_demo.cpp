// map_demo: count the primes in blocks of large numbers (CPU-bound), first with a plain
// serial loop, then on each backend through the same Executor& code, with a progress
// bar; prints wall times and a speed-up table. (MPI ranks: mpi_map.cpp.)
//   map_demo [--blocks N] [--block-size S] [--workers W]
#include <parex/parex.hpp>

#include "demo.hpp"

PAREX_REGISTER(count_primes);  // so that the process backend can ship it by name

int main(int argc, char** argv) {
  parex::init(argc, argv);  // worker processes branch off here
  const DemoInput in = demo_input("map_demo", argc, argv, parex::process_cpu_count());
  const std::vector<Block>& blocks = in.blocks;
  const std::size_t workers = in.workers;
  double serial_s = 0;
  const std::uint64_t serial_total = run_serial(blocks, serial_s);

  parex::ThreadPoolExecutor threads{{.max_workers = workers}};
  parex::ProcessPoolExecutor processes{{.max_workers = workers}};
  struct Row {
    const char* name;
    parex::Executor& ex;
    double seconds = 0;
    std::uint64_t total = 0;
  };
  Row rows[] = {{"ThreadPoolExecutor", threads}, {"ProcessPoolExecutor", processes}};
  for (Row& r : rows) {
    r.total = run(r.ex, r.name, blocks, r.seconds);
    std::printf("  %5.2fx\n", serial_s / r.seconds);
  }

  std::printf("\n%-22s %10s %10s\n", "backend", "wall time", "speed-up");
  std::printf("%-22s %9.2fs %9.2fx\n", "serial loop", serial_s, 1.0);
  bool agree = true;
  for (const Row& r : rows) {
    std::printf("%-22s %9.2fs %9.2fx\n", r.name, r.seconds, serial_s / r.seconds);
    agree = agree && r.total == serial_total;
  }
  std::printf("primes found: %llu (%s)\n", static_cast<unsigned long long>(serial_total),
              agree ? "all runs agree" : "MISMATCH");
  for (Row& r : rows) print_stats(r.ex, r.name);
  return agree ? 0 : 1;
}
