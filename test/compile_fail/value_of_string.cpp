// expect: so T must be trivially copyable
#include <parex/parex.hpp>
#include <string>
parex::Value<std::string> v("no");
