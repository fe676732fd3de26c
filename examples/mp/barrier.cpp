// A Barrier releases 4 processes together (Python: barrier.wait()).
#include <parex/parex.hpp>

#include <cstdio>
#include <vector>

void party(parex::Barrier barrier, parex::Value<int> arrived, int id) {
  {
    std::lock_guard g(arrived.get_lock());
    ++arrived.value();
  }
  barrier.wait();
  // Everyone arrived before anyone passes:
  std::printf("process %d passed with %d arrived\n", id, arrived.value());
}
PAREX_REGISTER(party);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Barrier barrier(4);
  parex::Value<int> arrived(0);
  std::vector<parex::Process> ps;
  for (int i = 0; i < 4; ++i) ps.emplace_back(party, barrier, arrived, i);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
}
