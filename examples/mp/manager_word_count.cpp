// A Manager dict as a shared word count: 3 processes count their own lines into one
// dict, each read-modify-write under a lock (the dict's own calls are atomic, a get then
// a set is not). The Python original:
//   def count(counts, lock, line):
//       for w in line.split():
//           with lock:
//               counts[w] = counts.get(w, 0) + 1
//   with Manager() as m:
//       counts, lock = m.dict(), m.Lock()
//       ... one Process per line ...
//       for w in sorted(counts): print(w, counts[w])
#include <parex/parex.hpp>

#include <cstdio>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

void count(parex::DictProxy<std::string, int> counts, parex::Lock lock, std::string line) {
  std::istringstream words(line);
  for (std::string w; words >> w;) {
    std::lock_guard guard(lock);
    counts.set(w, counts.get(w).value_or(0) + 1);
  }
}
PAREX_REGISTER(count);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Manager m;
  auto counts = m.dict<std::string, int>();
  auto lock = m.Lock();
  const std::vector<std::string> lines{"the cat sat on the mat", "the dog sat on the cat", "a cat and a dog"};
  std::vector<parex::Process> ps;
  for (const auto& line : lines) ps.emplace_back(count, counts, lock, line);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  for (const auto& [w, n] : counts.to_map()) std::printf("%s %d\n", w.c_str(), n);
}
