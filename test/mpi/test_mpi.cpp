// What only MpiExecutor has: worker ranks that are other processes, the limits of the
// job, big arguments and results as several messages, and the watchdog for a rank that
// goes silent. Runs under `mpirun -np 3` (suite mpi), except mpi_alone, which runs the
// binary alone to check the error that says how to launch it.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"

#include <parex/mpi.hpp>

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace test;
using namespace std::chrono_literals;

int rank_pid(int sleep_ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
  return static_cast<int>(::getpid());
}
PAREX_REGISTER(rank_pid);

/// Returns the bytes reversed, with their sum in front (8 bytes): a big result for a big argument.
std::vector<std::uint8_t> reverse_with_sum(std::vector<std::uint8_t> v) {
  std::uint64_t sum = std::accumulate(v.begin(), v.end(), std::uint64_t{0});
  std::reverse(v.begin(), v.end());
  v.insert(v.begin(), reinterpret_cast<std::uint8_t*>(&sum), reinterpret_cast<std::uint8_t*>(&sum) + 8);
  return v;
}
PAREX_REGISTER(reverse_with_sum);

/// Writes this rank's pid to `path`, then stops the whole process (SIGSTOP): a rank
/// that goes silent. Returns 1 once continued.
int stop_self(std::string path) {
  {
    std::ofstream(path + ".tmp") << ::getpid();
  }
  std::filesystem::rename(path + ".tmp", path);
  ::raise(SIGSTOP);
  return 1;
}
PAREX_REGISTER(stop_self);

/// What constructing an MpiExecutor in a worker rank says.
std::string executor_in_a_worker_rank() {
  try {
    parex::MpiExecutor nested;
  } catch (const parex::InvalidStateError& e) {
    return e.what();
  }
  return "no error";
}
PAREX_REGISTER(executor_in_a_worker_rank);

std::string big_string(int bytes) { return std::string(static_cast<std::size_t>(bytes), 'x'); }
PAREX_REGISTER(big_string);


/// MpiOptions::initializer of the tests: tags this rank and leaves a file named after it.
int g_init_tag = 0;
void tag_rank(std::string dir, int tag) {
  g_init_tag = tag;
  std::ofstream(dir + "/init-" + std::to_string(parex::mpi::rank())) << tag;
}
PAREX_REGISTER(tag_rank);
/// The tag tag_rank left in this rank (0: none).
int init_tag() { return g_init_tag; }
PAREX_REGISTER(init_tag);
void init_throws() { throw std::runtime_error("init boom"); }
PAREX_REGISTER(init_throws);
namespace parity {
int mark_then_sleep(std::string path, int ms);  // test_parity.cpp
}  // namespace parity

