// process/spawn.hpp - starting this program as a worker, and the marker that tells it so.
//
// A worker is /proc/self/exe re-executed with argv[1] = worker_arg and the marker in the
// environment (worker_env); parex::init finds the marker and branches into the worker
// loop. The marker names the fds the worker inherits (its input and output pipes, its
// results memfd, the pool's argument arena) and the parent's pid. It is written
// (format_marker) and read (parse_marker) only here. The child clears its signal mask,
// ignores SIGINT, dies with the spawning thread (PR_SET_PDEATHSIG: spawn from a thread
// that lives as long as the pool) and inherits no other fd.
// Who calls it: process_pool (spawn_worker); the worker reads its marker through
// marker.hpp, implemented here too. Thread-safe.
#pragma once

#include "process/marker.hpp"

#include <boost/process/child.hpp>

#include <optional>
#include <string>
#include <sys/types.h>

namespace parex::detail {

/// A started worker: the parent's ends of its channel. The caller owns the fds.
struct SpawnedWorker {
  boost::process::child child;
  pid_t pid = -1;
  int to_fd = -1;    // calls to the worker (write end)
  int from_fd = -1;  // results from the worker (read end)
  int shm_fd = -1;   // its shared page and results buffer (process/shared_page.hpp)
  int pidfd = -1;    // readable once it has exited; -1 on kernels without pidfd_open
};

/// argv[0] as the user started this program (what a re-executed child shows in ps).
std::string program_name();

/// Starts a worker. arena_fd: the pool's argument arena, or -1.
/// @throws std::system_error naming what could not be created or started.
SpawnedWorker spawn_worker(int arena_fd);

}  // namespace parex::detail
