// expect: parex::Process: an argument is not convertible to its parameter type
#include <parex/parex.hpp>
#include <string>
void f(std::string) {}
void g() { parex::Process p(f, 42); }
