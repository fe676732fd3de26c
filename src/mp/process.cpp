// Process, parent side (see include/parex/mp/process.hpp).
//
// start() writes the call into a memfd, then posix_spawn()s /proc/self/exe (vfork-style:
// no copy of the parent's page tables) with that memfd as fd 3 and nothing else but
// stdin/out/err. The child's end is watched on a pidfd: join(timeout) is a poll, and a
// signal can never reach a recycled pid. Children that have not been reaped are listed in
// one registry, which active_children() and the exit handler walk.
#include <parex/mp/process.hpp>

#include "mp/child.hpp"
#include "mp/liveness.hpp"
#include "mp/pins.hpp"
#include "process/marker.hpp"
#include "process/memfd.hpp"
#include "process/spawn.hpp"

#include <parex/cpu.hpp>
#include <parex/init.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <poll.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace parex {

struct Process::State {
  std::mutex mutex;
  std::vector<std::byte> call;  // registry digest, function id (varint); the names follow at start()
  std::vector<std::byte> item;  // the encoded arguments, as an item
  pid_t pid = 0;
  int pidfd = -1;
  bool started = false, closed = false;
  std::optional<int> code;  // set once reaped
  std::string name;
  bool daemon = false;
  std::atomic<bool> ended{false};  // code is set; read without the mutex by track()
  // Handles the call sent, pinned until the child attaches them (mp/pins.hpp), and the
  // call's memfd, where the child writes its receipts: both kept until it has ended.
  std::vector<std::weak_ptr<detail::Segment>> pins;  // weak: the pin itself holds the segment
  int call_fd = -1;

  ~State() {
    if (pidfd >= 0) ::close(pidfd);
    release_pins();  // never started (or its end never seen): nobody received them
  }
  // The child has ended (or will never run): drop the pins it did not receive.
  void release_pins() noexcept {
    std::vector<std::uint64_t> received;
    if (call_fd >= 0 && !pins.empty()) {
      received.resize(pins.size());
      struct stat st {};
      const off_t at = ::fstat(call_fd, &st) == 0 ? st.st_size - static_cast<off_t>((pins.size() + 1) * 8) : -1;
      if (at < 0 || ::pread(call_fd, received.data(), pins.size() * 8, at) != static_cast<ssize_t>(pins.size() * 8))
        received.clear();
    }
    if (!pins.empty()) detail::release_pins(pins, received);
    if (call_fd >= 0) ::close(call_fd);
    call_fd = -1;
  }
  // Reaps the child if it has ended (mutex held). True once it has.
  bool reap(bool block) {
    if (code) return true;
    if (!started) return false;
    int status = 0;
    pid_t r;
    do r = ::waitpid(pid, &status, block ? 0 : WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0) return false;
    if (r < 0) code = 255;  // reaped by someone else (a waitpid(-1) in user code): status lost
    else if (WIFEXITED(status)) code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) code = -WTERMSIG(status);
    else return false;
    // The pidfd stays open until ~State: a join() polling it without the mutex must not
    // find its number reused.
    release_pins();
    ended.store(true, std::memory_order_release);
    return true;
  }
  void signal(int sig) {
    std::lock_guard lock(mutex);
    if (!started || reap(false)) return;
    if (pidfd >= 0) ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
    else ::kill(pid, sig);
  }
};

namespace {
std::string& current_name() {
  static std::string n = "MainProcess";
  return n;
}
std::optional<ProcessInfo>& parent_info() {
  static std::optional<ProcessInfo> p;
  return p;
}
// A name and a pid, the rest as declared (g++ 12 warns at every aggregate init that skips fields).
ProcessInfo info_of(std::string name, pid_t pid) { ProcessInfo i; i.name = std::move(name); i.pid = pid; return i; }
bool& current_daemon() {
  static bool d = false;
  return d;
}
// Python's: os.urandom(32) in the main program, inherited by children.
std::string& current_authkey() {
  static std::string k = [] {
    std::string key(32, '\0');
    std::size_t got = 0;
    while (got < key.size()) {
      const ssize_t n = ::getrandom(key.data() + got, key.size() - got, 0);
      if (n > 0) got += static_cast<std::size_t>(n);
      else if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "getrandom");
    }
    return key;
  }();
  return k;
}

