// multiprocessing.connection: Listener and Client in two processes over a Unix path, the
// abstract namespace and TCP; the handshake (wrong key on both sides, no key, a silent peer
// timing out); hostile peers (a message past the limit, a lying length, a peer SIGKILLed
// mid-message, a send to a closed peer); recv_bytes_into; wait() over every kind of
// object; passing a descriptor to a child.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "mp/mp_functions.hpp"
#include "support/helpers.hpp"

#include <parex/parex.hpp>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <string>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

using namespace test;
using namespace mp_test;
namespace pc = parex::connection;

namespace conn_test {
pc::Address address_of(bool inet, const std::string& path, const std::string& host, int port) {
  return inet ? pc::Address(host, static_cast<std::uint16_t>(port)) : pc::Address(path);
}
// Connects, answers each string upper-cased until "bye", then sends its pid.
void echo_client(bool inet, std::string path, std::string host, int port, std::string key) {
  auto c = pc::Client(address_of(inet, path, host, port), "", key);
  for (;;) {
    auto m = c.recv<std::string>();
    if (m == "bye") break;
    for (auto& ch : m) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    c.send(m);
  }
  c.send(static_cast<int>(::getpid()));
}
// Exits 7 on AuthenticationError, 0 if it got in.
void client_expecting_refusal(std::string path, std::string key) {
  try {
    pc::Client(pc::Address(path), "", key);
  } catch (const parex::AuthenticationError&) {
    std::_Exit(7);
  }
}
// Announces 1 MiB, sends 1000 bytes of it, then dies.
void send_partial_then_die(std::string path) {
  auto c = pc::Client(pc::Address(path));
  const std::uint32_t len = 1 << 20;
  std::string part(1000, 'x');
  (void)::write(c.fileno(), &len, sizeof len);
  (void)::write(c.fileno(), part.data(), part.size());
  ::raise(SIGKILL);
}
// Receives a descriptor and writes a line into it.
void write_to_received_fd(std::string path) {
  auto c = pc::Client(pc::Address(path), "", "key");
  const int fd = parex::reduction::recv_handle(c);
  const std::string line = "written by the child";
  (void)::write(fd, line.data(), line.size());
  ::close(fd);
  c.send(std::string("done"));
}
}  // namespace conn_test
PAREX_REGISTER(conn_test::echo_client);
PAREX_REGISTER(conn_test::client_expecting_refusal);
PAREX_REGISTER(conn_test::send_partial_then_die);
PAREX_REGISTER(conn_test::write_to_received_fd);

