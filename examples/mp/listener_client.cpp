// Listener and Client (Python: multiprocessing.connection): a child connects to the
// parent's listener on a port the system picked, proves it knows the authkey, and talks.
#include <parex/parex.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace pc = parex::connection;

void client(int port) {
  parex::Connection conn = pc::Client({"localhost", static_cast<std::uint16_t>(port)}, "", "secret password");
  conn.send(std::vector<int>{1, 2, 3});
  conn.send(std::string("hello"));
  std::printf("child got: %s\n", conn.recv<std::string>().c_str());
  std::fflush(stdout);
}
PAREX_REGISTER(client);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  pc::Listener listener({"localhost", 0}, "", 1, "secret password");  // port 0: pick one
  parex::Process p(client, static_cast<int>(listener.address().port));
  p.start();
  parex::Connection conn = listener.accept();
  std::printf("connection accepted from %s\n", listener.last_accepted()->host.c_str());
  for (int x : conn.recv<std::vector<int>>()) std::printf("%d ", x);
  std::printf("\n%s\n", conn.recv<std::string>().c_str());
  std::fflush(stdout);
  conn.send(std::string("goodbye"));
  p.join();
  try {
    conn.recv<std::string>();
  } catch (const parex::EOFError&) {
    std::printf("EOFError: the child closed its end\n");
  }
}
