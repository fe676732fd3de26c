// Process hygiene: workers never outlive the parent, never linger as zombies, and pools
// created and destroyed in numbers leak no file descriptors.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "contract_functions.hpp"
#include "helpers.hpp"

#include <boost/process/child.hpp>
#include <boost/process/io.hpp>
#include <boost/process/pipe.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace test;
namespace bp = boost::process;

namespace {
std::size_t open_fds() {
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"), {}));
}

// 'R', 'S', 'Z', ... or 0 if there is no such process.
char process_state(int pid, int* ppid = nullptr) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return 0;
  const auto close = line.rfind(')');  // the name may contain spaces and parentheses
  std::istringstream rest(line.substr(close + 2));
  char state = 0;
  int parent = 0;
  rest >> state >> parent;
  if (ppid) *ppid = parent;
  return state;
}

std::vector<int> zombie_children() {
  std::vector<int> out;
  for (auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    int ppid = 0;
    if (process_state(std::stoi(name), &ppid) == 'Z' && ppid == ::getpid()) out.push_back(std::stoi(name));
  }
  return out;
}

std::size_t pool_rounds() {
  if (const char* s = std::getenv("PAREX_SOAK_POOLS")) return std::stoul(s);
  return 30;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(processes)

BOOST_AUTO_TEST_CASE(many_pools_leak_no_fds_and_leave_no_zombies) {
  { parex::ProcessPoolExecutor warm{{.max_workers = 2}}; warm.submit(square, 1).result(deadlock_timeout); }
  const std::size_t fds = open_fds();
  const std::size_t rounds = pool_rounds();
  for (std::size_t i = 0; i < rounds; ++i) {
    parex::ProcessPoolExecutor pool{{.max_workers = 2}};
    if (i % 3 == 0) BOOST_REQUIRE(pool.submit(square, int(i)).result(deadlock_timeout) == int(i * i));
    if (i % 3 == 1) pool.shutdown(false);  // and some are destroyed before their workers are even up
  }
  BOOST_TEST(open_fds() == fds);
  BOOST_TEST(zombie_children().empty());
}

BOOST_AUTO_TEST_CASE(workers_die_with_a_killed_parent) {
  bp::ipstream out;
  bp::child host(PAREX_POOL_HOST, bp::std_out > out);
  std::string line;
  BOOST_REQUIRE(std::getline(out, line));
  std::istringstream in(line);
  std::vector<int> workers;
  for (int pid; in >> pid;) workers.push_back(pid);
  BOOST_REQUIRE(workers.size() == 3u);
  for (int pid : workers) BOOST_REQUIRE(process_state(pid) != 0);
  ::kill(host.id(), SIGKILL);
  host.wait();
  // PR_SET_PDEATHSIG: each worker gets SIGKILL as its parent dies; then whoever adopted it
  // reaps it. Gone, or a zombie of someone else until then - never running on.
  for (int pid : workers)
    BOOST_TEST(eventually([&] {
                 const char s = process_state(pid);
                 return s == 0 || s == 'Z' || s == 'X';
               }),
               "worker " << pid << " outlived its parent");
}

BOOST_AUTO_TEST_SUITE_END()