namespace {
std::string unix_path() {
  static int n = 0;
  return (std::filesystem::temp_directory_path() / ("parex-conn-" + std::to_string(::getpid()) + "-" +
                                                    std::to_string(n++) + ".sock")).string();
}
// A connected pair of socket Connections in this process.
std::pair<parex::Connection, parex::Connection> socket_pair() {
  int sv[2];
  BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  return {parex::Connection(sv[0]), parex::Connection(sv[1])};
}
// Accept, bounded: the listener must be ready within deadlock_timeout.
parex::Connection accept_bounded(pc::Listener& l) {
  BOOST_REQUIRE(!pc::wait({l.fileno()}, deadlock_timeout).empty());
  return l.accept();
}
void talk_with_child(pc::Listener& l, const std::string& key) {
  const auto& a = l.address();
  parex::Process p(conn_test::echo_client, a.inet, a.path, a.host, static_cast<int>(a.port), key);
  p.start();
  auto c = accept_bounded(l);
  BOOST_TEST(l.last_accepted().has_value());
  for (const std::string& m : std::vector<std::string>{"hello", "world", std::string(3 << 20, 'q')}) {
    c.send(m);
    std::string up = m;
    for (auto& ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    BOOST_REQUIRE(c.poll(deadlock_timeout));
    BOOST_TEST(c.recv<std::string>() == up);
  }
  c.send(std::string("bye"));
  BOOST_REQUIRE(c.poll(deadlock_timeout));
  BOOST_TEST(c.recv<int>() == p.pid());
  BOOST_REQUIRE(p.join(deadlock_timeout));
  BOOST_TEST(code_of(p) == 0);
  BOOST_REQUIRE(c.poll(deadlock_timeout));
  expect_error<parex::EOFError>([&] { return c.recv<int>(); });
}
}  // namespace

BOOST_AUTO_TEST_SUITE(mp_connection)

BOOST_AUTO_TEST_CASE(a_child_connects_over_a_unix_path_with_a_key_and_the_file_goes_with_the_listener) {
  const std::string path = unix_path();
  {
    pc::Listener l(path, "AF_UNIX", 1, "secret");
    BOOST_TEST(l.address().family() == "AF_UNIX");
    BOOST_TEST(std::filesystem::exists(path));
    talk_with_child(l, "secret");
  }
  BOOST_TEST(!std::filesystem::exists(path));
}

BOOST_AUTO_TEST_CASE(a_child_connects_over_an_abstract_name_without_a_key) {
  pc::Listener l(std::string("\0parex-test-", 12) + std::to_string(::getpid()));
  BOOST_TEST(l.address().abstract());
  talk_with_child(l, "");
  pc::Listener fresh;  // no address: a fresh abstract name
  BOOST_TEST(fresh.address().abstract());
}

BOOST_AUTO_TEST_CASE(a_child_connects_over_tcp_on_a_port_the_system_picked) {
  pc::Listener l({"127.0.0.1", 0}, "AF_INET", 4, "secret");
  BOOST_TEST(l.address().port != 0);
  talk_with_child(l, "secret");
  BOOST_TEST(l.last_accepted()->host == "127.0.0.1");
  expect_error<parex::ValueError>([] { pc::Listener bad({"127.0.0.1", 0}, "AF_UNIX"); });
}

BOOST_AUTO_TEST_CASE(a_wrong_key_is_an_authentication_error_on_both_sides) {
  const std::string path = unix_path();
  pc::Listener l(path, "", 1, "right");
  parex::Process p(conn_test::client_expecting_refusal, path, std::string("wrong"));
  p.start();
  BOOST_REQUIRE(!pc::wait({l.fileno()}, deadlock_timeout).empty());
  expect_error<parex::AuthenticationError>([&] { l.accept(); });
  BOOST_REQUIRE(p.join(deadlock_timeout));
  BOOST_TEST(code_of(p) == 7);
}

BOOST_AUTO_TEST_CASE(a_peer_that_never_speaks_times_the_handshake_out_on_both_sides) {
  pc::Listener mute(unix_path());  // no key: it never sends a challenge
  const auto t0 = std::chrono::steady_clock::now();
  expect_error<parex::TimeoutError>([&] { pc::Client(mute.address(), "", "key", 300ms); });
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < 5s));

  pc::Listener l(unix_path(), "", 1, "key", 300ms);
  auto silent = pc::Client(l.address());  // no key: connects and never answers
  const auto t1 = std::chrono::steady_clock::now();
  expect_error<parex::TimeoutError>([&] { l.accept(); });
  BOOST_TEST((std::chrono::steady_clock::now() - t1 < 5s));
}

BOOST_AUTO_TEST_CASE(a_message_past_the_limit_is_a_protocol_error_that_closes_the_connection) {
  auto [a, b] = socket_pair();
  BOOST_TEST(b.max_message_size() == parex::detail::default_max_message_size);
  b.set_max_message_size(1024);
  a.send_bytes(std::vector<std::byte>(1024));
  BOOST_TEST(b.recv_bytes().size() == 1024u);
  a.send_bytes(std::vector<std::byte>(2000));
  expect_error<parex::ProtocolError>([&] { return b.recv_bytes(); });
  BOOST_TEST(b.closed());

  auto [c, d] = socket_pair();  // a lying length: 3.75 GiB announced, nothing allocated
  const std::uint32_t huge = 0xF0000000u;
  BOOST_REQUIRE(::write(c.fileno(), &huge, sizeof huge) == sizeof huge);
  expect_error<parex::ProtocolError>([&] { return d.recv_bytes(); });
  expect_error<parex::ValueError>([&] { parex::Pipe().first.set_max_message_size(1); });
}

BOOST_AUTO_TEST_CASE(a_peer_sigkilled_mid_message_is_an_eof_and_a_send_to_a_closed_peer_a_broken_pipe) {
  const std::string path = unix_path();
  pc::Listener l(path);
  parex::Process p(conn_test::send_partial_then_die, path);
  p.start();
  auto c = accept_bounded(l);
  BOOST_REQUIRE(!pc::wait({p.sentinel()}, deadlock_timeout).empty());
  expect_error<parex::EOFError>([&] { return c.recv_bytes(); });
  p.join();
  BOOST_TEST(code_of(p) == -SIGKILL);

  auto [a, b] = socket_pair();
  b.close();
  expect_error<parex::BrokenPipeError>([&, &a = a] {
    for (int i = 0; i < 100; ++i) a.send(i);
  });
}

