// 10 processes x 1000 increments of a shared Value under its lock = 10000
// (Python: with counter.get_lock(): counter.value += 1).
#include <parex/parex.hpp>

#include <cstdio>
#include <mutex>
#include <vector>

void increment(parex::Value<int> counter, int times) {
  for (int i = 0; i < times; ++i) {
    std::lock_guard guard(counter.get_lock());
    ++counter.value();
  }
}
PAREX_REGISTER(increment);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Value<int> counter(0);
  std::vector<parex::Process> ps;
  for (int i = 0; i < 10; ++i) ps.emplace_back(increment, counter, 1000);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  std::printf("%d\n", counter.value());
}
