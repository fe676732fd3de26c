// channel/FrameWriter on its own: a frame of copied and spliced pieces through a small
// non-blocking pipe (partial writes, EAGAIN, resumption, byte order), the copy fallback
// where vmsplice is refused, a reader that went away, and the record codec end to end.
#include "support/helpers.hpp"

#include "channel/frame_writer.hpp"

#include <parex/detail/wire/records.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <numeric>
#include <pthread.h>
#include <thread>
#include <unistd.h>
#include <vector>

using parex::detail::FrameWriter;

namespace {
std::vector<std::byte> pattern(std::size_t n, int seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
  return v;
}

// Builds copied(a) + spliced(b) + copied(c) + spliced(d) + copied(e); returns the bytes
// the reader must see.
std::vector<std::byte> build(FrameWriter& w, const std::vector<std::byte>& b, const std::vector<std::byte>& d) {
  std::vector<std::byte> expect;
  auto copy = [&](std::size_t n, int seed) {
    const auto p = pattern(n, seed);
    w.frame().put(p.data(), p.size());
    expect.insert(expect.end(), p.begin(), p.end());
  };
  auto splice = [&](const std::vector<std::byte>& p) {
    w.splice(p);
    expect.insert(expect.end(), p.begin(), p.end());
  };
  w.begin();
  copy(100, 1);
  splice(b);
  copy(70'000, 2);
  splice(d);
  copy(3, 3);
  w.seal();
  return expect;
}

struct Pipe {
  int fd[2];
  Pipe() { BOOST_REQUIRE(::pipe2(fd, O_CLOEXEC | O_NONBLOCK) == 0); }
  ~Pipe() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(channel)

BOOST_AUTO_TEST_CASE(a_frame_goes_through_a_small_pipe_in_pieces_and_in_order) {
  Pipe p;
  ::fcntl(p.fd[1], F_SETPIPE_SZ, 4096);
  const auto b = pattern(200'000, 7), d = pattern(5'000, 9);
  FrameWriter w;
  const auto expect = build(w, b, d);
  BOOST_TEST(w.spliced_bytes() == b.size() + d.size());
  std::vector<std::byte> got;
  int would_block = 0;
  for (int error = 0;;) {
    const auto status = w.write_some(p.fd[1], error);
    BOOST_REQUIRE(status != FrameWriter::Status::failed);
    // Drain what is there (the pipe holds references to spliced pages until read).
    std::byte buf[8192];
    for (ssize_t n; (n = ::read(p.fd[0], buf, sizeof buf)) > 0;) got.insert(got.end(), buf, buf + n);
    if (status == FrameWriter::Status::done) break;
    ++would_block;
  }
  BOOST_TEST(would_block > 10);  // it really was written in pieces
  BOOST_TEST(got.size() == expect.size());
  BOOST_TEST((got == expect));
}

BOOST_AUTO_TEST_CASE(where_vmsplice_is_refused_the_bytes_are_copied) {
  char path[] = "/tmp/parex-frame-writer-XXXXXX";
  const int fd = ::mkstemp(path);  // a regular file: vmsplice refuses it (EBADF: not a pipe)
  BOOST_REQUIRE(fd >= 0);
  ::unlink(path);
  const auto b = pattern(100'000, 5), d = pattern(10, 6);
  FrameWriter w;
  const auto expect = build(w, b, d);
  int error = 0;
  const auto status = w.write_some(fd, error);
  std::vector<std::byte> got(expect.size() + 1);
  const ssize_t n = ::pread(fd, got.data(), got.size(), 0);
  ::close(fd);
  BOOST_TEST((status == FrameWriter::Status::done), "error " << error);
  got.resize(static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
  BOOST_TEST((got == expect));
}

BOOST_AUTO_TEST_CASE(a_reader_that_went_away_is_a_failure_with_its_errno) {
  Pipe p;
  ::close(p.fd[0]);
  p.fd[0] = -1;
  auto old = std::signal(SIGPIPE, SIG_IGN);
  FrameWriter w;
  w.begin();
  w.frame().put_byte(1);
  w.seal();
  int error = 0;
  const auto status = w.write_some(p.fd[1], error);
  std::signal(SIGPIPE, old);
  BOOST_TEST((status == FrameWriter::Status::failed));
  BOOST_TEST(error == EPIPE);
}

// A thread that has not blocked SIGPIPE (one that waits for a call and runs a pool's
// loop meanwhile): the default action would end the program. The write fails with EPIPE,
// no SIGPIPE is left pending, and the thread's mask is as it was.
BOOST_AUTO_TEST_CASE(a_reader_that_went_away_raises_no_sigpipe_in_a_thread_that_did_not_block_it) {
  FrameWriter::Status status = FrameWriter::Status::done;
  int error = 0;
  bool blocked_after = true, pending_after = true;
  auto old = std::signal(SIGPIPE, SIG_DFL);
  std::thread t([&] {  // a thread of its own: its mask is the test's to set
    Pipe p;
    ::close(p.fd[0]);
    p.fd[0] = -1;
    sigset_t none, after, pending;
    sigemptyset(&none);
    ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
    FrameWriter w;
    w.begin();
    w.frame().put_byte(1);
    w.seal();
    status = w.write_some(p.fd[1], error);
    ::pthread_sigmask(SIG_SETMASK, nullptr, &after);
    ::sigpending(&pending);
    blocked_after = sigismember(&after, SIGPIPE) == 1;
    pending_after = sigismember(&pending, SIGPIPE) == 1;
  });
  t.join();
  std::signal(SIGPIPE, old);
  BOOST_TEST((status == FrameWriter::Status::failed));
  BOOST_TEST(error == EPIPE);
  BOOST_TEST(!blocked_after);
  BOOST_TEST(!pending_after);
}

BOOST_AUTO_TEST_CASE(call_records_and_outcomes_round_trip) {
  using namespace parex::detail;
  Buffer b;
  put_call_head(b, {42, 3, false});
  for (int i = 0; i < 3; ++i) put_length_prefixed(b, [&](Writer& w) { w.put_byte(static_cast<std::uint8_t>(i)); });
  put_call_head(b, {7, 1000, true});
  put_arena_ref(b, {1ull << 40, 12345});
  put_ok_outcome(b, [](Writer& w) { w.put_byte(9); }, 1, 1);
  put_ok_outcome(b, [](Writer& w) { w.put(std::string(300, 'x').data(), 300); }, 10);
  Reader r(b.bytes());
  const CallHead h1 = read_call_head(r);
  BOOST_TEST(h1.fn_id == 42u);
  BOOST_TEST(h1.items == 3u);
  BOOST_TEST(!h1.in_arena);
  for (int i = 0; i < 3; ++i) {
    Reader item = read_item(r);
    BOOST_TEST(item.get_byte() == i);
    BOOST_TEST(item.empty());
  }
  const CallHead h2 = read_call_head(r);
  BOOST_TEST(h2.fn_id == 7u);
  BOOST_TEST(h2.items == 1000u);
  BOOST_TEST(h2.in_arena);
  const ArenaRef a = read_arena_ref(r);
  BOOST_TEST(a.offset == 1ull << 40);
  BOOST_TEST(a.length == 12345u);
  OutcomeView o = read_outcome(r);
  BOOST_TEST((o.status == OutcomeStatus::ok));
  BOOST_TEST(o.body.get_byte() == 9);
  o = read_outcome(r);
  BOOST_TEST(o.body.remaining() == 300u);
  BOOST_TEST(r.empty());
  Reader cut(b.bytes().first(3));  // a record cut short is a ProtocolError, never a read past the end
  read_call_head(cut);
  test::expect_error<parex::ProtocolError>([&] { read_item(cut); });
}

BOOST_AUTO_TEST_SUITE_END()
