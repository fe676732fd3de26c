// expect: this function object is not registered
#include <parex/parex.hpp>
const auto twice = [](int x) { return 2 * x; };
void f(parex::ProcessPoolExecutor& pool) { pool.submit(twice, 1); }
