// A Process's child side (see child.hpp): read the call, watch the parent if daemonic,
// run the function, report an exception as Python prints a traceback, exit.
#include "mp/child.hpp"
#include "mp/pins.hpp"

#include <parex/errors.hpp>
#include <parex/registry.hpp>
#include <parex/serialize.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace parex::detail {

namespace {
constexpr int process_marker_version = 1;

[[noreturn]] void child_fails(const char* what) {
  std::fprintf(stderr, "parex: a Process child cannot start: %s\n", what);
  std::fflush(stderr);
  std::_Exit(1);
}

std::vector<std::byte> read_call() {
  struct stat st {};
  if (::fstat(process_call_fd, &st) != 0) child_fails("its call (fd 3) is missing");
  std::vector<std::byte> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::pread(process_call_fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) child_fails("cannot read its call");
    got += static_cast<std::size_t>(n);
  }
  // The receipts region at the end (mp/pins.hpp): the parent learns from it which of the
  // handles sent it this child attached. The fd moves out of the way of the user's code.
  std::uint64_t slots = 0;
  if (bytes.size() < 8) child_fails("its call is truncated");
  std::memcpy(&slots, bytes.data() + bytes.size() - 8, 8);
  if (slots > (bytes.size() - 8) / 8) child_fails("its call is truncated");
  const std::size_t region = static_cast<std::size_t>(slots + 1) * 8;
  if (slots != 0) {
    const int fd = ::fcntl(process_call_fd, F_DUPFD_CLOEXEC, 10);
    if (fd >= 0) record_receipts_in(fd, static_cast<off_t>(bytes.size() - region), slots);
  }
  ::close(process_call_fd);
  bytes.resize(bytes.size() - region);
  return bytes;
}

std::atomic<void (*)() noexcept> parent_death_hook{nullptr};

// A daemonic child ends with its parent, even a parent that was SIGKILLed. A thread
// waits on the parent's pidfd (PR_SET_PDEATHSIG would fire when the parent's *thread*
// that started us ends, not the parent).
void watch_parent(pid_t parent) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, parent, 0));
  if (::getppid() != parent) std::_Exit(1);  // gone already
  std::thread([pidfd, parent] {
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
      }
    } else {  // a kernel without pidfd_open (before 5.3): look every 100 ms
      while (::getppid() == parent) ::usleep(100000);
    }
    if (auto hook = parent_death_hook.load()) hook();
    ::kill(::getpid(), SIGKILL);
  }).detach();
}
}  // namespace

void on_parent_death(void (*hook)() noexcept) noexcept { parent_death_hook.store(hook); }

std::string format_process_marker(const ProcessMarker& m) {
  return std::to_string(process_marker_version) + ":" + std::to_string(m.parent) + ":" + (m.daemon ? "1" : "0");
}

std::optional<ProcessMarker> parse_process_marker(const char* s) {
  int version = 0, daemon = 0;
  long parent = 0;
  if (std::sscanf(s, "%d:%ld:%d", &version, &parent, &daemon) != 3 || version != process_marker_version || parent <= 0)
    return std::nullopt;
  return ProcessMarker{static_cast<pid_t>(parent), daemon != 0};
}

[[noreturn]] void run_process_child(const char* marker_text) {
  const auto marker = parse_process_marker(marker_text);
  if (!marker) child_fails("malformed PAREX_PROCESS marker");
  ::unsetenv(process_env);  // its own children and pools are ordinary again
  const std::vector<std::byte> call = read_call();
  if (marker->daemon) watch_parent(marker->parent);

  std::string name = "Process";
  int code = 1;
  try {
    Registry::global().freeze();
    Reader r(std::span<const std::byte>(call.data(), call.size()));
    if (r.get_raw<std::uint64_t>() != Registry::global().digest())
      child_fails("the program changed on disk since the parent started (registry digest differs)");
    const std::uint64_t id = r.get_varint();
    name = decode<std::string>(r);
    std::string parent_name = decode<std::string>(r);
    std::string authkey = decode<std::string>(r);
    set_process_identity(name, marker->parent, std::move(parent_name), marker->daemon, std::move(authkey));
    const FunctionEntry* fn = id <= UINT32_MAX ? Registry::global().by_id(static_cast<std::uint32_t>(id)) : nullptr;
    if (!fn) child_fails("its function id is not registered here");
    Reader args = read_item(r);
    Buffer out;
    fn->invoke(*fn, args, out);
    Reader outcome_bytes(std::span<const std::byte>(out.data(), out.size()));
    OutcomeView outcome = read_outcome(outcome_bytes);
    if (outcome.status == OutcomeStatus::ok) {
      code = 0;
    } else {
      outcome.body.get_byte();  // the stage
      const std::string what = describe_exception(decode_exception(outcome.body));
      std::fflush(stdout);
      std::fprintf(stderr, "Process %s:\n%s\n", name.c_str(), what.c_str());
    }
  } catch (...) {  // a corrupt call: reported like the function's own exception
    std::fflush(stdout);
    std::fprintf(stderr, "Process %s:\n%s\n", name.c_str(), describe_exception(std::current_exception()).c_str());
  }
  // As main returning: atexit handlers (which join this child's own children), static
  // destructors, stdio flushed.
  std::exit(code);
}

}  // namespace parex::detail
