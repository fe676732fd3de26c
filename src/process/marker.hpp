// process/marker.hpp - how a worker knows it is one: argv[1] and an environment variable
// whose value names the fds it inherited. Written by spawn_worker and read by
// parex::init, both in spawn.cpp, so that the two sides cannot drift apart.
#pragma once

#include <optional>
#include <string>

namespace parex::detail {

/// The environment variable that marks a worker.
inline constexpr const char* worker_env = "PAREX_WORKER";
/// argv[1] of a worker: shows in ps, and stops a program that parses its options before
/// parex::init.
inline constexpr const char* worker_arg = "--parex-worker";

/// What a worker inherits, as fd numbers in the worker; -1 where absent.
struct WorkerMarker {
  int in_fd = -1, out_fd = -1, shm_fd = -1, arena_fd = -1;
  long parent = 0;
};
std::string format_marker(const WorkerMarker& m);
/// nullopt if s is not a marker of this protocol version.
std::optional<WorkerMarker> parse_marker(const char* s);

}  // namespace parex::detail
