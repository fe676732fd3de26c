// The resource tracker for named shared memory (see shm_tracker.hpp).
//
// Why a shell and not this program re-executed (as a Manager's server is): the tracker
// must start from inside any process, also from a pool worker or a Manager's server, at
// any time, cheaply and without parex::init; /bin/sh is on every Linux system and the job
// (wait for EOF, then stat and rm a few files) is what a shell is for. posix_spawn, not
// fork: the parent may have threads. Names reach the script as data read with `read -r`
// and expanded inside double quotes, never as code.
//
// Records: "<warn> <inode> <name>\n" appended to a memfd (fd 3 in the tracker), which it
// reads through /proc/self/fd/3 (its own offset) after EOF on its stdin. Records of blocks
// unlinked since stay until a compaction rewrites the file (they would be skipped anyway:
// the name is gone, or is another inode). Names with a newline are refused at creation.
#include "mp/shm_tracker.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <csignal>
#include <fcntl.h>
#include <mutex>
#include <new>
#include <pthread.h>
#include <spawn.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <unordered_map>

extern char** environ;

namespace parex::detail {

namespace {

constexpr const char* tracker_script = R"sh(
trap '' INT TERM HUP QUIT PIPE
while read -r _; do :; done
while IFS= read -r line; do
  warn=${line%% *}; rest=${line#* }; ino=${rest%% *}; name=${rest#* }
  f="/dev/shm/$name"
  if [ "$(stat -c %i -- "$f" 2>/dev/null)" = "$ino" ] && rm -f -- "$f"; then
    if [ "$warn" = 1 ]; then
      echo "parex: SharedMemory '$name' was never unlinked by the process that created it, which ended: unlinked by its tracker" >&2
    fi
  fi
done < /proc/self/fd/3
)sh";

struct Entry {
  ino_t ino;
  bool warn;
};

struct Tracker {
  std::mutex mutex;
  std::unordered_map<std::string, Entry> live;  // mutex
  std::size_t stale = 0;                        // records of blocks no longer live; mutex
  pid_t owner = 0;   // the process that started it (a fork's child does not clean up its parent's)
  int records = -1;  // memfd
  int pipe_w = -1;   // its EOF ends the tracker
  bool started = false, failed = false;

  // Starts the tracker process; on failure, the atexit handler alone cleans up.
  void start() noexcept {
    started = true;
    owner = ::getpid();
    std::atexit(at_exit);
    static std::once_flag fork_hook;
    std::call_once(fork_hook, [] { ::pthread_atfork(nullptr, nullptr, after_fork_in_child); });
    records = static_cast<int>(::syscall(SYS_memfd_create, "parex-shm-tracker", MFD_CLOEXEC));
    int p[2];
    if (records < 0 || ::pipe2(p, O_CLOEXEC) != 0) {
      stop_recording();
      return;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawnattr_init(&at);
    ::posix_spawn_file_actions_adddup2(&fa, p[0], 0);
    ::posix_spawn_file_actions_adddup2(&fa, records, 3);
    ::posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    ::posix_spawn_file_actions_addclosefrom_np(&fa, 4);  // no fd of the user's kept open by it
#endif
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGCHLD);
    ::posix_spawnattr_setsigmask(&at, &none);
    ::posix_spawnattr_setsigdefault(&at, &defaults);
    ::posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char sh[] = "/bin/sh", c[] = "-c", name[] = "parex-shm-tracker";
    char* argv[] = {sh, c, const_cast<char*>(tracker_script), name, nullptr};
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
    ::posix_spawn_file_actions_destroy(&fa);
    ::posix_spawnattr_destroy(&at);
    ::close(p[0]);
    if (rc != 0) {
      ::close(p[1]);
      stop_recording();
      return;
    }
    pipe_w = p[1];
  }

  void append(const std::string& name, const Entry& e) noexcept {
    if (records < 0) return;
    const std::string line = (e.warn ? "1 " : "0 ") + std::to_string(e.ino) + " " + name + "\n";
    std::size_t done = 0;
    while (done < line.size()) {
      const ssize_t n = ::write(records, line.data() + done, line.size() - done);
      if (n <= 0) return;  // (memory): the atexit handler still covers a normal exit
      done += static_cast<std::size_t>(n);
    }
  }

  // Rewrites the records from `live` once most of them are stale.
  void compact() noexcept {
    if (records < 0 || stale < 64 || stale < live.size()) return;
    if (::ftruncate(records, 0) != 0 || ::lseek(records, 0, SEEK_SET) != 0) return;
    stale = 0;
    for (const auto& [name, e] : live) append(name, e);
  }

  // Without a tracker process the records are of no use: the atexit handler alone cleans up.
  void stop_recording() noexcept {
    failed = true;
    if (records >= 0) ::close(records);
    records = -1;
  }

  static void at_exit() noexcept;
  static void after_fork_in_child() noexcept;
};

Tracker& tracker() {
  static Tracker* t = new Tracker;  // leaked: used from atexit and by late destructors
  return *t;
}

void Tracker::at_exit() noexcept {
  Tracker& t = tracker();
  std::lock_guard lock(t.mutex);
  if (t.owner != ::getpid()) return;  // a fork's child that made no block of its own
  for (const auto& [name, e] : t.live) {
    // Only the block this process made: one unlinked since and made again under the same
    // name (by anyone) is another inode, and not ours to remove (the tracker checks alike).
    struct stat st {};
    if (::stat(("/dev/shm/" + name).c_str(), &st) != 0 || st.st_ino != e.ino) continue;
    if (::shm_unlink(("/" + name).c_str()) == 0 && e.warn)
      std::fprintf(stderr, "parex: SharedMemory '%s' was never unlinked: unlinked at exit\n", name.c_str());
  }
  t.live.clear();
  // The tracker then finds nothing to do; it ends with this process (EOF on its pipe).
}

// A fork's child starts with nothing tracked and its own lock: the parent's blocks stay the
// parent's (its tracker and records), and a lock some other thread of the parent held at
// the fork would otherwise never be released here. The child's first block starts a
// tracker of its own.
void Tracker::after_fork_in_child() noexcept {
  Tracker& t = tracker();
  new (&t.mutex) std::mutex;
  t.live.clear();
  t.stale = 0;
  if (t.pipe_w >= 0) ::close(t.pipe_w);
  if (t.records >= 0) ::close(t.records);
  t.pipe_w = t.records = -1;
  t.owner = 0;
  t.started = t.failed = false;
}

}  // namespace

void track_shm(const std::string& name, ino_t ino, bool warn) noexcept {
  try {
    Tracker& t = tracker();
    std::lock_guard lock(t.mutex);
    if (!t.started) t.start();
    Entry e{ino, warn};
    auto [it, fresh] = t.live.insert_or_assign(name, e);
    if (!fresh) ++t.stale;
    t.append(name, e);
  } catch (...) {  // out of memory: the block is simply not tracked
  }
}

void untrack_shm(const std::string& name) noexcept {
  Tracker& t = tracker();
  std::lock_guard lock(t.mutex);
  if (t.live.erase(name) == 0) return;
  ++t.stale;
  t.compact();
}

}  // namespace parex::detail
