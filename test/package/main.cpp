// A user of the installed package: find_package(parex), link parex::parex, run.
#include <parex/parex.hpp>

#include <cstdio>
#include <vector>

int square(int x) { return x * x; }

int main() {
  parex::ThreadPoolExecutor pool{{.max_workers = 2}};
  int sum = 0;
  for (int y : pool.map(square, std::vector{1, 2, 3})) sum += y;
  std::printf("consumer: %d\n", sum);
  return sum == 14 ? 0 : 1;
}
