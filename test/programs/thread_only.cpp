// A thread-only program includes <parex/thread_pool.hpp> alone: it must build without the
// process backend's codec, registry or Boost archives, and every thread-pool call works.
#include <parex/thread_pool.hpp>

#if defined(BOOST_ARCHIVE_BINARY_OARCHIVE_HPP) || defined(BOOST_SERIALIZATION_SERIALIZATION_HPP)
#error "<parex/thread_pool.hpp> pulled in the serialization layer"
#endif

#include <cstdio>
#include <string>
#include <vector>

int main() {
  parex::ThreadPoolExecutor pool{{.max_workers = 2}};
  const int offset = 10;
  int sum = pool.submit([&](int x) { return x + offset; }, 5).result();
  for (int y : pool.map([](int x) { return x * x; }, std::vector{1, 2, 3}, {.chunksize = 2})) sum += y;
  for (int y : pool.map([](int a, int b) { return a * b; }, std::vector{1, 2}, std::vector{3, 4})) sum += y;
  std::printf("thread_only: %d\n", sum);  // 15 + 14 + 11
  return sum == 40 ? 0 : 1;
}
