// expect: a function object with state .* cannot be shipped by name
#include <parex/parex.hpp>
struct Scale {
  int k;
  int operator()(int x) const { return k * x; }
};
PAREX_REGISTER_AS("scale", Scale{2});
