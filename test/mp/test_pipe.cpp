// Pipe and Connection: a conversation with a child, one-way pipes, EOF when the other end
// is closed, dropped or SIGKILLed, poll, and bad messages as typed errors.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "mp/mp_functions.hpp"
#include "support/helpers.hpp"

#include <string>
#include <thread>
#include <vector>

using namespace test;
using namespace mp_test;

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
  auto [a, b] = parex::Pipe();
  parex::Event ready;
  parex::Process p(pipe_hold_and_sleep, b, ready);
  p.start();
  b.close();
  BOOST_REQUIRE(ready.wait(deadlock_timeout));
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

BOOST_AUTO_TEST_SUITE_END()
