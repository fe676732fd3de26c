// expect: a parameter type is not serializable
#include <parex/parex.hpp>
struct Opaque {
  int* p;
};
int use(Opaque o) { return *o.p; }
void f(parex::ProcessPoolExecutor& pool) { pool.submit(use, Opaque{nullptr}); }
