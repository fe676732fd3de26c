// A user of the installed package: find_package(parex), link parex::parex, run both backends.
#include <parex/parex.hpp>

#include <cstdio>
#include <vector>

int square(int x) { return x * x; }
PAREX_REGISTER(square);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::ThreadPoolExecutor threads{{.max_workers = 2}};
  parex::ProcessPoolExecutor processes{{.max_workers = 2}};
  int sum = 0;
  for (parex::Executor* ex : {static_cast<parex::Executor*>(&threads), static_cast<parex::Executor*>(&processes)})
    for (int y : ex->map(square, std::vector{1, 2, 3})) sum += y;
  std::printf("consumer: %d\n", sum);
  return sum == 28 ? 0 : 1;
}
