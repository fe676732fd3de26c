// The one main of the test binary. It calls parex::init first, so this binary is also
// the worker that ProcessPoolExecutor re-executes (Boost.Process's own test pattern).
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include <parex/parex.hpp>

// What BOOST_TEST_MODULE would define, written out: then this file need not be the first
// to include Boost.Test in its unit (a unity build; the precompiled header comes first).
bool init_unit_test() {
  boost::unit_test::framework::master_test_suite().p_name.value = "parex";
  return true;
}

int main(int argc, char** argv) {
  parex::init(argc, argv);  // a worker branches off here and never returns
  return boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
}
