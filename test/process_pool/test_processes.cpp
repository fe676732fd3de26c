// Process hygiene: workers never outlive the parent, never linger as zombies, and pools
// created and destroyed in numbers leak no file descriptors.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"
#include "support/processes.hpp"

#include <boost/process/child.hpp>
#include <boost/process/io.hpp>
#include <boost/process/pipe.hpp>

#include <csignal>
#include <fcntl.h>
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

using test::process_state;

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

}  // namespace

// A worker's descriptors above stderr: {fd, 1 if it would pass to a process the worker starts}.
std::vector<std::pair<int, int>> worker_fds() {
  std::vector<int> fds;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) fds.push_back(std::stoi(e.path().filename()));
  std::vector<std::pair<int, int>> out;
  for (int fd : fds) {
    const int flags = ::fcntl(fd, F_GETFD);
    if (fd > 2 && flags >= 0) out.emplace_back(fd, (flags & FD_CLOEXEC) ? 0 : 1);  // < 0: the listing's own
  }
  return out;
}
PAREX_REGISTER(worker_fds);

namespace {
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

BOOST_AUTO_TEST_CASE(workers_inherit_only_their_channel_and_pass_it_to_nobody) {
  const int stray = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC: a careless parent's fd
  BOOST_REQUIRE(stray > 2);
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  const auto fds = pool.submit(worker_fds).result(deadlock_timeout);
  ::close(stray);
  // Its input and output pipes, its results memory and the argument arena; and a
  // process that user code starts from a worker (system, popen) inherits none of them,
  // or it would hold the pipes open and hide the worker's end from the pool.
  BOOST_TEST(fds.size() <= 4u);
  for (const auto& [fd, passes_on] : fds) {
    BOOST_TEST(fd != stray);
    BOOST_TEST(passes_on == 0, "fd " << fd << " would pass to the worker's children");
  }
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
