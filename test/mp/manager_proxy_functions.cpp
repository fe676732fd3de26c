// Registered functions of the Manager proxy tests (see manager_proxy_functions.hpp).
#include "mp/manager_proxy_functions.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <unistd.h>

namespace manager_proxy_test {
void add_range_to_set(parex::SetProxy<int> s, int from, int n) {
  for (int i = 0; i < n; ++i) s.add(from + i);
  for (int i = 0; i < 10; ++i) s.add(i);
}
long sum_by_iterating(parex::ListProxy<int> l, int chunk) {
  long sum = 0;
  for (int x : l.iterate(static_cast<std::size_t>(chunk))) sum += x;
  return sum;
}
std::string keys_by_iterating(parex::DictProxy<std::string, int> d) {
  std::string r;
  for (const auto& k : d) r += (r.empty() ? "" : ",") + k;
  return r;
}
void wait_and_record(parex::Barrier b, parex::ListProxy<int> indices) {
  indices.append(static_cast<int>(b.wait()));
}
void wait_expecting_broken(parex::Barrier b, parex::ListProxy<int> outcomes) {
  try {
    b.wait(std::chrono::milliseconds(100));
    outcomes.append(0);
  } catch (const parex::BrokenBarrierError&) {
    outcomes.append(1);
  }
}
void hold_bounded(parex::BoundedSemaphore s, parex::DictProxy<std::string, int> counts, parex::Lock lock) {
  for (int round = 0; round < 5; ++round) {
    std::lock_guard g(s);
    {
      std::lock_guard l(lock);
      const int now = counts.at("now") + 1;
      counts.set("now", now);
      counts.set("peak", std::max(now, counts.at("peak")));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::lock_guard l(lock);
    counts.set("now", counts.at("now") - 1);
  }
}
void count_initializer(parex::NamespaceProxy ns) {
  ns.set("test", ns.get<int>("test") + 1);
  ns.set("pid", static_cast<int>(::getpid()));
}
void refusing_initializer(int code) { throw std::invalid_argument("the initializer refused " + std::to_string(code)); }
void barrier_action() {}
int cube(int x) { return x * x * x; }
}  // namespace manager_proxy_test

using namespace manager_proxy_test;
PAREX_REGISTER(add_range_to_set);
PAREX_REGISTER(sum_by_iterating);
PAREX_REGISTER(keys_by_iterating);
PAREX_REGISTER(wait_and_record);
PAREX_REGISTER(wait_expecting_broken);
PAREX_REGISTER(hold_bounded);
PAREX_REGISTER(count_initializer);
PAREX_REGISTER(refusing_initializer);
PAREX_REGISTER(barrier_action);
PAREX_REGISTER(cube);
