// docs/02-multiprocessing.md: handles that travel, a Queue that shuts down, what a
// process knows of itself and of its parent, a lock that says whether it is held.
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

  std::lock_guard held(lock);
  std::cout << std::boolalpha << lock.locked() << ' ' << parex::current_process().name << '\n';  // true MainProcess
  return counter.value() == 1 ? 0 : 1;
}
