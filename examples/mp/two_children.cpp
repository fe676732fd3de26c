// Two children with different arguments (Python: Process(target=greet, args=("alice",))).
#include <parex/parex.hpp>

#include <cstdio>
#include <string>

void greet(std::string name) {
  std::printf("hello %s from %s\n", name.c_str(), parex::current_process().name.c_str());
}
PAREX_REGISTER(greet);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Process a(greet, std::string("alice")), b(greet, std::string("bob"));
  a.name = "first";
  b.name = "second";
  a.start();
  b.start();
  a.join();
  b.join();
}
