// Pipe and Connection: a conversation with a child, one-way pipes, EOF when the other end
// is closed, dropped or SIGKILLed, poll, and bad messages as typed errors.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "mp/mp_functions.hpp"
#include "support/helpers.hpp"

#include <csignal>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace test;
using namespace mp_test;

namespace {
// This process keeps one end; a child holds the other (this process's copy closed) and
// sleeps until it is killed.
std::pair<parex::Connection, parex::Process> pipe_held_by_a_sleeping_child() {
  auto [a, b] = parex::Pipe();
  parex::Event ready;
  parex::Process p(pipe_hold_and_sleep, b, ready);
  p.start();
  b.close();
  BOOST_REQUIRE(ready.wait(deadlock_timeout));
  return {std::move(a), std::move(p)};
}
}  // namespace

BOOST_AUTO_TEST_SUITE(mp_pipe)

BOOST_AUTO_TEST_CASE(a_conversation_with_a_child_ending_on_a_sentinel) {
  auto [a, b] = parex::Pipe();
  parex::Process p(pipe_talker, b);
  p.start();
  b.close();
  for (std::string m : std::vector<std::string>{"hello", "world", std::string(300000, 'x')}) {
    a.send(m);
    std::string up = m;
    for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    BOOST_TEST(a.recv<std::string>() == up);
  }
  a.send(std::string("bye"));
  p.join();
  BOOST_TEST(code_of(p) == 0);
  expect_error<parex::EOFError>([&] { return a.recv<std::string>(); });  // the child's end is gone
  BOOST_TEST(a.poll(0s));  // recv would not block
}

BOOST_AUTO_TEST_CASE(eof_comes_after_the_messages_left) {
  auto [rx, tx] = parex::Pipe(false);
  BOOST_TEST(rx.readable());
  BOOST_TEST(!rx.writable());
  BOOST_TEST(tx.writable());
  expect_error<parex::ValueError>([&] { rx.send(1); });
  expect_error<parex::ValueError>([&] { return tx.recv<int>(); });
  parex::Process p(pipe_sender_then_exit, tx, 1000);
  p.start();
  tx.close();
  BOOST_TEST(tx.closed());
  for (int i = 0; i < 1000; ++i) BOOST_REQUIRE(rx.recv<int>() == i);
  expect_error<parex::EOFError>([&] { return rx.recv<int>(); });
  p.join();
}

BOOST_AUTO_TEST_CASE(a_sigkilled_peer_is_an_eof_not_a_hang) {
  auto [a, p] = pipe_held_by_a_sleeping_child();
  BOOST_TEST(!a.poll(50ms));
  p.kill();
  p.join();
  expect_error<parex::EOFError>([&] { return a.recv<int>(); });
}

BOOST_AUTO_TEST_CASE(a_peer_that_drops_its_end_in_this_process) {
  auto [a, b] = parex::Pipe();
  std::thread t([b = std::move(b)]() mutable {
    b.send(7);
    b.close();
  });
  t.join();
  BOOST_TEST(a.recv<int>() == 7);
  expect_error<parex::EOFError>([&] { return a.recv<int>(); });
}

BOOST_AUTO_TEST_CASE(a_big_message_sent_just_before_close_arrives_before_the_eof) {
  auto [a, b] = parex::Pipe();
  std::thread t([b = std::move(b)]() mutable {
    b.send(std::string(3u << 20, 'm'));  // streams through the sender's feeder
    b.close();
  });
  BOOST_TEST(a.recv<std::string>().size() == 3u << 20);
  expect_error<parex::EOFError>([&] { return a.recv<std::string>(); });
  t.join();
}

BOOST_AUTO_TEST_CASE(poll_and_bytes_and_bad_messages) {
  auto [a, b] = parex::Pipe();
  BOOST_TEST(!a.poll());
  BOOST_TEST(!a.poll(20ms));
  const std::vector<std::byte> raw(1000, std::byte{0x5a});
  b.send_bytes(raw);
  BOOST_TEST(a.poll(deadlock_timeout));
  BOOST_TEST((a.recv_bytes() == raw));
  b.send_bytes(raw);
  expect_error<parex::ProtocolError>([&] { return a.recv_bytes(100); });  // oversized
  b.send(std::int32_t{5});
  expect_error<parex::ProtocolError>([&] { return a.recv<std::int64_t>(); });  // not that type
  b.send(std::int64_t{5});
  expect_error<parex::ProtocolError>([&] { return a.recv<std::int32_t>(); });  // trailing bytes
  b.send(std::string("still fine"));
  BOOST_TEST(a.recv<std::string>() == "still fine");
  a.close();
  expect_error<parex::ValueError>([&] { return a.recv<int>(); });
}

