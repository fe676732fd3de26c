// Registered functions of the Manager tests (see manager_functions.hpp).
#include "mp/manager_functions.hpp"

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
}  // namespace manager_test

using namespace manager_test;
PAREX_REGISTER(append_range);
PAREX_REGISTER(set_keys);
PAREX_REGISTER(deposit_times);
PAREX_REGISTER(append_forever);
PAREX_REGISTER(list_size_in_worker);
PAREX_REGISTER(connect_and_count);
