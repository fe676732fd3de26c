// Starting a worker process (see spawn.hpp).
#include "process/spawn.hpp"

#include "process/memfd.hpp"
#include "process/shared_page.hpp"

#include <boost/process/args.hpp>
#include <boost/process/env.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace parex::detail {

namespace {
namespace bp = boost::process;

// Bump when the marker's fields change: a worker of another build fails cleanly.
constexpr int marker_version = 2;
// The pipes' capacity: a 1 MiB pipe takes a whole batch of tiny calls (or one sizeable
// argument) in one write; the default 64 KiB makes the reactor wake 16 times as often.
constexpr int pipe_bytes = 1 << 20;

// Closes what it holds unless released: the error paths of spawn_worker.
struct Fds {
  std::vector<int> fds;
  ~Fds() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
  int add(int fd) {
    fds.push_back(fd);
    return fd;
  }
  void release(int fd) {
    for (int& f : fds)
      if (f == fd) f = -1;
  }
};

[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }
}  // namespace

std::string program_name() {
  std::ifstream f("/proc/self/cmdline");
  std::string first;
  std::getline(f, first, '\0');
  return first.empty() ? "parex-worker" : first;
}

std::string format_marker(const WorkerMarker& m) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%d:%d:%d:%d:%d:%ld", marker_version, m.in_fd, m.out_fd, m.shm_fd, m.arena_fd,
                m.parent);
  return buf;
}

std::optional<WorkerMarker> parse_marker(const char* s) {
  WorkerMarker m;
  int version = 0;
  if (std::sscanf(s, "%d:%d:%d:%d:%d:%ld", &version, &m.in_fd, &m.out_fd, &m.shm_fd, &m.arena_fd, &m.parent) != 6 ||
      version != marker_version)
    return std::nullopt;
  return m;
}

SpawnedWorker spawn_worker(int arena_fd) {
  static const std::string argv0 = program_name();
  Fds fds;
  int to[2], from[2];
  if (::pipe2(to, O_CLOEXEC) != 0) fail("cannot create a pipe");
  fds.add(to[0]), fds.add(to[1]);
  if (::pipe2(from, O_CLOEXEC) != 0) fail("cannot create a pipe");
  fds.add(from[0]), fds.add(from[1]);
  ::fcntl(to[1], F_SETPIPE_SZ, pipe_bytes);
  ::fcntl(from[0], F_SETPIPE_SZ, pipe_bytes);
  // Growable (the worker grows it for big results), never shrinkable: see memfd.hpp.
  const int shm = fds.add(sealable_memfd("parex-worker"));
  if (shm < 0 || ::ftruncate(shm, static_cast<off_t>(shm_header_bytes + shm_initial_data_bytes)) != 0 ||
      !seal_memfd(shm, false))
    fail("cannot create the shared results buffer");

  const int child_fds[4] = {to[0], from[1], shm, arena_fd};
  const std::string marker = format_marker({to[0], from[1], shm, arena_fd, static_cast<long>(::getpid())});
  char* argv[] = {const_cast<char*>(argv0.c_str()), const_cast<char*>(worker_arg), nullptr};
  // Runs in the child between fork and exec: async-signal-safe calls only.
  auto setup = [&child_fds, &argv](auto& exec) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the reactor blocks SIGPIPE; the worker must not
    // Workers ignore SIGINT from their first instruction (an ignored signal stays
    // ignored across exec): a Ctrl-C while one starts must not kill it before init.
    ::signal(SIGINT, SIG_IGN);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);  // inherit nothing else
    for (int fd : child_fds)
      if (fd >= 0) ::fcntl(fd, F_SETFD, 0);
    exec.cmd_line = argv;  // argv[0] as the user started the program, then worker_arg
  };
  std::error_code ec;
  SpawnedWorker w;
  w.child = bp::child(bp::exe = "/proc/self/exe", bp::env[worker_env] = marker, bp::extend::on_exec_setup = setup, ec);
  if (ec) throw std::system_error(ec, "cannot start a worker process");
  w.pid = w.child.id();
  // Its death is seen on a pidfd, not as EOF on its pipe: a process it forked may hold
  // the pipe open long after it died (without a pidfd, EOF is all there is).
  w.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, w.pid, 0));
  w.to_fd = to[1];
  w.from_fd = from[0];
  w.shm_fd = shm;
  for (int fd : {to[1], from[0], shm}) fds.release(fd);  // the caller's now; the child's ends close here
  return w;
}

}  // namespace parex::detail
