// as_completed: results in the order they finish, from a process pool, with a timeout.
#include <parex/parex.hpp>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

int slow_square(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(40 * (5 - x)));  // bigger x, sooner done
  return x * x;
}
PAREX_REGISTER(slow_square);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::ProcessPoolExecutor pool{{.max_workers = 5}};
  std::vector<parex::Future<int>> futures;
  for (int x = 0; x < 5; ++x) futures.push_back(pool.submit(slow_square, x));

  for (const parex::Future<int>& f : parex::as_completed(futures, std::chrono::seconds(30)))
    std::printf("finished: %d\n", f.result());

  auto [done, not_done] = parex::wait(futures, std::chrono::seconds(1), parex::ReturnWhen::all_completed);
  std::printf("%zu done, %zu not done\n", done.size(), not_done.size());
  return not_done.empty() ? 0 : 1;
}
