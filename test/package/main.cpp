// A user of the installed package: find_package(parex), link parex::parex, run both backends,
// a Pool and a Manager.
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
  parex::Pool pool(2);  // multiprocessing's face over the same engine
  for (int y : pool.map(square, std::vector{1, 2, 3})) sum += y;
  parex::Manager manager;  // a server process; the list lives there
  auto list = manager.list<int>();
  list.append(pool.apply(square, 4));
  sum += list.get(0);
  std::printf("consumer: %d\n", sum);
  return sum == 58 ? 0 : 1;
}
