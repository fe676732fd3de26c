// docs/03-manager-and-pool.md: a Manager serving a dict, a list and a user's class, and a
// child process working on the same objects through proxies.
#include <parex/parex.hpp>

#include <cstdio>
#include <sstream>
#include <string>

struct Account { long balance = 0; void deposit(long n) { balance += n; } long get() const { return balance; } };
PAREX_MANAGER_REGISTER(Account, deposit, get);   // Python's BaseManager.register; in Account's header

void count_words(parex::DictProxy<std::string, int> words, parex::ListProxy<int> seen) {
  std::istringstream text("the cat saw the dog");
  for (std::string w; text >> w;) words.set(w, words.get(w).value_or(0) + 1);
  seen.append(static_cast<int>(words.size()));
}
PAREX_REGISTER(count_words);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Manager m;                                 // server started; ~Manager ends it
  auto words = m.dict<std::string, int>();          // DictProxy
  auto seen  = m.list<int>();                       // ListProxy
  auto acct  = m.make<Account>();                   // Proxy<Account>
  acct.call<&Account::deposit>(5);
  parex::Process p(count_words, words, seen);       // proxies travel like any handle
  p.start();
  p.join();
  std::printf("the: %d, distinct words: %d, balance: %ld\n", words.at("the"), seen.get(0),
              acct.call<&Account::get>());
  return words.at("the") == 2 && seen.get(0) == 4 && acct.call<&Account::get>() == 5 ? 0 : 1;
}
