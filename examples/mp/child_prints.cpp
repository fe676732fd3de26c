// A child process that prints numbers (Python: Process(target=print_numbers).start()).
#include <parex/parex.hpp>

#include <cstdio>

void print_numbers(int n) {
  for (int i = 0; i < n; ++i) std::printf("%d\n", i);
}
PAREX_REGISTER(print_numbers);

int main(int argc, char** argv) {
  parex::init(argc, argv);  // the child branches here, runs print_numbers, exits
  parex::Process p(print_numbers, 5);
  p.start();
  p.join();
  std::printf("exit code %d\n", *p.exitcode());
}
