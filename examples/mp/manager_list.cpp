// A Manager list filled by 5 processes. The Python original:
//   def work(shared, i):
//       shared.append(i * i)
//   with Manager() as m:
//       shared = m.list()
//       ps = [Process(target=work, args=(shared, i)) for i in range(5)]
//       for p in ps: p.start()
//       for p in ps: p.join()
//       print(sorted(shared))          # [0, 1, 4, 9, 16]
#include <parex/parex.hpp>

#include <algorithm>
#include <cstdio>
#include <vector>

void work(parex::ListProxy<int> shared, int i) { shared.append(i * i); }
PAREX_REGISTER(work);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Manager m;
  auto shared = m.list<int>();
  std::vector<parex::Process> ps;
  for (int i = 0; i < 5; ++i) ps.emplace_back(work, shared, i);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  std::vector<int> v = shared.to_vector();
  std::sort(v.begin(), v.end());
  std::printf("[");
  for (std::size_t i = 0; i < v.size(); ++i) std::printf("%s%d", i ? ", " : "", v[i]);
  std::printf("]\n");
}
