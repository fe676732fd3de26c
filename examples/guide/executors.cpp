// docs/01-executors.md: one function over either pool, through parex::Executor&; map over
// two ranges; exceptions that keep their type; a move-only result.
#include <parex/parex.hpp>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

double mean(std::vector<double> xs) {
  if (xs.empty()) throw std::invalid_argument("mean of nothing");
  double s = 0;
  for (double x : xs) s += x;
  return s / static_cast<double>(xs.size());
}
PAREX_REGISTER(mean);

int add(int a, int b) { return a + b; }
PAREX_REGISTER(add);

std::unique_ptr<int> boxed(int x) { return std::make_unique<int>(x); }

// Code written once, for any backend.
double average_of_means(parex::Executor& ex, const std::vector<std::vector<double>>& groups) {
  double total = 0;
  for (double m : ex.map(mean, groups)) total += m;   // in input order, lazily
  return total / static_cast<double>(groups.size());
}

int check(parex::Executor& ex) {
  const std::vector<std::vector<double>> groups{{1, 2, 3}, {4, 5, 6}};
  if (average_of_means(ex, groups) != 3.5) return 1;

  // map over two ranges in lock-step, ending with the shorter (Python's map(fn, it1, it2))
  std::vector<int> sums;
  for (int s : ex.map(add, std::vector{1, 2, 3}, std::vector{10, 20})) sums.push_back(s);
  if (sums != std::vector{11, 22}) return 2;

  bool caught = false;
  parex::Future<double> f = ex.submit(mean, std::vector<double>{});
  try {
    f.result();
  } catch (const std::invalid_argument& e) {   // the worker's exception, as itself
    std::printf("invalid_argument: %s\n", e.what());
    caught = true;
  }
  return caught ? 0 : 3;
}

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::ThreadPoolExecutor threads{{.max_workers = 2}};
  parex::ProcessPoolExecutor processes{{.max_workers = 2}};
  if (int rc = check(threads)) return rc;
  if (int rc = check(processes)) return 10 + rc;

  parex::Future<std::unique_ptr<int>> b = threads.submit(boxed, 42);
  std::unique_ptr<int> p = std::move(b).result();    // moved out: the only handle
  return *p == 42 ? 0 : 20;
}
