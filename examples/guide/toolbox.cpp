// docs/02-multiprocessing.md: handles that travel, a Queue that shuts down, what a
// process knows of itself and of its parent, a lock that says whether it is held, a Value
// and an Array sharing one lock (Python's lock=), a Value with none.
#include <parex/parex.hpp>

#include <iostream>
#include <mutex>
#include <string>

void add(parex::Value<int> counter, parex::Lock lock, parex::Queue<std::string> log) {
  std::lock_guard guard(lock);                          // the parent's lock, not a copy
  counter.value() += 1;
  log.put(parex::current_process().name + " of " + std::to_string(parex::parent_process()->pid));
}
PAREX_REGISTER(add);

void deposit(parex::Value<long> balance, parex::Array<long> history, long amount) {
  std::lock_guard guard(balance.get_lock());            // also history's lock: one lock guards both
  history[static_cast<std::size_t>(history[0]) + 1] = amount;
  history[0] += 1;
  balance.value() += amount;
}
PAREX_REGISTER(deposit);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Value<int> counter(0);
  parex::Lock lock;
  parex::Queue<std::string> log;
  parex::Process p(add, counter, lock, log);            // the same counter, lock and queue in the child
  p.start();
  p.join();
  std::cout << counter.value() << ' ' << log.get() << ' ' << lock << '\n';  // 1 Process-1 of <pid> <Lock(owner=None)>

  parex::Queue<int> q;
  q.put(1);
  q.shutdown();                                         // put() throws ShutDown from now on; get() once q is empty
  int one = q.get();
  try {
    q.get();
  } catch (const parex::ShutDown&) {
    std::cout << "got " << one << ", then ShutDown\n";
  }

  parex::RLock account;
  parex::Value<long> balance(0, account);               // Python: Value('l', 0, lock=account)
  parex::Array<long> history(4, account);               // Python: Array('l', 4, lock=account)
  parex::Process d(deposit, balance, history, 100L);    // the lock travels with them
  d.start();
  d.join();
  parex::RawValue<long> raw = balance.get_obj();        // the same memory, without the lock
  parex::Value<int> hits(0, false);                     // Python: lock=False: no lock at all
  try {
    hits.get_lock();
  } catch (const parex::AttributeError&) {
    std::cout << raw.value() << ' ' << history[0] << ' ' << (balance.get_lock() == history.get_lock())
              << " no lock\n";                           // 100 1 1 no lock
  }
  const bool deposited = raw.value() == 100 && history[1] == 100 && balance.get_lock() == account;

  std::lock_guard held(lock);
  std::cout << std::boolalpha << lock.locked() << ' ' << parex::current_process().name << '\n';  // true MainProcess
  return counter.value() == 1 && deposited ? 0 : 1;
}
