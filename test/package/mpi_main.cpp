// A user of the installed package's MPI component: find_package(parex COMPONENTS mpi),
// link parex::mpi, map on the worker ranks (run under mpirun -np 3).
#include <parex/mpi.hpp>

#include <cstdio>
#include <vector>

int cube(int x) { return x * x * x; }
PAREX_REGISTER(cube);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::MpiExecutor ex;
  int sum = 0;
  for (int y : ex.map(cube, std::vector{1, 2, 3})) sum += y;
  std::printf("mpi_consumer: %d on %zu worker ranks\n", sum, ex.max_workers());
  return sum == 36 ? 0 : 1;
}
