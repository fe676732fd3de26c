// Manager under faults and hostile input (issue 20), the rest of suite mp_manager: a
// client facing something that accepts and never speaks (or never accepts), a server full
// of connections that never authenticate, an owner killed or exiting without shutdown,
// a lookup as the wrong type, and toolbox objects that outlive every handle but the
// server's.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "mp/manager_functions.hpp"
#include "mp/socket_protocol.hpp"
#include "mp/mp_functions.hpp"
#include "support/helpers.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using namespace manager_test;

namespace {
/// A listener at `address` that accepts every connection and never says a word (silent),
/// or never accepts at all (its backlog fills).
class MuteListener {
 public:
  MuteListener(std::string address, bool accepts) : a_(parex::detail::SocketAddress::parse(address)) {
    fd_ = parex::detail::listen_at(a_, accepts ? 16 : 0);
    if (accepts) thread_ = std::thread([this] { accept_until_stopped(); });
  }
  ~MuteListener() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (int fd : held_) ::close(fd);
    ::close(fd_);
    if (!a_.tcp) ::unlink(a_.path.c_str());
  }
  std::string address() const { return a_.str(); }
  /// Fills the backlog of a listener that never accepts: a connect() now has to wait.
  void fill_backlog() {
    for (int i = 0; i < 64; ++i) {
      const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      sockaddr_un sa{};
      sa.sun_family = AF_UNIX;
      std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", a_.path.c_str());
      const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
      if (rc != 0) {
        ::close(fd);
        BOOST_REQUIRE(errno == EAGAIN);
        return;
      }
      held_.push_back(fd);
    }
    BOOST_FAIL("the backlog never filled");
  }

 private:
  void accept_until_stopped() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) == 1) {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) held_.push_back(c);
      }
    }
  }
  parex::detail::SocketAddress a_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<int> held_;  // the accepting thread's until it is joined
};

std::string socket_path(const char* what) {
  return (std::filesystem::temp_directory_path() / ("parex-test-" + std::to_string(::getpid()) + what)).string();
}

/// Runs connect_expecting_timeout in a child, so that a connect that hangs fails the test
/// (the child is killed) instead of hanging it.
void expect_connect_to_time_out(const std::string& address) {
  parex::Process p(connect_expecting_timeout, address, 300);
  p.start();
  const bool ended = p.join(15s);
  if (!ended) {
    p.kill();
    p.join();
  }
  BOOST_TEST(ended, "Manager::connect to " << address << " was still waiting after 15 s");
  BOOST_TEST(mp_test::code_of(p) == 0);
}

/// Gone, or a zombie nobody reaps (an orphan's new parent may be a PID 1 that does not).
bool process_ended(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto paren = line.rfind(')');
  return paren != std::string::npos && line.size() > paren + 2 && line[paren + 2] == 'Z';
}
}  // namespace

BOOST_AUTO_TEST_SUITE(mp_manager)

BOOST_AUTO_TEST_CASE(connect_to_a_listener_that_never_speaks_times_out_naming_the_address) {
  {
    MuteListener unix_socket(socket_path("-mute.sock"), true);
    expect_connect_to_time_out(unix_socket.address());
  }
  {
    MuteListener tcp("127.0.0.1:0", true);
    expect_connect_to_time_out(tcp.address());
  }
  {  // connect() itself must not wait past the deadline: a backlog that never drains
    MuteListener full(socket_path("-full.sock"), false);
    full.fill_backlog();
    expect_connect_to_time_out(full.address());
  }
}

BOOST_AUTO_TEST_CASE(a_server_full_of_silent_connections_still_admits_a_client_with_the_key) {
  constexpr int slots = 8;
  parex::Manager m(parex::ManagerOptions{.max_connections = slots});
  auto l = m.list<int>();  // this process's connection: one slot, authenticated
  l.append(1);
  const auto addr = parex::detail::SocketAddress::parse(m.address());
  std::vector<int> silent;  // every slot, and more: each got the server's hello, never answers
  for (int i = 0; i < 2 * slots; ++i) {
    const int fd = parex::detail::connect_to(addr, std::chrono::steady_clock::now() + std::chrono::seconds(10));
    std::uint8_t hello[40];
    BOOST_TEST(parex::detail::read_exact_until(fd, hello, sizeof hello, std::chrono::steady_clock::now() + 10s));
    silent.push_back(fd);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const int fd = parex::detail::connect_to(addr, std::chrono::steady_clock::now() + std::chrono::seconds(10));  // a new client with the key
  parex::detail::client_handshake(fd, m.authkey(), m.address(), t0 + 10s);  // ConnectionError if refused
  parex::detail::Buffer b;
  parex::detail::put_call_header(b, l.id(), parex::detail::proxy_tag<parex::ListProxy<int>>(), "size");
  BOOST_TEST(parex::detail::send_message(fd, b.bytes()));
  std::uint32_t len = 0;
  BOOST_REQUIRE(parex::detail::read_exact_until(fd, &len, 4, t0 + 10s));
  std::vector<std::byte> reply(len);
  BOOST_REQUIRE(parex::detail::read_exact_until(fd, reply.data(), len, t0 + 10s));
  parex::detail::Reader r(reply);
  BOOST_TEST(r.get_byte() == 0);
  BOOST_TEST(parex::detail::get_item<std::uint64_t>(r) == 1u);
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < 2s));  // at once, not after the 10 s handshake window
  ::close(fd);
  l.append(2);  // an authenticated connection is never the one pushed out
  BOOST_TEST(l.size() == 2u);
  for (int s : silent) ::close(s);
}

