// process/memfd.hpp - memfds that another process may hold but can never shrink.
//
// Every memfd parex maps in one process and hands to another (a pool worker's shared
// page and results buffer, the argument arena, the mp segments) is sealed with
// F_SEAL_SHRINK: a page of a shared file mapping past the file's end raises SIGBUS in
// every process that touches it, so without the seal the code a worker runs (or any peer
// that opens the fd through /proc) could crash the pool's parent with one ftruncate.
// Seals cannot be removed, and F_SEAL_SEAL stops anyone adding more (F_SEAL_WRITE, say,
// which would break the owner's writes). Memory a growable buffer no longer needs is
// given back by punching holes (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE), never by
// shrinking: a hole reads as zeros and never faults.
#pragma once

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif

namespace parex::detail {

/// A close-on-exec memfd that accepts seals; -1 with errno set on failure.
inline int sealable_memfd(const char* name) noexcept {
  return static_cast<int>(::syscall(SYS_memfd_create, name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
}

/// Seals fd against shrinking (and growing too, if fixed_size) and against further seals.
/// False with errno set if the kernel refused.
inline bool seal_memfd(int fd, bool fixed_size) noexcept {
  const int seals = F_SEAL_SHRINK | F_SEAL_SEAL | (fixed_size ? F_SEAL_GROW : 0);
  return ::fcntl(fd, F_ADD_SEALS, seals) == 0;
}

/// Whether fd is a file no process can shrink (what a mapping of it needs to be safe).
inline bool cannot_shrink(int fd) noexcept {
  const int seals = ::fcntl(fd, F_GET_SEALS);
  return seals >= 0 && (seals & F_SEAL_SHRINK) != 0;
}

}  // namespace parex::detail
