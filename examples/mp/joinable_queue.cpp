// Workers confirm each task with task_done(); the main process waits with join()
// (Python: JoinableQueue).
#include <parex/parex.hpp>

#include <cstdio>
#include <mutex>
#include <vector>

void worker(parex::JoinableQueue<int> tasks, parex::Value<long> total) {
  for (;;) {
    const int n = tasks.get();
    if (n >= 0) {
      std::lock_guard g(total.get_lock());
      total.value() += n;
    }
    tasks.task_done();
    if (n < 0) return;
  }
}
PAREX_REGISTER(worker);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::JoinableQueue<int> tasks;
  parex::Value<long> total(0);
  std::vector<parex::Process> ps;
  for (int i = 0; i < 4; ++i) ps.emplace_back(worker, tasks, total);
  for (auto& p : ps) p.start();
  for (int i = 1; i <= 100; ++i) tasks.put(i);
  tasks.join();  // every task done
  std::printf("all tasks done, total %ld\n", total.value());
  for (int i = 0; i < 4; ++i) tasks.put(-1);
  for (auto& p : ps) p.join();
}
