// The memory of call objects kept for reuse (src/remote/call_blocks.cpp): blocks freed on
// another thread come back to the thread that submits, and no block is ever handed out
// twice while it is in use.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include <parex/detail/remote/remote_call.hpp>
#include <parex/process_pool.hpp>
#include <parex/serialize.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

namespace call_blocks_test {

struct alignas(64) Wide {
  double v[8];
};
}  // namespace call_blocks_test
PAREX_BITWISE(call_blocks_test::Wide);

namespace call_blocks_test {
Wide wide(int x) {
  Wide w{};
  for (int i = 0; i < 8; ++i) w.v[i] = x + i;
  return w;
}
PAREX_REGISTER(wide);

namespace cb = parex::detail::call_blocks;

constexpr std::size_t call_bytes = sizeof(parex::detail::SingleCall<int>);

// n blocks of `bytes`, each filled with its own index.
std::vector<void*> take(std::size_t n, std::size_t bytes) {
  std::vector<void*> v;
  for (std::size_t i = 0; i < n; ++i) {
    void* p = cb::allocate(bytes);
    std::memset(p, static_cast<int>(i & 0xff), bytes);
    v.push_back(p);
  }
  return v;
}

// Every block still holds its own index: none was handed out twice.
bool intact(const std::vector<void*>& v, std::size_t bytes) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto* b = static_cast<const unsigned char*>(v[i]);
    for (std::size_t k = 0; k < bytes; ++k)
      if (b[k] != static_cast<unsigned char>(i & 0xff)) return false;
  }
  return true;
}

BOOST_AUTO_TEST_SUITE(process_pool)

BOOST_AUTO_TEST_CASE(call_objects_freed_on_another_thread_serve_the_next_submits) {
  constexpr std::size_t n = 2000;
  std::vector<void*> first = take(n, call_bytes);
  BOOST_TEST(std::set<void*>(first.begin(), first.end()).size() == n);
  BOOST_TEST(intact(first, call_bytes));
  std::thread([&] {  // the futures go on another thread (a pool's reactor, a consumer)
    for (void* p : first) cb::release(p, call_bytes);
  }).join();
  std::vector<void*> again = take(n, call_bytes);
  BOOST_TEST(std::set<void*>(again.begin(), again.end()).size() == n);
  BOOST_TEST(intact(again, call_bytes));
#if !defined(__SANITIZE_ADDRESS__)  // under ASan nothing is cached: a reuse would hide a use after free
  const std::set<void*> before(first.begin(), first.end());
  std::size_t reused = 0;
  for (void* p : again) reused += before.count(p);
  // This thread's own free list (calls of earlier tests, at most two batches) goes first.
  BOOST_TEST(reused >= n - 512, reused << " of " << n << " blocks came back");
#endif
  // Sizes of other classes and past the largest one live apart, in use at the same time.
  std::vector<void*> small = take(300, 40), big = take(50, 4000);
  BOOST_TEST(intact(again, call_bytes));
  BOOST_TEST(intact(small, 40));
  BOOST_TEST(intact(big, 4000));
  for (void* p : again) cb::release(p, call_bytes);
  for (void* p : small) cb::release(p, 40);
  for (void* p : big) cb::release(p, 4000);
}

#if !defined(__SANITIZE_ADDRESS__)  // under ASan there are no slabs (and no cache)
constexpr std::size_t max_slab_bytes = std::size_t{64} << 20;  // call_blocks.cpp

// A thread that exits gives back its free list and the fresh blocks it had carved but not
// used: the next thread finds them and maps no slab.
BOOST_AUTO_TEST_CASE(a_thread_that_exits_gives_back_its_fresh_blocks) {
  constexpr std::size_t bytes = 440;  // a class no call of the other tests uses
  std::thread([] { cb::release(cb::allocate(bytes), bytes); }).join();  // carves a run, uses one block
  const cb::Usage before = cb::usage();
  BOOST_TEST(before.cached_bytes >= 256 * 448u);  // the batch it gave: 1 block freed + 255 fresh
  std::vector<void*> v;
  std::thread([&] { v = take(256, bytes); }).join();
  BOOST_TEST(cb::usage().slab_bytes == before.slab_bytes);
  BOOST_TEST(std::set<void*>(v.begin(), v.end()).size() == 256u);
  BOOST_TEST(intact(v, bytes));
  for (void* p : v) cb::release(p, bytes);
}

// Past max_slab_bytes fresh blocks come from the heap. Freed past the cache's bound, heap
// blocks go back to the heap and slab blocks stay: none is lost or handed out twice.
BOOST_AUTO_TEST_CASE(past_the_slabs_bound_blocks_come_from_the_heap) {
  constexpr std::size_t bytes = 512;
  const std::size_t n = max_slab_bytes / bytes + 4096;  // more than the slabs hold
  std::vector<void*> v = take(n, bytes);
  BOOST_TEST(cb::usage().slab_bytes == max_slab_bytes);
  BOOST_TEST(std::set<void*>(v.begin(), v.end()).size() == n);
  BOOST_TEST(intact(v, bytes));
  for (void* p : v) cb::release(p, bytes);
  BOOST_TEST(cb::usage().cached_bytes <= max_slab_bytes);  // = the bound: the heap blocks past it went back
  std::vector<void*> again = take(n, bytes);
  BOOST_TEST(cb::usage().slab_bytes == max_slab_bytes);
  BOOST_TEST(std::set<void*>(again.begin(), again.end()).size() == n);
  BOOST_TEST(intact(again, bytes));
  for (void* p : again) cb::release(p, bytes);
}
#endif

// A result type aligned past what the cache's blocks promise lives in a block aligned for it.
BOOST_AUTO_TEST_CASE(an_over_aligned_result_is_stored_aligned) {
  parex::ProcessPoolExecutor pool({.max_workers = 1});
  std::vector<parex::Future<Wide>> fs;
  for (int i = 0; i < 32; ++i) fs.push_back(pool.submit(wide, i));
  for (int i = 0; i < 32; ++i) {
    const Wide& w = fs[static_cast<std::size_t>(i)].result();
    BOOST_TEST(reinterpret_cast<std::uintptr_t>(&w) % alignof(Wide) == 0u);
    BOOST_TEST(w.v[7] == i + 7);
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace call_blocks_test
