// A program that forgot parex::init: the pool must refuse at once, saying what to do.
#include <parex/parex.hpp>

#include <cstdio>
#include <string>

int square(int x) { return x * x; }
PAREX_REGISTER(square);

int main() {
  try {
    parex::ProcessPoolExecutor pool{{.max_workers = 2}};
    std::puts("no error");
    return 1;
  } catch (const parex::InvalidStateError& e) {
    std::printf("refused: %s\n", e.what());
    return std::string(e.what()).find("parex::init(argc, argv)") != std::string::npos ? 0 : 1;
  }
}