// Issue 20: a writer SIGKILLed and not yet reaped (a zombie: its parent is this very
// process, busy in recv) is gone, not alive. recv() used to wait for ever.
BOOST_AUTO_TEST_CASE(a_sigkilled_writer_not_yet_reaped_is_an_eof) {
  auto [a, p] = pipe_held_by_a_sleeping_child();
  const pid_t pid = p.pid();
  ::kill(pid, SIGKILL);  // not reaped: no join(), is_alive() or exitcode() until the end
  BOOST_TEST(a.poll(10s), "the zombie writer counted as a live holder");
  expect_error<parex::EOFError>([&] { return a.recv<int>(); });
  p.join();
  BOOST_TEST(code_of(p) == -SIGKILL);
}

// Issue 20: Python's send raises BrokenPipeError once nobody can receive.
BOOST_AUTO_TEST_CASE(a_send_to_a_gone_reader_is_a_broken_pipe) {
  {  // the other end was never given away, and is closed here
    auto [a, b] = parex::Pipe();
    b.close();
    expect_error<parex::BrokenPipeError>([&] { a.send(1); });
  }
  auto [a, p] = pipe_held_by_a_sleeping_child();
  a.send(1);  // a live reader holds it
  ::kill(p.pid(), SIGKILL);  // a zombie until the join below
  bool broken = false;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!broken && std::chrono::steady_clock::now() < until) {
    try {
      a.send(std::string(100000, 's'));  // past the ring, these would wait in the feeder
    } catch (const parex::BrokenPipeError&) {
      broken = true;
    }
    std::this_thread::sleep_for(1ms);
  }
  BOOST_TEST(broken);
  p.join();
}

// Issue 20: a child whose messages wait in its feeder (the ring is full) exits once no
// live process holds the receiving end, instead of waiting for ever for a reader. Here
// the parent still holds the pipe's memory (the pin of the handle it sent), so only the
// pipe's own table can tell that nobody can receive.
BOOST_AUTO_TEST_CASE(an_exit_does_not_wait_for_messages_nobody_can_receive) {
  auto [rx, tx] = parex::Pipe(false);
  parex::Event sent;
  parex::Process p(flood_pipe_then_exit, tx, sent, 12);
  p.start();
  tx.close();
  BOOST_REQUIRE(sent.wait(deadlock_timeout));  // 12 MiB sent: at least 8 wait in its feeder
  rx.close();
  const bool ended = p.join(30s);
  if (!ended) p.kill();
  BOOST_TEST(ended, "the child's exit waited for a reader that no process could be");
  BOOST_TEST(code_of(p) == 0);
}

// Issue 20: a message of another type of the same size is an error, never reinterpreted.
BOOST_AUTO_TEST_CASE(a_message_of_another_type_is_refused_whatever_its_size) {
  auto [a, b] = parex::Pipe();
  b.send(std::string("abc"));
  expect_error<parex::ProtocolError>([&] { return a.recv<int>(); });
  b.send(std::int64_t{42});
  expect_error<parex::ProtocolError>([&] { return a.recv<double>(); });
  b.send(2.5);
  expect_error<parex::ProtocolError>([&] { return a.recv<std::int64_t>(); });
  b.send(std::uint32_t{7});
  expect_error<parex::ProtocolError>([&] { return a.recv<float>(); });
  const std::vector<std::byte> four(4, std::byte{1});
  b.send_bytes(four);
  expect_error<parex::ProtocolError>([&] { return a.recv<int>(); });
  b.send(std::vector<int>{1, 2});
  expect_error<parex::ProtocolError>([&] { return a.recv<std::vector<unsigned>>(); });
  b.send(-5);
  BOOST_TEST(a.recv<int>() == -5);  // the refused ones were consumed, and the pipe goes on
}

BOOST_AUTO_TEST_SUITE_END()