BOOST_AUTO_TEST_CASE(recv_bytes_into_fills_at_the_offset_or_throws_buffer_too_short_on_both_backings) {
  auto [s1, s2] = socket_pair();
  auto [p1, p2] = parex::Pipe();
  for (auto* ends : {&s1, &p1}) {
    parex::Connection& tx = *ends;
    parex::Connection& rx = ends == &s1 ? s2 : p2;
    const std::string text = "hello world";
    tx.send_bytes(std::as_bytes(std::span(text)));
    std::vector<std::byte> buf(20, std::byte{'.'});
    BOOST_TEST(rx.recv_bytes_into(buf, 5) == text.size());
    BOOST_TEST(std::string(reinterpret_cast<const char*>(buf.data()), buf.size()) == ".....hello world....");
    tx.send_bytes(std::vector<std::byte>(100, std::byte{7}));
    auto e = expect_error<parex::BufferTooShort>([&] { return rx.recv_bytes_into(buf); });
    BOOST_TEST(e.message().size() == 100u);
    tx.send(42);  // the connection goes on
    BOOST_TEST(rx.recv<int>() == 42);
  }
}

BOOST_AUTO_TEST_CASE(wait_returns_what_is_ready_among_pipe_ends_sockets_a_sentinel_and_a_raw_fd) {
  auto [pa, pb] = parex::Pipe();
  auto [sa, sb] = socket_pair();
  int raw[2];
  BOOST_REQUIRE(::pipe(raw) == 0);
  parex::Process p(sleep_ms, 60000);
  p.start();
  const std::vector<pc::Waitable> all{pa, sa, p.sentinel(), raw[0]};

  const auto t0 = std::chrono::steady_clock::now();
  BOOST_TEST(pc::wait(all, 100ms).empty());
  BOOST_TEST((std::chrono::steady_clock::now() - t0 >= 90ms));

  pb.send(1);
  auto r = pc::wait(all, deadlock_timeout);
  BOOST_REQUIRE(r.size() == 1u);
  BOOST_TEST(r[0].connection() == &pa);

  sb.send(2);
  BOOST_REQUIRE(::write(raw[1], "x", 1) == 1);
  BOOST_REQUIRE(sa.poll(deadlock_timeout));
  r = pc::wait(all, deadlock_timeout);
  BOOST_REQUIRE(r.size() == 3u);
  BOOST_TEST(r[0].connection() == &pa);
  BOOST_TEST(r[1].connection() == &sa);
  BOOST_TEST(r[2].fd() == raw[0]);
  BOOST_TEST(pa.recv<int>() == 1);
  BOOST_TEST(sa.recv<int>() == 2);
  char x;
  BOOST_REQUIRE(::read(raw[0], &x, 1) == 1);

  p.kill();
  r = pc::wait(all, deadlock_timeout);
  BOOST_REQUIRE(r.size() == 1u);
  BOOST_TEST(r[0].fd() == p.sentinel());
  p.join();
  ::close(raw[0]);
  ::close(raw[1]);
}

BOOST_AUTO_TEST_CASE(a_descriptor_sent_to_a_child_is_one_it_can_write_to) {
  const std::string path = unix_path();
  pc::Listener l(path, "", 1, "key");
  parex::Process p(conn_test::write_to_received_fd, path);
  p.start();
  auto c = accept_bounded(l);
  int pipefd[2];
  BOOST_REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
  parex::reduction::send_handle(c, pipefd[1], p.pid());
  ::close(pipefd[1]);  // the child holds its own copy now
  BOOST_REQUIRE(c.poll(deadlock_timeout));
  BOOST_TEST(c.recv<std::string>() == "done");
  BOOST_REQUIRE(p.join(deadlock_timeout));
  char buf[64] = {};
  const ssize_t n = ::read(pipefd[0], buf, sizeof buf);  // the child closed its copy: no hang
  BOOST_TEST(std::string(buf, n > 0 ? n : 0) == "written by the child");
  ::close(pipefd[0]);

  auto [pa, pb] = parex::Pipe();
  expect_error<parex::ValueError>([&, &pa = pa] { parex::reduction::send_handle(pa, 0, 0); });
}

BOOST_AUTO_TEST_SUITE_END()