// Children not reaped yet. Leaked: the exit handler runs during static destruction.
struct Children {
  std::mutex mutex;
  std::vector<std::shared_ptr<Process::State>> list;
};
Children& children() {
  static Children* c = new Children;
  return *c;
}

// At a normal exit, as Python's: daemonic children are terminated, then every child is
// joined. A daemon that ignores SIGTERM gets SIGKILL after a second.
void at_exit() {
  std::vector<std::shared_ptr<Process::State>> all;
  {
    std::lock_guard lock(children().mutex);
    all.swap(children().list);
  }
  for (auto& s : all)
    if (s->daemon) s->signal(SIGTERM);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);  // one second for all
  for (auto& s : all) {
    if (!s->daemon) continue;
    std::unique_lock lock(s->mutex);
    while (!s->reap(false) && std::chrono::steady_clock::now() < give_up) {
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      lock.lock();
    }
    if (!s->code) {
      lock.unlock();
      s->signal(SIGKILL);
    }
  }
  for (auto& s : all) {
    std::lock_guard lock(s->mutex);
    s->reap(true);
  }
}

// A new child is listed, and the children that have ended since are reaped and dropped:
// a Process destroyed without join() is no zombie past the next start(), as in Python.
void track(std::shared_ptr<Process::State> s) {
  static std::once_flag once;
  std::call_once(once, [] { std::atexit(at_exit); });
  std::vector<std::shared_ptr<Process::State>> all;
  {
    std::lock_guard lock(children().mutex);
    all = children().list;
  }
  for (auto& c : all) {
    std::unique_lock lock(c->mutex, std::try_to_lock);  // one held is being joined: that reaps it
    if (lock.owns_lock()) c->reap(false);
  }
  std::lock_guard lock(children().mutex);
  std::erase_if(children().list, [](const auto& c) { return c->ended.load(std::memory_order_acquire); });
  children().list.push_back(std::move(s));
}

std::atomic<unsigned> process_counter{0};

int memfd_with(const std::vector<std::byte>& a, const std::vector<std::byte>& b, const std::vector<std::byte>& c,
               const std::vector<std::byte>& d) {
  // The parent never maps it (the child reads it with pread), so no ftruncate of it can
  // fault here; it is still sealed once written, as the immutable record it is.
  const int fd = detail::sealable_memfd("parex-process-call");
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot create a memfd for a Process's call");
  for (const auto* part : {&a, &b, &c, &d}) {
    std::size_t done = 0;
    while (done < part->size()) {
      const ssize_t n = ::write(fd, part->data() + done, part->size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int e = errno;
        ::close(fd);
        throw std::system_error(e, std::generic_category(), "cannot write a Process's call");
      }
      done += static_cast<std::size_t>(n);
    }
  }
  ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);  // best effort
  return fd;
}
}  // namespace

namespace detail {
void set_process_identity(std::string name, pid_t parent, std::string parent_name, bool daemon, std::string authkey) {
  current_name() = std::move(name);
  current_daemon() = daemon;
  current_authkey() = std::move(authkey);
  parent_info() = info_of(std::move(parent_name), parent);
}
}  // namespace detail

Process::Process(Unstarted) : state_(std::make_shared<State>()) {
  name = "Process-" + std::to_string(process_counter.fetch_add(1, std::memory_order_relaxed) + 1);
  daemon = current_daemon();
  authkey = current_authkey();
}
Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&&) noexcept = default;
Process::~Process() = default;  // a running child stays tracked: joined or stopped at exit

namespace detail {
namespace {
struct ProcessClasses {
  std::mutex mutex;
  std::vector<std::pair<const std::type_info*, ProcessClass>> list;
};
ProcessClasses& process_classes() {
  static ProcessClasses* c = new ProcessClasses;
  return *c;
}
}  // namespace

void register_process_class(const std::type_info& type, ProcessClass c) noexcept {
  std::lock_guard lock(process_classes().mutex);
  process_classes().list.emplace_back(&type, c);
}

const ProcessClass* find_process_class(const std::type_info& type) noexcept {
  std::lock_guard lock(process_classes().mutex);
  for (auto& [t, c] : process_classes().list)
    if (*t == type) return &c;
  return nullptr;
}
}  // namespace detail

