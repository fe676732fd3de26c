// Manager containers as Python's: a set that 3 processes fill, a list sorted on the
// server and read by iterating, a Namespace printed as Python prints it. The original:
//   def tag(words, seen):
//       for w in words: seen.add(w)
//   with Manager() as m:
//       seen = m.set()
//       ps = [Process(target=tag, args=(c, seen)) for c in (["b", "a"], ["c", "a"], ["b"])]
//       for p in ps: p.start()
//       for p in ps: p.join()
//       print(sorted(seen))                 # ['a', 'b', 'c']
//       nums = m.list([3, 1, 2]); nums.sort(reverse=True)
//       for x in nums: print(x)             # 3 2 1 (read from the server as it goes)
//       ns = m.Namespace(); ns.name = "Bob"; ns.size = len(seen)
//       print(ns)                           # Namespace(name='Bob', size=3)
#include <parex/parex.hpp>

#include <iostream>
#include <string>
#include <vector>

void tag(std::vector<std::string> words, parex::SetProxy<std::string> seen) {
  for (const auto& w : words) seen.add(w);
}
PAREX_REGISTER(tag);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Manager m;
  auto seen = m.set<std::string>();
  std::vector<parex::Process> ps;
  for (auto words : {std::vector<std::string>{"b", "a"}, {"c", "a"}, {"b"}}) ps.emplace_back(tag, words, seen);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  auto sorted = m.list<std::string>(seen.to_set());  // a std::set: in order
  std::cout << sorted << "\n";

  auto nums = m.list<int>(std::vector<int>{3, 1, 2});
  nums.sort(/*reverse=*/true);
  for (int x : nums) std::cout << x << "\n";

  auto ns = m.Namespace();
  ns.set("name", std::string("Bob"));
  ns.set("size", static_cast<int>(seen.size()));
  std::cout << ns << "\n";
}