BOOST_AUTO_TEST_CASE(an_owner_killed_or_exiting_without_shutdown_leaves_no_socket_directory_or_server) {
  for (const bool leak : {false, true}) {  // SIGKILLed while it holds the Manager; exits with it alive
    BOOST_TEST_CONTEXT((leak ? "exits without destroying it" : "SIGKILLed")) {
      parex::Queue<std::string> report;
      parex::Process owner(hold_a_manager, report, leak);
      owner.start();
      std::istringstream in(report.get(30s));
      pid_t server = 0;
      std::string address;
      in >> server >> address;
      const std::filesystem::path dir = std::filesystem::path(address).parent_path();
      BOOST_TEST(dir.filename().string().rfind("parex-manager-", 0) == 0u);
      if (!leak) {
        BOOST_TEST(std::filesystem::exists(address));
        owner.kill();
      }
      BOOST_TEST(owner.join(30s));
      if (leak) BOOST_TEST(mp_test::code_of(owner) == 0);
      const bool clean = test::eventually([&] {
        return !std::filesystem::exists(address) && !std::filesystem::exists(dir) && process_ended(server);
      });
      BOOST_TEST(clean, "left behind: " << (std::filesystem::exists(dir) ? dir.string() : "")
                                         << (process_ended(server) ? "" : " a live server"));
    }
  }
}

BOOST_AUTO_TEST_CASE(lookup_as_another_type_is_a_shared_object_error_naming_both) {
  parex::Manager m;
  m.publish("n", 5);
  m.publish("s", std::string("five"));
  BOOST_TEST(m.lookup<int>("n") == 5);
  const auto e = test::expect_error<parex::SharedObjectError>([&] { return m.lookup<float>("n"); });
  const std::string what = e.what();
  BOOST_TEST(what.find("int") != std::string::npos);
  BOOST_TEST(what.find("float") != std::string::npos);
  BOOST_CHECK_THROW(m.lookup<std::vector<char>>("s"), parex::SharedObjectError);
  BOOST_CHECK_THROW(m.lookup<long>("n"), parex::SharedObjectError);
  BOOST_TEST(m.lookup<std::string>("s") == "five");
  BOOST_CHECK_THROW(m.lookup<int>("absent"), parex::KeyError);
}

BOOST_AUTO_TEST_CASE(a_manager_queue_appended_as_a_temporary_lives_as_long_as_the_server) {
  parex::Manager m;
  auto l = m.list<parex::Queue<int>>();
  l.append(m.Queue<int>());  // the only handle is gone at the semicolon
  l.get(0).put(1);           // and so is this one
  parex::Process p(put_in_listed_queue, l, 2);  // another process, after them
  p.start();
  BOOST_TEST(p.join(30s));
  BOOST_TEST(mp_test::code_of(p) == 0);
  auto q = l.get(0);
  BOOST_TEST(q.get(10s) == 1);
  BOOST_TEST(q.get(10s) == 2);
  auto locks = m.list<parex::Lock>();  // the other factories' objects are held alike
  locks.append(m.Lock());
  {
    auto first = locks.get(0);
    BOOST_TEST(first.acquire(1s));
    first.release();
  }
  auto again = locks.get(0);  // every handle of this process was gone
  BOOST_TEST(again.acquire(1s));
  again.release();
}

BOOST_AUTO_TEST_CASE(manager_made_objects_still_travel_once_the_server_has_ended) {
  parex::Manager m;
  auto q = m.Queue<int>();
  auto done = m.Event();
  m.shutdown();  // "they keep working if the server ends": handles name this process again
  parex::Process p(mp_test::produce_range, q, 0, 3);
  p.start();
  BOOST_TEST(p.join(30s));
  BOOST_TEST(q.get(10s) == 0);
  done.set();
  BOOST_TEST(done.is_set());
}

BOOST_AUTO_TEST_SUITE_END()
