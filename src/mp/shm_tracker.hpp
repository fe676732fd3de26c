// src/mp/shm_tracker.hpp - parex's resource tracker for named shared memory (Python's
// multiprocessing.resource_tracker, for shared_memory only).
//
// A block that this process created under a name (SharedMemory(name, true, size), track =
// true) and has not unlinked is unlinked when this process ends:
//   - at a normal exit (exit(), return from main): by an atexit handler, synchronously,
//     with a warning on stderr for each (as Python's tracker warns);
//   - at any other end (SIGKILL, a fatal signal, _exit, a Manager server's end): by a
//     tracker, a tiny /bin/sh process started with the first tracked block, which waits
//     for EOF on a pipe only this process holds, then removes every recorded block that
//     is still the one recorded (same inode: a name unlinked and re-created since, by
//     anyone, is left alone). It starts in a session of its own and ignores INT, TERM,
//     HUP and QUIT, so a Ctrl-C or a kill of the process group does not take it first.
// Not covered: a SIGKILL of the tracker itself together with this process (a kill of
// every process of the user), and blocks created by other programs.
// Records go to a memfd the tracker reads at the end (not through the pipe), so nothing
// this process does ever waits on the tracker.
#pragma once

#include <string>
#include <sys/types.h>

namespace parex::detail {

/// Unlink `name` (a POSIX shm name, without its leading '/') when this process ends, if
/// it is still the block with inode `ino`. `warn`: say so on stderr (a block the user
/// created and forgot; not one a SharedMemoryManager's server owns).
void track_shm(const std::string& name, ino_t ino, bool warn) noexcept;
/// The block was unlinked (or handed over): forget it.
void untrack_shm(const std::string& name) noexcept;

}  // namespace parex::detail
