// Registered functions of the Manager tests (see manager_functions.hpp).
#include "mp/manager_functions.hpp"

#include <chrono>
#include <stdexcept>
#include <thread>

namespace manager_test {
void append_range(parex::ListProxy<int> l, int from, int n) {
  for (int i = 0; i < n; ++i) l.append(from + i);
}
void set_keys(parex::DictProxy<std::string, int> d, int who, int n) {
  for (int i = 0; i < n; ++i) d.set("p" + std::to_string(who) + "-" + std::to_string(i), i);
}
void deposit_times(parex::Proxy<Account> a, int n) {
  for (int i = 0; i < n; ++i) a.call<&Account::deposit>(1);
}
void append_forever(parex::ListProxy<int> l, parex::Event started) {
  for (int i = 0;; ++i) {
    l.append(i);
    if (i == 100) started.set();
  }
}
int list_size_in_worker(parex::ListProxy<int> l) { return static_cast<int>(l.size()); }
int connect_and_count(std::string address, std::string key, std::string name) {
  auto m = parex::Manager::connect(address, key);
  return static_cast<int>(m.lookup<parex::ListProxy<int>>(name).size());
}
void connect_expecting_timeout(std::string address, int timeout_ms) {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    parex::Manager::connect(address, "some key", std::chrono::milliseconds(timeout_ms));
  } catch (const parex::TimeoutError& e) {
    const auto took = std::chrono::steady_clock::now() - t0;
    if (took < std::chrono::milliseconds(timeout_ms) || took > std::chrono::milliseconds(timeout_ms) + std::chrono::seconds(3))
      throw std::runtime_error("the timeout took " + std::to_string(took.count() / 1000000) + " ms");
    if (std::string(e.what()).find(address) == std::string::npos)
      throw std::runtime_error(std::string("the error does not name the address: ") + e.what());
    return;
  }
  throw std::runtime_error("connect did not time out");
}
void hold_a_manager(parex::Queue<std::string> report, bool leak) {
  static parex::Manager* kept = nullptr;  // reachable: a deliberate leak, not LeakSanitizer's business
  kept = new parex::Manager();
  report.put(std::to_string(kept->pid()) + " " + kept->address());
  if (leak) return;  // exits with its Manager alive: no destructor, no shutdown
  std::this_thread::sleep_for(std::chrono::seconds(60));
  delete kept;
}
void put_in_listed_queue(parex::ListProxy<parex::Queue<int>> l, int n) { l.get(0).put(n); }
}  // namespace manager_test

using namespace manager_test;
PAREX_REGISTER(append_range);
PAREX_REGISTER(set_keys);
PAREX_REGISTER(deposit_times);
PAREX_REGISTER(append_forever);
PAREX_REGISTER(list_size_in_worker);
PAREX_REGISTER(connect_and_count);
PAREX_REGISTER(connect_expecting_timeout);
PAREX_REGISTER(hold_a_manager);
PAREX_REGISTER(put_in_listed_queue);
