// Processes wait at an Event until the main process opens the gate (Python: event.wait()).
#include <parex/parex.hpp>

#include <cstdio>
#include <vector>

void wait_at_gate(parex::Event gate, int id) {
  gate.wait();
  std::printf("worker %d passed the gate\n", id);
}
PAREX_REGISTER(wait_at_gate);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Event gate;
  std::vector<parex::Process> ps;
  for (int i = 0; i < 3; ++i) ps.emplace_back(wait_at_gate, gate, i);
  for (auto& p : ps) p.start();
  std::printf("opening the gate\n");
  std::fflush(stdout);
  gate.set();
  for (auto& p : ps) p.join();
}
