// Calls whose code destroys the worker's own file descriptors: closing every fd from 3 up,
// or dup2 of /dev/null over them. The worker's pipes to the pool go with them. Such a call
// may fail (its worker is gone) but nothing else does: the results its worker finished
// are delivered (they live in shared memory, not in the pipe), the calls queued behind
// it run elsewhere, and the pool serves on.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"

#include <fcntl.h>
#include <ranges>
#include <string>
#include <unistd.h>
#include <vector>

using namespace test;
using parex::ProcessPoolExecutor;

/// Closes every file descriptor from 3 up, as a daemonising library might.
int close_every_fd(int x) {
  for (int fd = 3; fd < 4096; ++fd) ::close(fd);
  return x;
}
PAREX_REGISTER(close_every_fd);

/// Puts /dev/null in place of every open file descriptor from 3 up.
int null_every_fd(int x) {
  const int null = ::open("/dev/null", O_RDWR);
  for (int fd = 3; fd < 4096; ++fd)
    if (fd != null && ::fcntl(fd, F_GETFD) != -1) ::dup2(null, fd);
  ::close(null);
  return x;
}
PAREX_REGISTER(null_every_fd);

namespace {
// Tiny calls on both sides of the hostile one, submitted together so that they queue
// behind it on its worker and travel in the same frames.
template <class Fn>
void only_the_hostile_call_may_fail(Fn hostile) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  for (int round = 0; round < 3; ++round) {
    std::vector<parex::Future<int>> before, after;
    for (int i = 0; i < 300; ++i) before.push_back(pool.submit(square, i));
    auto bad = pool.submit(hostile, 7);
    for (int i = 0; i < 300; ++i) after.push_back(pool.submit(square, i));
    for (int i = 0; i < 300; ++i) {
      BOOST_TEST(before[static_cast<std::size_t>(i)].result(deadlock_timeout) == i * i);
      BOOST_TEST(after[static_cast<std::size_t>(i)].result(deadlock_timeout) == i * i);
    }
    try {
      BOOST_TEST(bad.result(deadlock_timeout) == 7);  // it finished before its worker noticed
    } catch (const parex::WorkerCrashed& e) {           // or its worker was gone while it ran
      BOOST_TEST_MESSAGE("round " << round << ": " << e.what());
    }
    BOOST_TEST(pool.submit(square, 12).result(deadlock_timeout) == 144, "round " << round);
  }
  long sum = 0;
  for (int y : pool.map(square, std::views::iota(0, 1000))) sum += y;
  BOOST_TEST(sum == 332833500L);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(hostile_calls)

BOOST_AUTO_TEST_CASE(a_call_that_closes_every_fd_fails_at_most_itself) { only_the_hostile_call_may_fail(close_every_fd); }

BOOST_AUTO_TEST_CASE(a_call_that_puts_dev_null_over_every_fd_fails_at_most_itself) {
  only_the_hostile_call_may_fail(null_every_fd);
}

BOOST_AUTO_TEST_SUITE_END()
