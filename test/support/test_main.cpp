// The one main of the test binary. It calls parex::init first, so this binary is also
// the worker that ProcessPoolExecutor re-executes (Boost.Process's own test pattern).
#define BOOST_TEST_DYN_LINK
#define BOOST_TEST_NO_MAIN
#define BOOST_TEST_MODULE parex
#include <boost/test/unit_test.hpp>

#include <parex/parex.hpp>

int main(int argc, char** argv) {
  parex::init(argc, argv);  // a worker branches off here and never returns
  return boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
}
