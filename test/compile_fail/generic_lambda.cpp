// expect: no single signature
#include <parex/parex.hpp>
void f(parex::ProcessPoolExecutor& pool) { pool.submit([](auto x) { return x; }, 1); }
