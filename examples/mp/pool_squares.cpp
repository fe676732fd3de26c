// Pool.map of squares. The Python original:
//   def f(x): return x * x
//   with Pool(4) as p:
//       print(p.map(f, range(10)))     # [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
#include <parex/parex.hpp>

#include <cstdio>
#include <ranges>

int f(int x) { return x * x; }
PAREX_REGISTER(f);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Pool p(4);
  const std::vector<int> v = p.map(f, std::views::iota(0, 10));
  std::printf("[");
  for (std::size_t i = 0; i < v.size(); ++i) std::printf("%s%d", i ? ", " : "", v[i]);
  std::printf("]\n");
}
