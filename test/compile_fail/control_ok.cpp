// expect-success: the harness compiles what is valid (so the failures above mean something)
#include <parex/parex.hpp>
int square(int x) { return x * x; }
PAREX_REGISTER(square);
const auto twice = [](int x) { return 2 * x; };
PAREX_REGISTER_AS("twice", twice);
void f(parex::ProcessPoolExecutor& pool) {
  pool.submit(square, 1);
  pool.submit(twice, 1);
  for (int y : pool.map(square, std::vector{1, 2})) (void)y;
}
