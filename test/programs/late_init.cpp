// A program that parses its options before parex::init: its workers exit before the
// handshake. The pool must fail within seconds, naming the fix - not hang, not respawn forever.
#include <parex/parex.hpp>

#include <cstdio>
#include <string>

int square(int x) { return x * x; }
PAREX_REGISTER(square);

int main(int argc, char** argv) {
  if (argc > 1) {
    std::fprintf(stderr, "late_init: unknown option %s (this is the worker failing, as intended)\n", argv[1]);
    return 2;
  }
  parex::init(argc, argv);
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  try {
    pool.submit(square, 3).result(std::chrono::seconds(60));
    std::puts("no error");
    return 1;
  } catch (const parex::BrokenProcessPool& e) {
    std::printf("broken: %s\n", e.what());
    return std::string(e.what()).find("parex::init(argc, argv)") != std::string::npos ? 0 : 1;
  }
}
