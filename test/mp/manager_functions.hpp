// Registered functions and a served type of the Manager tests.
#pragma once

#include <parex/parex.hpp>

#include <stdexcept>
#include <string>

namespace manager_test {
/// A served type whose methods can fail.
struct Account {
  long balance = 0;
  void deposit(long amount) {
    if (amount <= 0) throw std::invalid_argument("deposit: amount must be positive");
    balance += amount;
  }
  long get() const { return balance; }
  std::string owner(std::string prefix) const { return prefix + std::to_string(balance); }
};

}  // namespace manager_test

// In the header, beside the type: every file that calls its methods sees their names.
PAREX_MANAGER_REGISTER(manager_test::Account, deposit, get, owner);

namespace manager_test {
void append_range(parex::ListProxy<int> l, int from, int n);
void set_keys(parex::DictProxy<std::string, int> d, int who, int n);
void deposit_times(parex::Proxy<Account> a, int n);
void append_forever(parex::ListProxy<int> l, parex::Event started);
int list_size_in_worker(parex::ListProxy<int> l);
int connect_and_count(std::string address, std::string key, std::string name);
/// Manager::connect(address, any key, timeout_ms) must throw TimeoutError naming the
/// address, within the timeout and a margin; throws (exit code 1) otherwise.
void connect_expecting_timeout(std::string address, int timeout_ms);
/// Starts a default Manager, puts "<server pid> <address>" on report, then: leak, the
/// Manager is never destroyed and the process exits at once; else it sleeps (to be killed).
void hold_a_manager(parex::Queue<std::string> report, bool leak);
/// The queue at l[0]: puts n there.
void put_in_listed_queue(parex::ListProxy<parex::Queue<int>> l, int n);
}  // namespace manager_test
