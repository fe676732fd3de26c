// A program whose workers never reach parex::init and never exit: the handshake timeout
// must break the pool with the fix in the message.
#include <parex/parex.hpp>

#include <cstdio>
#include <string>
#include <thread>

int square(int x) { return x * x; }
PAREX_REGISTER(square);

int main(int argc, char** argv) {
  if (argc > 1) std::this_thread::sleep_for(std::chrono::hours(1));  // a worker that hangs before init
  parex::init(argc, argv);
  parex::ProcessPoolExecutor pool{{.max_workers = 1, .handshake_timeout = std::chrono::milliseconds(1500)}};
  try {
    pool.submit(square, 3).result(std::chrono::seconds(60));
    std::puts("no error");
    return 1;
  } catch (const parex::BrokenProcessPool& e) {
    std::printf("broken: %s\n", e.what());
    return std::string(e.what()).find("did not answer") != std::string::npos ? 0 : 1;
  }
}