Process::State& Process::state() const {
  if (!state_) throw InvalidStateError("this Process was moved from");
  return *state_;
}

namespace {
// Python's _check_closed(): a closed Process answers nothing but close().
void check_open(const Process::State& s) {
  if (s.closed) throw ValueError("process object is closed");
}
}  // namespace

std::vector<std::weak_ptr<detail::Segment>>& Process::call_pins() { return state_->pins; }

void Process::set_call(const detail::FunctionEntry& e, const detail::Buffer& args) {
  detail::Buffer head;
  head.put_raw<std::uint64_t>(detail::Registry::global().digest());
  head.put_varint(e.id);
  state_->call.assign(head.data(), head.data() + head.size());
  state_->item.assign(args.data(), args.data() + args.size());
}

void Process::start() {
  State& s = state();
  std::lock_guard lock(s.mutex);
  if (s.closed) throw ValueError("this Process was closed");
  if (s.started) throw InvalidStateError("a Process can be started only once");
  if (!initialized())
    throw InvalidStateError("parex::Process needs parex::init(argc, argv) first in main: the child is this program");
  if (s.call.empty()) {  // a subclass: send the object itself
    const detail::ProcessClass* c = detail::find_process_class(typeid(*this));
    if (!c)
      throw UnregisteredFunction("this Process subclass (" + detail::demangle(typeid(*this).name()) +
                                 ") is not registered: add PAREX_REGISTER_PROCESS(" +
                                 detail::demangle(typeid(*this).name()) + ") at namespace scope, or construct "
                                 "the Process with a registered function");
    detail::Buffer b;
    try {
      detail::PinCapture capture(s.pins);
      c->encode(*this, b);
    } catch (...) {
      detail::throw_encode_error(c->entry());
    }
    set_call(c->entry(), b);
  }
  s.name = name;
  s.daemon = daemon;
  detail::Buffer names;
  detail::encode(names, name);
  detail::encode(names, current_name());
  detail::encode(names, authkey);
  const std::vector<std::byte> names_bytes(names.data(), names.data() + names.size());
  // The receipts region (mp/pins.hpp): one empty slot per handle the call sent, then
  // the slot count.
  std::vector<std::byte> receipts((s.pins.size() + 1) * 8);
  const std::uint64_t slots = s.pins.size();
  std::memcpy(receipts.data() + receipts.size() - 8, &slots, 8);
  const int fd = memfd_with(s.call, names_bytes, s.item, receipts);

  static const std::string argv0 = detail::program_name();
  char* argv[] = {const_cast<char*>(argv0.c_str()), const_cast<char*>(detail::process_arg), nullptr};
  const std::string marker = std::string(detail::process_env) + "=" +
                             detail::format_process_marker({::getpid(), daemon});
  std::vector<char*> env;
  const auto is_marker = [](const char* e, const char* name) {
    const std::size_t n = std::strlen(name);
    return std::strncmp(e, name, n) == 0 && e[n] == '=';
  };
  for (char** e = environ; *e; ++e)  // a marker of our own (a worker's, a child's) must not leak in
    if (!is_marker(*e, detail::process_env) && !is_marker(*e, detail::worker_env)) env.push_back(*e);
  env.push_back(const_cast<char*>(marker.c_str()));
  env.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&fa, fd, detail::process_call_fd);  // the same fd: clears FD_CLOEXEC
  posix_spawn_file_actions_addclosefrom_np(&fa, detail::process_call_fd + 1);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv, env.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    ::close(fd);
    throw std::system_error(rc, std::generic_category(), "cannot start a Process");
  }
  if (s.pins.empty()) ::close(fd);
  else s.call_fd = fd;
  s.pid = pid;
  s.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  s.started = true;
  track(state_);
}

