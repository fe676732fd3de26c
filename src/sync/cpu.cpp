// process_cpu_count(): the CPUs this process may actually use. Affinity (taskset, cpusets)
// and a cgroup CPU quota (containers, systemd CPUQuota=) both cap it; a quota of 1.5 CPUs
// counts as 2, since that many threads can make progress at once.
#include <parex/cpu.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sched.h>
#include <string>
#include <thread>

namespace parex {
namespace {

// cgroup v2: "max 100000" or "<quota> <period>" in cpu.max, nested along the path.
std::size_t cgroup_v2_limit(std::size_t limit) {
  std::ifstream self("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(self, line))
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  if (path.empty()) return limit;
  for (;;) {
    std::ifstream f("/sys/fs/cgroup" + path + "/cpu.max");
    std::string quota;
    double period = 0;
    if (f >> quota >> period && quota != "max" && period > 0) {
      const double cpus = std::stod(quota) / period;
      limit = std::min<std::size_t>(limit, static_cast<std::size_t>(std::max(1.0, std::ceil(cpus))));
    }
    if (path.empty() || path == "/") break;
    const auto slash = path.find_last_of('/');
    path = slash == 0 || slash == std::string::npos ? std::string("/") : path.substr(0, slash);
  }
  return limit;
}

// cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us (quota -1 means none).
std::size_t cgroup_v1_limit(std::size_t limit) {
  std::ifstream q("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), p("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  double quota = -1, period = 0;
  if (q >> quota && p >> period && quota > 0 && period > 0)
    limit = std::min<std::size_t>(limit, static_cast<std::size_t>(std::max(1.0, std::ceil(quota / period))));
  return limit;
}

}  // namespace

std::size_t process_cpu_count() noexcept {
  try {
    std::size_t n = std::max(1u, std::thread::hardware_concurrency());
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = std::max(1, CPU_COUNT(&set));
    return std::max<std::size_t>(1, cgroup_v1_limit(cgroup_v2_limit(n)));
  } catch (...) {
    return 1;
  }
}

}  // namespace parex
