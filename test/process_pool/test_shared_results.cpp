// Results through shared memory (ProcessPoolOptions::shared_results_bytes): a worker's
// batch of results past the threshold stays in its shared buffer and the pool reads it
// there. Checked: results intact at every threshold (every frame shared, the default,
// never), results sent that way survive their worker's crash right after, and a frame
// that names bytes outside the buffer stops that worker with a typed error while the pool
// goes on; the threshold decides (the worker's own count of bytes written) and a busy
// worker's buffer stays small. Only this thread asserts.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include <parex/detail/wire/frame.hpp>
#include <parex/parex.hpp>

#include "support/contract_functions.hpp"  // square
#include "support/helpers.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <numeric>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace shared_results_test {
using Bytes = std::vector<unsigned char>;
Bytes pattern(std::size_t n, int seed) {
  Bytes v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<unsigned char>((static_cast<std::size_t>(seed) + i * 7) % 251);
  return v;
}
std::size_t first_wrong(const Bytes& v, std::size_t n, int seed) {
  if (v.size() != n) return 0;
  for (std::size_t i = 0; i < n; ++i)
    if (v[i] != static_cast<unsigned char>((static_cast<std::size_t>(seed) + i * 7) % 251)) return i;
  return SIZE_MAX;
}
// 2 MiB of pattern(seed), or an abort for a negative seed.
Bytes two_mib_or_abort(int seed) {
  if (seed < 0) std::abort();
  return pattern(std::size_t{2} << 20, seed);
}
// 2 MiB of one byte value: made faster than the pool can read it.
Bytes two_mib_filled(int seed) { return Bytes(std::size_t{2} << 20, static_cast<unsigned char>(seed)); }
// Writes a shared_results frame naming bytes far outside this worker's buffer to the
// pool (the worker's output pipe: its only write-only pipe past stderr), then waits to be
// stopped for it.
int forge_shared_frame(int) {
  for (int fd = 3; fd < 1024; ++fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode) || (::fcntl(fd, F_GETFL) & O_ACCMODE) != O_WRONLY) continue;
    const std::uint64_t where[2] = {std::uint64_t{1} << 40, 64};
    const auto h = parex::detail::frame_header(parex::detail::FrameKind::shared_results, sizeof where, 1, 0);
    if (::write(fd, &h, sizeof h) != sizeof h || ::write(fd, where, sizeof where) != sizeof where) return -1;
    std::this_thread::sleep_for(std::chrono::seconds(30));
    return 1;
  }
  return -2;
}
// Bytes this process has written with write(2) and its kind (/proc/self/io: wchar).
long long bytes_written(int) {
  std::FILE* f = std::fopen("/proc/self/io", "r");
  long long rchar = -1, wchar = -1;
  if (!f || std::fscanf(f, "rchar: %lld wchar: %lld", &rchar, &wchar) != 2) wchar = -1;
  if (f) std::fclose(f);
  return wchar;
}
// The size of this worker's shared page and results buffer (its memfd), or -1.
long long results_buffer_bytes(int) {
  for (int fd = 3; fd < 1024; ++fd) {
    char link[256];
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
    if (n <= 0) continue;
    link[n] = 0;
    struct stat st {};
    if (std::string(link).find("memfd:parex-worker") != std::string::npos && ::fstat(fd, &st) == 0) return st.st_size;
  }
  return -1;
}
// This process's fd of the memfd whose /proc link names `what`, or -1.
int memfd_named(const char* what) {
  for (int fd = 3; fd < 1024; ++fd) {
    char link[256];
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
    if (n <= 0) continue;
    link[n] = 0;
    if (std::string(link).find(what) != std::string::npos) return fd;
  }
  return -1;
}
// The memory the results memfd holds (its allocated blocks, not its size), or -1.
long long results_buffer_memory(int) {
  struct stat st {};
  const int fd = memfd_named("memfd:parex-worker");
  return fd >= 0 && ::fstat(fd, &st) == 0 ? static_cast<long long>(st.st_blocks) * 512 : -1;
}
// User code that shrinks its worker's results memfd to nothing, then returns n bytes of
// pattern(seed) (big enough to be read by the pool from that memfd).
Bytes shrink_results_then(std::size_t n, int seed) {
  const int fd = memfd_named("memfd:parex-worker");
  if (fd < 0) return {};
  if (::ftruncate(fd, 0) == 0) return pattern(1, 0);  // it took: the test fails here, if the worker lives
  return pattern(n, seed);
}
// The same from a thread that keeps shrinking it (to 0, to one page) while the results
// of this call and the calls behind it are written, sent and read.
Bytes shrink_results_meanwhile(std::size_t n, int seed) {
  static std::atomic<bool> running{false};
  const int fd = memfd_named("memfd:parex-worker");
  if (fd >= 0 && !running.exchange(true))
    std::thread([fd] {
      const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
      for (int i = 0; std::chrono::steady_clock::now() < end; ++i) (void)!::ftruncate(fd, i % 2 ? 4096 : 0);
    }).detach();
  return pattern(n, seed);
}
// User code that shrinks the pool's argument arena (its workers hold it, to read from).
int shrink_the_arena(int) {
  const int fd = memfd_named("memfd:parex-args");
  if (fd < 0) return -1;
  return ::ftruncate(fd, 0) == 0 ? 1 : 0;
}
std::size_t size_of(const Bytes& b) { return b.size(); }
}  // namespace shared_results_test

