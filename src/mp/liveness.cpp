// See mp/liveness.hpp.
#include "mp/liveness.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace parex::detail {

namespace {
// Whether /proc can answer at all (some sandboxes mount none): without it, the signal
// test alone decides, as before (a zombie then counts as alive).
bool proc_works() noexcept {
  static const bool works = ::access("/proc/self/task", F_OK) == 0;
  return works;
}

// The fields of /proc/<pid>/task/<tid>/stat after "tid (comm) ": comm may hold spaces
// and parentheses, so they start after the last ')'.
enum class Stat { read, gone, unreadable };
Stat read_stat(pid_t pid, pid_t tid, char* buf, std::size_t size, const char*& fields) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task/%d/stat", static_cast<int>(pid), static_cast<int>(tid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT || errno == ESRCH ? Stat::gone : Stat::unreadable;
  ssize_t n;
  do n = ::read(fd, buf, size - 1);
  while (n < 0 && errno == EINTR);
  const int e = errno;
  ::close(fd);
  if (n == 0 || (n < 0 && e == ESRCH)) return Stat::gone;  // torn down as we read
  if (n < 0) return Stat::unreadable;
  buf[n] = '\0';
  const char* close_paren = std::strrchr(buf, ')');
  if (!close_paren || close_paren[1] != ' ') return Stat::unreadable;
  fields = close_paren + 2;
  return Stat::read;
}

bool ended_state(char state) noexcept { return state == 'Z' || state == 'X' || state == 'x'; }

// Whether /proc says the task has ended: state Z (zombie), X (dead), or no such task.
// A task we cannot read for another reason: trust the signal test.
bool ended_in_proc(pid_t pid, pid_t tid, bool whole_process) noexcept {
  if (!proc_works()) return false;
  char buf[512];
  const char* fields = nullptr;
  switch (read_stat(pid, tid, buf, sizeof buf, fields)) {
    case Stat::gone: return true;
    case Stat::unreadable: return false;
    case Stat::read: break;
  }
  if (!ended_state(fields[0])) return false;
  if (!whole_process) return true;
  // A leader that called pthread_exit is a zombie while its other threads run: the
  // process ends with its last thread. num_threads is the 18th field from the state.
  const char* p = fields;
  for (int i = 1; i < 18 && p; ++i) {
    p = std::strchr(p, ' ');
    if (p) ++p;
  }
  return !p || std::atol(p) <= 1;
}
}  // namespace

bool process_alive(pid_t pid) noexcept {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  return !ended_in_proc(pid, pid, true);
}

bool thread_alive(pid_t pid, pid_t tid) noexcept {
  if (pid <= 0 || tid <= 0) return false;
  if (::syscall(SYS_tgkill, pid, tid, 0) != 0 && errno != EPERM) return false;
  return !ended_in_proc(pid, tid, false);
}

}  // namespace parex::detail
