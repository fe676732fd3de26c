// A conversation over a Pipe that ends on a sentinel (Python: conn.send / conn.recv).
#include <parex/parex.hpp>

#include <cstdio>
#include <string>

void child(parex::Connection conn) {
  for (;;) {
    const auto msg = conn.recv<std::string>();
    if (msg == "END") break;
    conn.send("echo: " + msg);
  }
  conn.close();
}
PAREX_REGISTER(child);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  auto [parent_end, child_end] = parex::Pipe();
  parex::Process p(child, child_end);
  p.start();
  child_end.close();  // as in Python: only the child holds its end now
  for (std::string m : {"hello", "how are you?"}) {
    parent_end.send(m);
    std::printf("%s\n", parent_end.recv<std::string>().c_str());
  }
  parent_end.send(std::string("END"));
  p.join();
  try {
    parent_end.recv<std::string>();
  } catch (const parex::EOFError&) {
    std::printf("the child closed its end\n");
  }
}
