// A block under a name of our choosing, and a ShareableList, filled by a child that
// attaches by name (Python: shared_memory.SharedMemory(name, create=True, size=...),
// ShareableList([...]), and SharedMemory(name) / ShareableList(name=...) in the child).
#include <parex/parex.hpp>

#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <unistd.h>

void fill(std::string block, std::string list) {
  parex::SharedMemory shm(block);                 // attach: the creator's bytes
  std::memcpy(shm.buf().data(), "howdy", 5);
  parex::ShareableList sl(list);                  // Python: ShareableList(name=list)
  sl[0] = sl[0].get().get<std::int64_t>() * 10;
  sl[-1] = "done";
}
PAREX_REGISTER(fill);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  const std::string name = "parex_example_" + std::to_string(::getpid());
  parex::SharedMemory shm(name, true, 16);        // FileExistsError if the name is taken
  parex::ShareableList sl{4, 2.5, nullptr, true, parex::Bytes{"raw"}, "wait"};
  parex::Process p(fill, shm.name(), sl.shm.name());
  p.start();
  p.join();
  std::printf("%.5s\n", reinterpret_cast<const char*>(shm.buf().data()));
  std::printf("%s\n", sl.format().c_str());
  for (const parex::ShareableList::Item& x : sl) {
    std::ostringstream os;
    os << x;
    std::printf("%s\n", os.str().c_str());
  }
  try {
    sl[-1] = "too long for its slot";
  } catch (const parex::ValueError&) {
    std::printf("a str longer than its slot is refused\n");
  }
  shm.close();
  shm.unlink();                                   // the name goes (else: at exit, with a warning)
  try {
    parex::SharedMemory again(name);
  } catch (const parex::FileNotFoundError&) {
    std::printf("unlinked\n");
  }
}