/// Adds a line to the file at `path` (how many times it ran, for a test on rank 0 to
/// read; a cancelled call must leave none), then sleeps ms.
int count_then_sleep(std::string path, int ms) {
  std::ofstream(path, std::ios::app) << "ran" << std::endl;
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
PAREX_REGISTER(count_then_sleep);
/// The same under another name: a function never measured, so estimated slow (a rank
/// holds nothing behind it).
int count_then_block(std::string path, int ms) { return count_then_sleep(std::move(path), ms); }
PAREX_REGISTER(count_then_block);
int lines_in(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

namespace {
struct Dir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("parex-mpi-" + std::to_string(::getpid()) + "-" +
                                std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  Dir() { std::filesystem::create_directories(path); }
  ~Dir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& n) const { return (path / n).string(); }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(mpi)

BOOST_AUTO_TEST_CASE(the_workers_are_the_other_ranks) {
  BOOST_TEST(parex::mpi::launched());
  BOOST_TEST(parex::mpi::rank() == 0);
  BOOST_REQUIRE(parex::mpi::world_size() == 3);
  parex::MpiExecutor ex;
  BOOST_TEST(ex.max_workers() == 2u);
  std::vector<parex::Future<int>> fs;
  for (int i = 0; i < 8; ++i) fs.push_back(ex.submit(rank_pid, 50));  // slow calls spread over both ranks
  std::set<int> pids;
  for (auto& f : fs) pids.insert(f.result(deadlock_timeout));
  BOOST_TEST(pids.size() == 2u);
  BOOST_TEST(!pids.count(static_cast<int>(::getpid())));
}

BOOST_AUTO_TEST_CASE(max_workers_limits_the_ranks_and_beyond_the_job_is_a_value_error) {
  parex::MpiExecutor one{{.max_workers = 1}};
  BOOST_TEST(one.max_workers() == 1u);
  std::set<int> pids;
  for (int i = 0; i < 6; ++i) pids.insert(one.submit(rank_pid, 5).result(deadlock_timeout));
  BOOST_TEST(pids.size() == 1u);
  auto e = expect_error<parex::ValueError>([] { parex::MpiExecutor too_many{{.max_workers = 3}}; });
  BOOST_TEST(std::string(e.what()).find("2 worker ranks") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(big_arguments_and_results_cross_whole) {
  parex::MpiExecutor ex;
  for (std::size_t n : {std::size_t{70} << 10, std::size_t{48} << 20}) {  // past the splice threshold; 48 MiB
    std::vector<std::uint8_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 7 + 3);
    const std::uint64_t sum = std::accumulate(v.begin(), v.end(), std::uint64_t{0});
    auto a = ex.submit(reverse_with_sum, v);
    auto b = ex.submit(square, 12);  // a small call in the same frame or the next
    const auto r = a.result(deadlock_timeout);
    BOOST_REQUIRE(r.size() == n + 8);
    std::uint64_t got = 0;
    std::memcpy(&got, r.data(), 8);
    BOOST_TEST(got == sum);
    BOOST_TEST(std::equal(v.rbegin(), v.rend(), r.begin() + 8));
    BOOST_TEST(b.result(deadlock_timeout) == 144);
  }
}

BOOST_AUTO_TEST_CASE(many_tiny_calls_and_a_chunked_map) {
  parex::MpiExecutor ex;
  std::vector<int> xs(40'000);  // squares fit an int
  std::iota(xs.begin(), xs.end(), 0);
  long long sum = 0, expect = 0;
  for (int y : ex.map(square, xs, {.chunksize = 512})) sum += y;
  for (int x : xs) expect += static_cast<long long>(x) * x;
  BOOST_TEST(sum == expect);
  std::vector<parex::Future<int>> fs;
  for (int i = 0; i < 20'000; ++i) fs.push_back(ex.submit(square, i % 1000));
  long long s2 = 0, e2 = 0;
  for (int i = 0; i < 20'000; ++i) {
    s2 += fs[i].result(deadlock_timeout);
    e2 += (i % 1000) * (i % 1000);
  }
  BOOST_TEST(s2 == e2);
}

BOOST_AUTO_TEST_CASE(only_rank_0_has_workers) {
  parex::MpiExecutor ex;
  const std::string what = ex.submit(executor_in_a_worker_rank).result(deadlock_timeout);
  BOOST_TEST(what.find("only rank 0") != std::string::npos, what);
}

// A result past the eager limit, computed just before a slow call in the same frame,
// reaches rank 0 while the slow call runs: the rank's flusher sends it and drives the
// transfer (which needs the sender to call into MPI) instead of leaving it for the end.
BOOST_AUTO_TEST_CASE(the_initializer_runs_on_every_rank_before_its_first_call) {
  Dir dir;
  parex::MpiExecutor ex{{.initializer = parex::Initializer(tag_rank, dir.path.string(), 7)}};
  std::vector<parex::Future<int>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(ex.submit(init_tag));
  for (auto& f : fs) BOOST_TEST(f.result(deadlock_timeout) == 7);
  // Every rank it may use, calls or not.
  for (int r = 1; r < parex::mpi::world_size(); ++r)
    BOOST_TEST(eventually([&] { return std::filesystem::exists(dir / ("init-" + std::to_string(r))); }));
}

BOOST_AUTO_TEST_CASE(an_initializer_that_throws_breaks_its_executor_naming_the_rank) {
  {
    parex::MpiExecutor ex{{.initializer = parex::Initializer(init_throws)}};
    auto e = expect_error<parex::BrokenExecutor>([&] { ex.submit(square, 3).result(deadlock_timeout); });
    const std::string what = e.what();
    BOOST_TEST(what.find("initializer failed on MPI worker rank") != std::string::npos, what);
    BOOST_TEST(what.find("init boom") != std::string::npos, what);
    expect_error<parex::BrokenExecutor>([&] { ex.submit(square, 3); });
  }
  parex::MpiExecutor other;  // the ranks serve the next executor as before
  BOOST_TEST(other.submit(square, 3).result(deadlock_timeout) == 9);
}

BOOST_AUTO_TEST_CASE(interrupt_of_a_running_call_answers_false_as_a_thread_pool_does) {
  Dir dir;
  parex::MpiExecutor ex;
  auto f = ex.submit(parity::mark_then_sleep, dir / "running", 300);
  BOOST_TEST(eventually([&] { return std::filesystem::exists(dir / "running"); }));
  BOOST_TEST(!f.interrupt());
  BOOST_TEST(f.result(deadlock_timeout) == 300);
}

// A call a worker rank holds behind a long call (sent to it, not started) is taken back by
// Future::interrupt: true, CancelledError, and it never runs. Held, not queued on rank 0:
// count_then_sleep is measured fast first, so rank 1 takes a second call of it behind the
// 6 s one it runs (room for a loaded machine); rank 2 runs a call estimated slow meanwhile (so it takes nothing more,
// and no idle rank makes rank 0 take the held call back on its own); stats() shows
// nothing queued on rank 0 and three calls on the ranks.
BOOST_AUTO_TEST_CASE(interrupt_takes_back_a_call_a_rank_holds_behind_a_long_one) {
  Dir dir;
  parex::MpiExecutor ex{{.max_workers = 2}};
  BOOST_REQUIRE(parex::mpi::world_size() >= 3);
  for (int i = 0; i < 40; ++i) ex.submit(count_then_sleep, dir / "warm", 0).result(deadlock_timeout);
  auto long_call = ex.submit(count_then_sleep, dir / "long", 6000);
  BOOST_REQUIRE(eventually([&] { return lines_in(dir / "long") == 1; }));
  auto blocker = ex.submit(count_then_block, dir / "blocker", 6000);  // on the other rank: the first has no room
  BOOST_REQUIRE(eventually([&] { return lines_in(dir / "blocker") == 1; }));
  auto held = ex.submit(count_then_sleep, dir / "held", 0);
  parex::ExecutorStats s;
  BOOST_REQUIRE(eventually([&] {
    s = ex.stats();
    return s.queued == 0 && s.running == 3;
  }));
  BOOST_TEST_REQUIRE(!held.done());
  BOOST_TEST_REQUIRE(!long_call.done());  // still running: what rank 1 holds behind it has not started
  BOOST_TEST(held.interrupt());
  expect_error<parex::CancelledError>([&] { held.result(deadlock_timeout); });
  BOOST_TEST(long_call.result(deadlock_timeout) == 6000);
  BOOST_TEST(blocker.result(deadlock_timeout) == 6000);
  // Everything drains; the calls after it run, each once; the held one never ran.
  std::vector<parex::Future<int>> after;
  for (int i = 0; i < 4; ++i) after.push_back(ex.submit(count_then_sleep, dir / "after", 50));
  for (auto& f : after) BOOST_TEST(f.result(deadlock_timeout) == 50);
  BOOST_TEST(eventually([&] {
    s = ex.stats();
    return s.queued == 0 && s.running == 0;
  }));
  BOOST_TEST(lines_in(dir / "after") == 4);
  BOOST_TEST(lines_in(dir / "held") == 0);
  BOOST_TEST(!std::filesystem::exists(dir / "held"));
}

BOOST_AUTO_TEST_CASE(stats_name_the_worker_ranks) {
  parex::MpiExecutor ex;
  for (int i = 0; i < 10; ++i) ex.submit(square, i).result(deadlock_timeout);
  parex::ExecutorStats s;
  BOOST_TEST(eventually([&] {
    s = ex.stats();
    return s.done == 10;
  }));
  BOOST_TEST_REQUIRE(s.workers.size() == static_cast<std::size_t>(parex::mpi::world_size() - 1));
  for (std::size_t i = 0; i < s.workers.size(); ++i) BOOST_TEST(s.workers[i].rank == static_cast<int>(i + 1));
}

BOOST_AUTO_TEST_CASE(a_big_result_does_not_wait_behind_a_slow_neighbour) {
  parex::MpiExecutor ex{{.max_workers = 1}};
  for (int i = 0; i < 200; ++i) ex.submit(square, i).result(deadlock_timeout);  // tiny calls: frames batch
  auto big = ex.submit(big_string, 256 << 10);
  auto slow = ex.submit(sleep_then_echo, 2000);
  BOOST_TEST(big.result(deadlock_timeout).size() == std::size_t{256} << 10);
  BOOST_TEST(!slow.done());
  BOOST_TEST(slow.result(deadlock_timeout) == 2000);
}

BOOST_AUTO_TEST_CASE(a_silent_rank_fails_its_calls_at_the_watchdog_and_the_others_go_on) {
  const auto path = std::filesystem::temp_directory_path() / ("parex-mpi-stop-" + std::to_string(::getpid()));
  std::filesystem::remove(path);
  parex::MpiExecutor ex{{.watchdog = 1000ms}};
  auto stopped = ex.submit(stop_self, path.string());
  BOOST_REQUIRE(eventually([&] { return std::filesystem::exists(path); }));
  int pid = 0;
  std::ifstream(path) >> pid;
  BOOST_REQUIRE(pid > 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto e = expect_error<parex::WorkerCrashed>([&] { stopped.result(deadlock_timeout); });
  const auto waited = std::chrono::steady_clock::now() - t0;
  BOOST_TEST(std::string(e.what()).find("watchdog") != std::string::npos);
  BOOST_TEST(e.function() == "stop_self");
  BOOST_TEST(waited < 10s);
  // The other rank takes every call from now on.
  for (int i = 0; i < 20; ++i) BOOST_TEST(ex.submit(rank_pid, 0).result(deadlock_timeout) != pid);
  ::kill(pid, SIGCONT);  // so that the job can finalize at exit
  std::filesystem::remove(path);
}

BOOST_AUTO_TEST_SUITE_END()

// Run without mpirun: the executor says how to launch the program.
BOOST_AUTO_TEST_SUITE(mpi_alone)

BOOST_AUTO_TEST_CASE(outside_an_mpi_job_the_executor_says_how_to_launch) {
  BOOST_TEST(!parex::mpi::launched());
  BOOST_TEST(parex::mpi::world_size() == 1);
  auto e = expect_error<parex::InvalidStateError>([] { parex::MpiExecutor ex; });
  BOOST_TEST(std::string(e.what()).find("mpirun") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
