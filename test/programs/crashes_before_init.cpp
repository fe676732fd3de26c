// A program whose workers crash before parex::init every time (a static constructor that
// segfaults, say): after a few crashes in a row, with back-off, the pool must break and
// say so - not respawn for ever.
#include <parex/parex.hpp>

#include <csignal>
#include <cstdio>
#include <string>

int square(int x) { return x * x; }
PAREX_REGISTER(square);

int main(int argc, char** argv) {
  if (argc > 1) ::raise(SIGSEGV);  // the worker: argv[1] is the worker marker
  parex::init(argc, argv);
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  try {
    pool.submit(square, 3).result(std::chrono::seconds(50));
    std::puts("no error");
    return 1;
  } catch (const parex::BrokenProcessPool& e) {
    std::printf("broken: %s\n", e.what());
    return std::string(e.what()).find("parex::init") != std::string::npos ? 0 : 1;
  }
}
