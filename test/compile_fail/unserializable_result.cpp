// expect: the return type is not serializable
#include <parex/parex.hpp>
struct Opaque {
  int* p;
};
Opaque make(int) { return {nullptr}; }
void f(parex::ProcessPoolExecutor& pool) { pool.submit(make, 1); }