void Process::join() {
  if (!join_for(detail::no_timeout)) throw Error("parex: join() returned before the child ended");
}

bool Process::join_for(std::chrono::nanoseconds timeout) {
  State& s = state();
  const bool bounded = timeout != detail::no_timeout;
  const auto deadline = bounded ? std::chrono::steady_clock::now() + timeout : std::chrono::steady_clock::time_point::max();
  std::unique_lock lock(s.mutex);
  check_open(s);
  if (!s.started) throw InvalidStateError("cannot join a Process that was never started");
  for (;;) {
    if (s.reap(false)) return true;
    const int pidfd = s.pidfd;
    int ms = -1;
    if (bounded) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      ms = static_cast<int>(std::min<long long>(left.count(), 1 << 30));
    }
    lock.unlock();
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, ms);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms < 0 || ms > 5 ? 5 : ms));
    }
    lock.lock();
  }
}

bool Process::is_alive() const {
  State& s = state();
  std::lock_guard lock(s.mutex);
  check_open(s);
  return s.started && !s.reap(false);
}

namespace {
// terminate(), kill(), interrupt(): a closed Process answers none of them.
void signal_open(Process::State& s, int sig) {
  {
    std::lock_guard lock(s.mutex);
    check_open(s);
  }
  s.signal(sig);
}
}  // namespace

void Process::terminate() { signal_open(state(), SIGTERM); }
void Process::kill() { signal_open(state(), SIGKILL); }
void Process::interrupt() { signal_open(state(), SIGINT); }

void Process::close() {
  State& s = state();
  std::lock_guard lock(s.mutex);
  if (s.started && !s.reap(false)) throw ValueError("cannot close a Process that is still running");
  s.closed = true;
  s.call.clear();
  s.item.clear();
  if (!s.started) s.release_pins();  // no child will ever receive them
}

int Process::sentinel() const {
  State& s = state();
  std::lock_guard lock(s.mutex);
  check_open(s);
  if (!s.started) throw ValueError("process not started: it has no sentinel yet");
  if (s.pidfd < 0) throw ValueError("this kernel gave the process no pidfd (Linux 5.3 or later needed for sentinel)");
  return s.pidfd;
}

pid_t Process::pid() const {
  State& s = state();
  std::lock_guard lock(s.mutex);
  check_open(s);
  return s.pid;
}

std::optional<int> Process::exitcode() const {
  State& s = state();
  std::lock_guard lock(s.mutex);
  check_open(s);
  s.reap(false);
  return s.code;
}

ProcessInfo current_process() { return {current_name(), ::getpid(), current_daemon(), current_authkey(), {}}; }

bool ProcessInfo::is_alive() const { return detail::process_alive(pid); }

bool ProcessInfo::join_for(std::chrono::nanoseconds timeout) const {
  if (pid == ::getpid()) throw InvalidStateError("a process cannot join itself");
  const auto deadline = detail::deadline_of(timeout);
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  for (;;) {
    if (!detail::process_alive(pid)) break;
    int ms = 50;  // without a pidfd, or one that does not see a zombie's end: look again
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      ms = static_cast<int>(std::min<long long>(left.count(), ms));
    }
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, ms);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  return !detail::process_alive(pid);
}

std::optional<ProcessInfo> parent_process() { return parent_info(); }

std::vector<ProcessInfo> active_children() {
  std::vector<std::shared_ptr<Process::State>> all;
  {
    std::lock_guard lock(children().mutex);
    all = children().list;
  }
  std::vector<ProcessInfo> out;
  std::vector<Process::State*> ended;
  for (auto& s : all) {
    std::lock_guard lock(s->mutex);
    if (s->reap(false)) ended.push_back(s.get());
    else out.push_back(info_of(s->name, s->pid));
  }
  std::lock_guard lock(children().mutex);
  std::erase_if(children().list, [&](const auto& s) { return std::ranges::find(ended, s.get()) != ended.end(); });
  return out;
}

std::size_t cpu_count() noexcept {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<std::size_t>(n) : 1;
}

}  // namespace parex
