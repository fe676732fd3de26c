// Blocks owned by a server process, unlinked when it shuts down (Python:
// multiprocessing.managers.SharedMemoryManager; `with SharedMemoryManager() as smm:`).
#include <parex/parex.hpp>

#include <cstdio>
#include <numeric>
#include <ranges>
#include <string>

long total(parex::ShareableList sl) {
  long s = 0;
  for (const parex::ShareableList::Item& x : sl) s += static_cast<long>(x.get<std::int64_t>());
  return s;
}
PAREX_REGISTER(total);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  std::string name;
  {
    parex::SharedMemoryManager smm;
    smm.start();
    parex::ShareableList sl = smm.ShareableList(std::views::iota(0, 100));
    parex::SharedMemory shm = smm.SharedMemory(1024);
    name = shm.name();
    parex::ProcessPoolExecutor pool{{.max_workers = 2}};
    std::printf("total: %ld\n", pool.submit(total, sl).result());
    std::printf("block: %zu bytes\n", shm.size());
  }  // ~SharedMemoryManager: shutdown() unlinks every block its server made
  try {
    parex::SharedMemory gone(name);
  } catch (const parex::FileNotFoundError&) {
    std::printf("released at shutdown\n");
  }
}
