// crash_isolation: a call that crashes its worker fails alone; the pool goes on.
#include <parex/parex.hpp>

#include <csignal>
#include <cstdio>
#include <vector>

int parse_record(int id) {
  if (id == 13) std::raise(SIGSEGV);  // a bug that only one record triggers
  return id * 10;
}
PAREX_REGISTER(parse_record);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  std::vector<int> ids(20);
  for (int i = 0; i < 20; ++i) ids[i] = i;

  int ok = 0, crashed = 0;
  auto results = pool.map(parse_record, ids);
  for (auto it = results.begin(); it != results.end(); ++it) {
    try {
      (void)*it;
      ++ok;
    } catch (const parex::WorkerCrashed& e) {  // a BrokenProcessPool: pid, signal, function
      std::printf("%s\n", e.what());
      ++crashed;
    }
  }
  std::printf("%d results, %d crashed; the pool still serves: %d\n", ok, crashed, pool.submit(parse_record, 4).result());
  return ok == 19 && crashed == 1 ? 0 : 1;
}
