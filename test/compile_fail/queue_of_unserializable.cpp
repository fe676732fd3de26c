// expect: a parameter type is not serializable
#include <parex/parex.hpp>
struct Opaque {
  int* p;
};
parex::Queue<Opaque> q;