using namespace shared_results_test;
PAREX_REGISTER_AS("shared_results_test::pattern", pattern);
PAREX_REGISTER_AS("shared_results_test::two_mib_or_abort", two_mib_or_abort);
PAREX_REGISTER_AS("shared_results_test::forge_shared_frame", forge_shared_frame);
PAREX_REGISTER_AS("shared_results_test::bytes_written", bytes_written);
PAREX_REGISTER_AS("shared_results_test::two_mib_filled", two_mib_filled);
PAREX_REGISTER_AS("shared_results_test::results_buffer_bytes", results_buffer_bytes);
PAREX_REGISTER_AS("shared_results_test::results_buffer_memory", results_buffer_memory);
PAREX_REGISTER_AS("shared_results_test::shrink_results_then", shrink_results_then);
PAREX_REGISTER_AS("shared_results_test::shrink_results_meanwhile", shrink_results_meanwhile);
PAREX_REGISTER_AS("shared_results_test::shrink_the_arena", shrink_the_arena);
PAREX_REGISTER_AS("shared_results_test::size_of", size_of);

BOOST_AUTO_TEST_SUITE(shared_results)

BOOST_AUTO_TEST_CASE(results_arrive_intact_whichever_way_they_travel) {
  for (std::size_t threshold : {std::size_t{1}, std::size_t{1} << 20, SIZE_MAX}) {
    BOOST_TEST_CONTEXT("shared_results_bytes " << threshold) {
      parex::ProcessPoolExecutor pool{{.max_workers = 2, .shared_results_bytes = threshold}};
      const std::vector<std::size_t> sizes{0, 1, 1000, (std::size_t{1} << 20) - 5, std::size_t{1} << 20,
                                           std::size_t{3} << 20, std::size_t{9} << 20, std::size_t{40} << 20};
      std::vector<parex::Future<Bytes>> fs;
      for (int round = 0; round < 2; ++round)
        for (std::size_t i = 0; i < sizes.size(); ++i) fs.push_back(pool.submit(pattern, sizes[i], int(i) + round));
      for (std::size_t k = 0; k < fs.size(); ++k) {
        const std::size_t i = k % sizes.size();
        const int seed = static_cast<int>(i + k / sizes.size());
        BOOST_TEST(first_wrong(fs[k].result(test::deadlock_timeout), sizes[i], seed) == SIZE_MAX, "size " << sizes[i]);
      }
      // Many small results in batches: with threshold 1 every batch is read from shared
      // memory and acknowledged before its bytes are reused.
      std::vector<int> in(20000);
      std::iota(in.begin(), in.end(), 0);
      std::vector<int> out;
      for (int v : pool.map(square, in, {.chunksize = 64})) out.push_back(v);
      BOOST_REQUIRE(out.size() == in.size());
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < in.size(); ++i) wrong += out[i] != in[i] * in[i];
      BOOST_TEST(wrong == 0u);
      // No worker died on the way (a crash is salvaged without a trace but this one: a
      // worker that kept its shared page's address across a growth of the buffer did).
      BOOST_TEST(pool.stats().restarts == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_threshold_decides_which_way_results_travel) {
  const std::size_t big = std::size_t{40} << 20;
  for (std::size_t threshold : {std::size_t{1} << 20, SIZE_MAX}) {
    BOOST_TEST_CONTEXT("shared_results_bytes " << threshold) {
      parex::ProcessPoolExecutor pool{{.max_workers = 1, .shared_results_bytes = threshold}};
      const long long before = pool.submit(bytes_written, 0).result(test::deadlock_timeout);
      BOOST_TEST(first_wrong(pool.submit(pattern, big, 3).result(test::deadlock_timeout), big, 3) == SIZE_MAX);
      const long long written = pool.submit(bytes_written, 0).result(test::deadlock_timeout) - before;
      BOOST_REQUIRE(before >= 0);
      if (threshold == SIZE_MAX) BOOST_TEST(written >= static_cast<long long>(big));  // through the pipe
      else BOOST_TEST(written < (1 << 20));  // a frame naming where the 40 MiB lie
    }
  }
}

BOOST_AUTO_TEST_CASE(a_busy_worker_keeps_its_results_buffer_small) {
  // One call of 64 items of 2 MiB each, with another call waiting behind it: the input
  // never runs dry, so the worker never settles between them. Each result is read from
  // shared memory and the buffer is reused once read (128 MiB through a buffer that stays
  // small). (A pool slower than its worker, where the buffer's own limit makes the
  // worker wait, is not forced here: on this path the pool reads faster.)
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  pool.submit(square, 1).result(test::deadlock_timeout);
  std::vector<int> seeds(64);
  std::iota(seeds.begin(), seeds.end(), 0);
  auto results = pool.map(two_mib_filled, seeds, {.chunksize = 64});
  auto size = pool.submit(results_buffer_bytes, 0);
  std::size_t wrong = 0, n = 0;
  for (const Bytes& b : results) {
    wrong += b != Bytes(std::size_t{2} << 20, static_cast<unsigned char>(n));
    ++n;
  }
  BOOST_TEST(n == 64u);
  BOOST_TEST(wrong == 0u);
  const long long bytes = size.result(test::deadlock_timeout);
  BOOST_TEST(bytes > 0);
  BOOST_TEST(bytes <= (32LL << 20), bytes << " bytes after 128 MiB of results");
}

BOOST_AUTO_TEST_CASE(shared_results_survive_a_crash_right_after_them) {
  for (std::size_t threshold : {std::size_t{1}, std::size_t{1} << 20}) {
    BOOST_TEST_CONTEXT("shared_results_bytes " << threshold) {
      parex::ProcessPoolExecutor pool{{.max_workers = 1, .shared_results_bytes = threshold}};
      pool.submit(square, 1).result(test::deadlock_timeout);  // the worker is up: one batch follows
      // One batch: 2 MiB results (each flushed on its own, from shared memory), the
      // victim, calls behind it.
      std::vector<parex::Future<Bytes>> before, after;
      for (int i = 0; i < 4; ++i) before.push_back(pool.submit(two_mib_or_abort, i));
      auto victim = pool.submit(two_mib_or_abort, -1);
      for (int i = 0; i < 3; ++i) after.push_back(pool.submit(two_mib_or_abort, 10 + i));
      for (int i = 0; i < 4; ++i)
        BOOST_TEST(first_wrong(before[i].result(test::deadlock_timeout), std::size_t{2} << 20, i) == SIZE_MAX);
      BOOST_CHECK_THROW(victim.result(test::deadlock_timeout), parex::WorkerCrashed);
      for (int i = 0; i < 3; ++i)
        BOOST_TEST(first_wrong(after[i].result(test::deadlock_timeout), std::size_t{2} << 20, 10 + i) == SIZE_MAX);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_frame_naming_bytes_outside_the_buffer_stops_only_that_worker) {
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  auto forged = pool.submit(forge_shared_frame, 0);
  std::string what;
  try {
    forged.result(test::deadlock_timeout);
  } catch (const parex::WorkerCrashed& e) {
    what = e.what();
  }
  BOOST_TEST(what.find("bad frame") != std::string::npos, what);
  BOOST_TEST(what.find("outside the worker's buffer") != std::string::npos, what);
  BOOST_TEST(first_wrong(pool.submit(pattern, std::size_t{3} << 20, 5).result(test::deadlock_timeout),
                         std::size_t{3} << 20, 5) == SIZE_MAX);
}

// The pool maps its workers' memfds (results, shared page) and its argument arena, which
// the workers hold: user code in a worker that shrinks one must not crash the pool with
// a SIGBUS. They are sealed against shrinking: the ftruncate fails, the calls succeed.
BOOST_AUTO_TEST_CASE(user_code_cannot_shrink_the_memfds_the_pool_maps) {
  const std::size_t big = std::size_t{9} << 20;
  parex::ProcessPoolExecutor pool{{.max_workers = 1, .shared_results_bytes = std::size_t{1} << 20}};
  BOOST_TEST(first_wrong(pool.submit(shrink_results_then, big, 4).result(test::deadlock_timeout), big, 4) == SIZE_MAX);
  std::vector<parex::Future<Bytes>> fs;
  for (int i = 0; i < 12; ++i) fs.push_back(pool.submit(shrink_results_meanwhile, big, i));
  for (int i = 0; i < 12; ++i)
    BOOST_TEST(first_wrong(fs[i].result(test::deadlock_timeout), big, i) == SIZE_MAX, "call " << i);
  BOOST_TEST(pool.submit(shrink_the_arena, 0).result(test::deadlock_timeout) == 0);  // the arena is sealed too
  // A big argument is written into the arena by this process after that attempt.
  BOOST_TEST(pool.submit(size_of, pattern(std::size_t{16} << 20, 1)).result(test::deadlock_timeout) ==
             std::size_t{16} << 20);
  BOOST_TEST(pool.stats().restarts == 0u);  // no worker died on the way either
}

BOOST_AUTO_TEST_CASE(a_huge_result_gives_its_memory_back_once_read) {
  const std::size_t big = std::size_t{40} << 20;
  parex::ProcessPoolExecutor pool{{.max_workers = 1, .shared_results_bytes = std::size_t{1} << 20}};
  BOOST_TEST(first_wrong(pool.submit(pattern, big, 2).result(test::deadlock_timeout), big, 2) == SIZE_MAX);
  // The worker settled before it idled: the bytes past the buffer's initial size are a
  // hole again (the file keeps its size: it can only grow).
  BOOST_TEST(pool.submit(results_buffer_bytes, 0).result(test::deadlock_timeout) >= static_cast<long long>(big));
  const long long memory = pool.submit(results_buffer_memory, 0).result(test::deadlock_timeout);
  BOOST_TEST(memory >= 0);
  BOOST_TEST(memory <= (8LL << 20), memory << " bytes held after a 40 MiB result");
}

BOOST_AUTO_TEST_SUITE_END()
