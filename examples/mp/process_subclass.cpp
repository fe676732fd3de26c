// A Process subclass with its own run() (Python: class Worker(Process): def run(self): ...).
#include <parex/parex.hpp>

#include <cstdio>
#include <string>

struct Greeter : parex::Process {
  std::string greeting;
  int times = 1;
  void run() override {
    for (int i = 0; i < times; ++i) std::printf("%s from %s\n", greeting.c_str(), parex::current_process().name.c_str());
  }
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & greeting & times;  // what the child needs
  }
};
PAREX_REGISTER_PROCESS(Greeter);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  Greeter g;
  g.name = "greeter";
  g.greeting = "hi";
  g.times = 2;
  g.start();
  g.join();
  std::printf("exit code %d\n", *g.exitcode());
}
