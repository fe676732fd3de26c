// expect: a lambda with captures or a function object with state cannot run in another process
#include <parex/parex.hpp>
void f(parex::ProcessPoolExecutor& pool) {
  const int k = 3;
  pool.submit([k](int x) { return x * k; }, 1);
}
