// parex/cpu.hpp - how many CPUs this process may use (Python: os.process_cpu_count).
// Thread-safe.
#pragma once

#include <cstddef>

namespace parex {

/// The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota.
std::size_t process_cpu_count() noexcept;

}  // namespace parex
