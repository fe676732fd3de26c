// A program whose workers close every inherited fd before parex::init and live on (a
// daemon-style main): the pool sees its channel end, waits a moment for the exit that
// does not come, and must break naming the fix - not respawn for ever.
#include <parex/parex.hpp>

#include <cstdio>
#include <string>
#include <unistd.h>
#include <sys/syscall.h>

int square(int x) { return x * x; }
PAREX_REGISTER(square);

int main(int argc, char** argv) {
  if (argc > 1) {  // the worker: argv[1] is the worker marker
    ::syscall(SYS_close_range, 3u, ~0u, 0u);
    ::sleep(60);
    return 0;
  }
  parex::init(argc, argv);
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  try {
    pool.submit(square, 3).result(std::chrono::seconds(50));
    std::puts("no error");
    return 1;
  } catch (const parex::BrokenProcessPool& e) {
    std::printf("broken: %s\n", e.what());
    return std::string(e.what()).find("parex::init(argc, argv)") != std::string::npos ? 0 : 1;
  }
}
