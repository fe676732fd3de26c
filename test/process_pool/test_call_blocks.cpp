// The memory of call objects kept for reuse (src/remote/call_blocks.cpp): blocks freed on
// another thread come back to the thread that submits, and no block is ever handed out
// twice while it is in use.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "remote/call_blocks.hpp"

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
  if (cb::usage().enabled) {  // under ASan nothing is cached: a reuse would hide a use after free
    const std::set<void*> before(first.begin(), first.end());
    std::size_t reused = 0;
    for (void* p : again) reused += before.count(p);
    // This thread's own free list (at most two batches less one) and the rest of its run
    // (under a batch) go first.
    BOOST_TEST(reused >= n - 3 * 256, reused << " of " << n << " blocks came back");
  }
  // Sizes of other classes and past the largest one live apart, in use at the same time.
  std::vector<void*> small = take(300, 40), big = take(50, 4000);
  BOOST_TEST(intact(again, call_bytes));
  BOOST_TEST(intact(small, 40));
  BOOST_TEST(intact(big, 4000));
  for (void* p : again) cb::release(p, call_bytes);
  for (void* p : small) cb::release(p, 40);
  for (void* p : big) cb::release(p, 4000);
}

// Fresh blocks come from slabs, a run at a time. A thread that exits gives back its free
// list and the rest of its run: the next thread gets those very blocks and carves none.
// Then, past the slabs' bound, fresh blocks come from the heap; freed past the stacks'
// bound, heap blocks go back to the heap (glibc would abort on a slab block) and slab
// blocks stay: none is lost or handed out twice. (One case: the slabs stay spent after it.)
BOOST_AUTO_TEST_CASE(fresh_blocks_come_from_slabs_a_run_at_a_time_and_none_is_lost_past_the_bounds) {
  if (!cb::usage().enabled) {
    BOOST_TEST_MESSAGE("call_blocks is off in this build (AddressSanitizer): every block is the heap's");
    return;
  }
  {
    constexpr std::size_t bytes = 440, b = 448;  // its class, 448 bytes
    std::vector<void*> held;                       // empty the class's stack: the next thread carves
    while (cb::usage(bytes).class_cached_bytes) held.push_back(cb::allocate(bytes));
    const cb::Usage u0 = cb::usage(bytes);
    void* p = nullptr;
    std::thread([&] { cb::release(p = cb::allocate(bytes), bytes); }).join();
    const cb::Usage u1 = cb::usage(bytes);
    const std::size_t carved = u1.carved_bytes - u0.carved_bytes;
    BOOST_TEST(carved >= b);                         // it carved a run
    BOOST_TEST(cb::in_slab(p));
    BOOST_TEST(u1.class_cached_bytes == carved);     // and gave it all back, the block it used included
    std::vector<void*> v;
    std::thread([&] { v = take(carved / b, bytes); }).join();
    BOOST_TEST(cb::usage().carved_bytes == u1.carved_bytes);
    std::set<void*> run;
    for (std::size_t k = 0; k < carved / b; ++k) run.insert(static_cast<char*>(p) + k * b);
    BOOST_TEST((std::set<void*>(v.begin(), v.end()) == run));
    BOOST_TEST(intact(v, bytes));
    for (void* x : v) cb::release(x, bytes);
    for (void* x : held) cb::release(x, bytes);
  }
  constexpr std::size_t bytes = 512;
  const cb::Usage u = cb::usage();
  const std::size_t n = u.max_slab_bytes / bytes + 4096;  // more than the slabs hold
  std::vector<void*> v = take(n, bytes);
  BOOST_TEST(cb::usage().slab_bytes == u.max_slab_bytes);
  BOOST_TEST(std::set<void*>(v.begin(), v.end()).size() == n);
  BOOST_TEST(intact(v, bytes));
  std::vector<void*> slab, heap;
  for (void* x : v) (cb::in_slab(x) ? slab : heap).push_back(x);
  BOOST_TEST_REQUIRE(heap.size() >= 4096u);
  BOOST_TEST_REQUIRE(slab.size() > 8192u);
  // Heap blocks but the last 1024 first (the stacks take them while under their bound),
  // then slab blocks but the last 1024 (n blocks in all are 2 MiB more than the bound: the
  // stacks keep these past it), then the rest interleaved: batches of both kinds, past it.
  for (std::size_t i = 0; i + 1024 < heap.size(); ++i) cb::release(heap[i], bytes);
  for (std::size_t i = 0; i + 1024 < slab.size(); ++i) cb::release(slab[i], bytes);
  for (std::size_t i = 1024; i > 0; --i) {
    cb::release(slab[slab.size() - i], bytes);
    cb::release(heap[heap.size() - i], bytes);
  }
  BOOST_TEST(cb::usage().cached_bytes > u.max_cached_bytes);  // slab blocks stayed past the bound
  std::vector<void*> again = take(n, bytes);
  BOOST_TEST(cb::usage().slab_bytes == u.max_slab_bytes);
  BOOST_TEST(std::set<void*>(again.begin(), again.end()).size() == n);
  BOOST_TEST(intact(again, bytes));
  const std::set<void*> got(again.begin(), again.end());
  std::size_t lost = 0;
  for (void* x : slab) lost += !got.count(x);
  BOOST_TEST(lost == 0u, lost << " slab blocks did not come back");
  for (void* x : again) cb::release(x, bytes);
}

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
