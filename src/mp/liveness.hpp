// mp/liveness.hpp - "is that process (or thread) still alive?", asked by every toolbox
// object that waits on another process: a pipe's end, a queue's named writer or reader,
// a JoinableQueue's consumers.
//
// kill(pid, 0) alone is not the answer: a process that was SIGKILLed but not yet reaped
// (a zombie) still answers it, and the process that would reap it may be the very one
// waiting (a parent in recv() while the OOM killer takes its child). A zombie holds no fd,
// no mapping and runs no code, so for us it is dead. Thread-safe; each call reads
// /proc/<pid>/task/<tid>/stat once when the signal test says alive, so callers ask on
// their slow paths only (every 50-100 ms of waiting).
#pragma once

#include <sys/types.h>

namespace parex::detail {

/// False once the process has ended, zombie included. A process we may not signal
/// (another user's) counts as alive.
bool process_alive(pid_t pid) noexcept;
/// The same for one thread of a process.
bool thread_alive(pid_t pid, pid_t tid) noexcept;

}  // namespace parex::detail
