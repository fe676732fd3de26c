// tools/bench_args.hpp - what the small benchmark programs share: `--json` and
// `--repeats K` on the command line, and the medians printed as a table or one JSON line
// (the form tools/bench_vs_python.py's run_json reads).
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace bench {

struct Args {
  bool json = false;
  int repeats = 3;
  std::string only;  // --only NAME: run that figure alone (for a profiler)
  bool wants(const char* figure) const { return only.empty() || only == figure; }
};

inline Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json")) a.json = true;
    else if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc) a.repeats = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) a.only = argv[++i];
  }
  return a;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// Each figure's median over the repeats.
inline void print_medians(const char* name, const Args& a, const std::map<std::string, std::vector<double>>& r) {
  if (a.json) {
    std::printf("{");
    const char* sep = "";
    for (auto& [k, v] : r) std::printf("%s\"%s\": %.6g", std::exchange(sep, ", "), k.c_str(), median(v));
    std::printf("}\n");
  } else {
    std::printf("%s (parex), medians of %d\n", name, a.repeats);
    for (auto& [k, v] : r) std::printf("  %-22s %14.6g\n", k.c_str(), median(v));
  }
}

}  // namespace bench
