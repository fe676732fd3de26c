// See mp/liveness.hpp.
#include "mp/liveness.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace parex::detail {

namespace {
// Whether /proc says the task has ended: state Z (zombie), X (dead), or no such task.
// /proc/<pid>/task/<tid>/stat is "tid (comm) S ...": comm may hold spaces and parentheses,
// so the state is the first field after the last ')'.
bool ended_in_proc(pid_t pid, pid_t tid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task/%d/stat", static_cast<int>(pid), static_cast<int>(tid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT || errno == ESRCH;  // unreadable for another reason: trust the signal test
  char buf[512];
  ssize_t n;
  do n = ::read(fd, buf, sizeof buf - 1);
  while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return n == 0;  // an empty stat: the task is being torn down
  buf[n] = '\0';
  const char* close_paren = std::strrchr(buf, ')');
  if (!close_paren || close_paren[1] != ' ') return false;
  const char state = close_paren[2];
  return state == 'Z' || state == 'X' || state == 'x';
}
}  // namespace

bool process_alive(pid_t pid) noexcept {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  return !ended_in_proc(pid, pid);
}

bool thread_alive(pid_t pid, pid_t tid) noexcept {
  if (pid <= 0 || tid <= 0) return false;
  if (::syscall(SYS_tgkill, pid, tid, 0) != 0 && errno != EPERM) return false;
  return !ended_in_proc(pid, tid);
}

}  // namespace parex::detail
