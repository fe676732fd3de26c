// expect: PAREX_REGISTER: a parameter type is not serializable
#include <parex/parex.hpp>
int deref(const int* p) { return *p; }
PAREX_REGISTER(deref);
