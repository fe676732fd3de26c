// A Semaphore lets 3 of 6 processes in at once (Python: with sem: ...).
#include <parex/parex.hpp>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

void visit(parex::Semaphore room, parex::Value<int> inside, parex::Value<int> most) {
  std::lock_guard in_room(room);
  {
    std::lock_guard g(inside.get_lock());
    if (++inside.value() > most.value()) most.value() = inside.value();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::lock_guard g(inside.get_lock());
  --inside.value();
}
PAREX_REGISTER(visit);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Semaphore room(3);
  parex::Value<int> inside(0), most(0);
  std::vector<parex::Process> ps;
  for (int i = 0; i < 6; ++i) ps.emplace_back(visit, room, inside, most);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  std::printf("6 visits, at most %s inside at once\n", most.value() <= 3 ? "3" : "MORE THAN 3");
}
