// parex::Process: start, join, exit codes, signals, identity, daemon and non-daemon
// children at the parent's exit and death.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "mp/mp_functions.hpp"
#include "support/helpers.hpp"
#include "support/processes.hpp"

#include <csignal>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace test;
using namespace mp_test;

BOOST_AUTO_TEST_SUITE(mp_process)

BOOST_AUTO_TEST_CASE(a_child_runs_the_function_with_its_arguments_and_exits_0) {
  parex::Value<int> counter(0);
  parex::Lock lock;
  parex::Process p(add_under_lock, counter, lock, 25);
  BOOST_TEST(!p.exitcode().has_value());
  BOOST_TEST(p.pid() == 0);
  p.start();
  BOOST_TEST(p.pid() > 0);
  p.join();
  BOOST_TEST(code_of(p) == 0);
  BOOST_TEST(counter.value() == 25);
  BOOST_TEST(!p.is_alive());
}

BOOST_AUTO_TEST_CASE(exit_codes_follow_python) {
  parex::Process exits(exit_with, 7);
  exits.start();
  exits.join();
  BOOST_TEST(code_of(exits) == 7);

  StderrCapture err;
  parex::Process throws(throw_runtime_error, std::string("boom in the child"));
  throws.name = "thrower";
  throws.start();
  throws.join();
  const std::string text = err.text();
  BOOST_TEST(code_of(throws) == 1);
  BOOST_TEST(text.find("Process thrower:") != std::string::npos, text);
  BOOST_TEST(text.find("std::runtime_error: boom in the child") != std::string::npos, text);

  parex::Process killed(sleep_ms, 60000);
  killed.start();
  BOOST_TEST(!killed.join(50ms));
  BOOST_TEST(killed.is_alive());
  killed.kill();
  BOOST_TEST(killed.join(deadlock_timeout));
  BOOST_TEST(code_of(killed) == -SIGKILL);

  parex::Process terminated(sleep_ms, 60000);
  terminated.start();
  terminated.terminate();
  terminated.join();
  BOOST_TEST(code_of(terminated) == -SIGTERM);
}

BOOST_AUTO_TEST_CASE(misuse_is_a_typed_error) {
  parex::Process p(sleep_ms, 0);
  expect_error<parex::InvalidStateError>([&] { p.join(); });
  p.start();
  expect_error<parex::InvalidStateError>([&] { p.start(); });
  parex::Process running(sleep_ms, 60000);
  running.start();
  expect_error<parex::ValueError>([&] { running.close(); });
  running.kill();
  running.join();
  running.close();
  expect_error<parex::ValueError>([&] { running.start(); });
  p.join();
  p.kill();  // ended: nothing happens
  BOOST_TEST(code_of(p) == 0);
}

BOOST_AUTO_TEST_CASE(names_identity_and_active_children) {
  parex::Array<char> name(64);
  parex::Value<int> parent_pid(0);
  parex::Process p(report_identity, name, parent_pid);
  BOOST_TEST(p.name.rfind("Process-", 0) == 0u, p.name);
  p.name = "reporter";
  p.start();
  p.join();
  BOOST_TEST(std::string(name.begin()) == "reporter");
  BOOST_TEST(parent_pid.value() == ::getpid());
  BOOST_TEST(parex::current_process().name == "MainProcess");
  BOOST_TEST(!parex::parent_process().has_value());

  parex::Process a(sleep_ms, 60000), b(sleep_ms, 60000);
  a.start();
  b.start();
  auto live = parex::active_children();
  BOOST_TEST(live.size() >= 2u);
  a.kill();
  b.kill();
  a.join();
  b.join();
  for (auto& c : parex::active_children()) BOOST_TEST((c.pid != a.pid() && c.pid != b.pid()));
  BOOST_TEST(parex::cpu_count() >= parex::process_cpu_count());
}

BOOST_AUTO_TEST_CASE(a_daemon_child_is_stopped_when_its_parent_exits) {
  // The child starts a daemon grandchild (60 s of sleep) and returns: its exit stops it.
  parex::Value<int> grandchild(0), done(0);
  parex::Event started;
  parex::Process child(start_grandchild, true, grandchild, started, 60000, done);
  child.start();
  child.join();
  BOOST_TEST(code_of(child) == 0);
  BOOST_TEST(grandchild.value() > 0);
  BOOST_TEST(eventually([&] { return !process_alive(grandchild.value()); }), "daemon grandchild still alive");
  BOOST_TEST(done.value() == 0);
}

BOOST_AUTO_TEST_CASE(a_non_daemon_child_is_joined_at_exit) {
  // The child returns at once; its non-daemon grandchild sleeps 300 ms, then sets done.
  // The child's exit joins it, as Python's does: once the child is joined, done is set.
  parex::Value<int> grandchild(0), done(0);
  parex::Event started;
  parex::Process child(start_grandchild, false, grandchild, started, 300, done);
  child.start();
  child.join();
  BOOST_TEST(code_of(child) == 0);
  BOOST_TEST(done.value() == 1);
}

BOOST_AUTO_TEST_CASE(a_daemon_of_a_sigkilled_parent_is_stopped) {
  // The child is SIGKILLed (no exit handler runs) while its daemon grandchild sleeps: the
  // grandchild watches its parent and ends too.
  parex::Value<int> grandchild(0);
  parex::Event started;
  parex::Process child(start_daemon_then_sleep, grandchild, started);
  child.start();
  BOOST_REQUIRE(started.wait(deadlock_timeout));
  BOOST_TEST(process_alive(grandchild.value()));
  child.kill();
  child.join();
  BOOST_TEST(eventually([&] { return !process_alive(grandchild.value()); }), "daemon grandchild outlived its parent");
}

BOOST_AUTO_TEST_CASE(a_process_subclass_runs_with_its_members) {
  parex::Value<int> total(0);
  parex::Lock lock;
  std::vector<Adder> adders(3);
  for (int i = 0; i < 3; ++i) {
    adders[static_cast<std::size_t>(i)].total = total;
    adders[static_cast<std::size_t>(i)].lock = lock;
    adders[static_cast<std::size_t>(i)].amount = i + 1;
    adders[static_cast<std::size_t>(i)].label = "abcd";
  }
  for (auto& a : adders) a.start();
  for (auto& a : adders) a.join();
  for (auto& a : adders) BOOST_TEST(code_of(a) == 0);
  BOOST_TEST(total.value() == (1 + 2 + 3) * 4);
  Unregistered u;
  expect_error<parex::UnregisteredFunction>([&] { u.start(); });
}

BOOST_AUTO_TEST_CASE(a_temporary_handle_reaches_the_child) {
  // The only handle is the argument: sending pins the segment until the child attaches.
  parex::Event done;
  parex::Process p(set_event_after, done, 0);
  p.start();
  p.join();
  BOOST_TEST(code_of(p) == 0);
  BOOST_TEST(done.is_set());
}

// Issue 20 (CPython's test_close): a closed Process answers nothing but close().
BOOST_AUTO_TEST_CASE(a_closed_process_raises_value_error) {
  parex::Process p(sleep_ms, 0);
  p.start();
  p.join();
  BOOST_TEST(code_of(p) == 0);
  p.close();
  expect_error<parex::ValueError>([&] { return p.is_alive(); });
  expect_error<parex::ValueError>([&] { p.join(); });
  expect_error<parex::ValueError>([&] { return p.join(10ms); });
  expect_error<parex::ValueError>([&] { p.terminate(); });
  expect_error<parex::ValueError>([&] { p.kill(); });
  expect_error<parex::ValueError>([&] { p.start(); });
  expect_error<parex::ValueError>([&] { return p.exitcode(); });
  expect_error<parex::ValueError>([&] { return p.pid(); });
  p.close();  // twice: harmless
  parex::Process never(sleep_ms, 0);
  never.close();
  expect_error<parex::ValueError>([&] { never.start(); });
}

// Issue 20 (CPython's test_daemon_argument): a Process made in a daemon child defaults to
// daemon, as current_process() there says.
BOOST_AUTO_TEST_CASE(a_process_made_in_a_daemon_child_is_a_daemon) {
  BOOST_TEST(!parex::current_process().daemon);
  BOOST_TEST(!parex::Process(sleep_ms, 0).daemon);
  for (bool daemon : {true, false}) {
    parex::Value<int> current(-1), created(-1);
    parex::Process p(report_daemon_flags, current, created);
    p.daemon = daemon;
    p.start();
    p.join();
    BOOST_TEST(code_of(p) == 0);
    BOOST_TEST(current.value() == int(daemon));
    BOOST_TEST(created.value() == int(daemon));
  }
}

// Issue 20: a Process dropped without join() is reaped at the next start() (Python's
// _cleanup), not left a zombie until the program exits.
BOOST_AUTO_TEST_CASE(a_dropped_process_is_reaped_at_the_next_start) {
  pid_t pid = 0;
  {
    parex::Process p(sleep_ms, 0);
    p.start();
    pid = p.pid();
  }
  // Ended: a zombie (state Z) until someone reaps it.
  const auto state = [&] {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string all((std::istreambuf_iterator<char>(f)), {});
    const auto paren = all.rfind(')');
    return paren == std::string::npos || paren + 2 >= all.size() ? '?' : all[paren + 2];
  };
  BOOST_REQUIRE(eventually([&] { return state() == 'Z'; }));
  parex::Process next(sleep_ms, 0);
  next.start();
  BOOST_TEST(state() == '?', "the dropped child is still a zombie");
  next.join();
}

// Issue 20: each handle sent to a Process that dies before decoding it was pinned in
// the parent for ever (an fd and a mapping per cycle); so was one never started.
BOOST_AUTO_TEST_CASE(pins_of_a_child_that_died_unreceived_are_released) {
  const std::size_t fds_before = open_fds();
  for (int i = 0; i < 100; ++i) {
    parex::Value<int> v(0);
    parex::Process p(keep_value, v);
    p.start();
    p.kill();  // long before it decodes its arguments (most rounds)
    p.join();
  }
  for (int i = 0; i < 50; ++i) {
    parex::Value<int> v(0);
    parex::Process unstarted(keep_value, v);
  }
  parex::Value<int> received(0);  // a child that does receive its handle still works
  parex::Process p(keep_value, received);
  p.start();
  p.join();
  BOOST_TEST(received.value() == 1);
  parex::Value<int> sweep(0);  // a creation sweeps the pins whose receivers attached
  BOOST_TEST(open_fds() <= fds_before + 10, "fds before: " << fds_before << ", after: " << open_fds());
}

// Issue 21: current_process().authkey (random in the main program, inherited or set per
// Process), parent_process().is_alive() and join(timeout), Process::interrupt().
BOOST_AUTO_TEST_CASE(authkey_parent_process_and_interrupt) {
  const std::string mine = parex::current_process().authkey;
  BOOST_TEST(mine.size() == 32u);
  BOOST_TEST(!parex::current_process().exitcode.has_value());
  BOOST_TEST(parex::current_process().is_alive());
  for (const std::string& key : {std::string(), std::string("a key of our own")}) {
    parex::Array<char> seen(64);
    parex::Value<int> parent_alive(-1), join_timed_out(-1);
    parex::Process p(report_authkey_and_parent, seen, parent_alive, join_timed_out);
    BOOST_TEST(p.authkey == mine);
    if (!key.empty()) p.authkey = key;
    p.start();
    p.join();
    BOOST_TEST(code_of(p) == 0);
    const std::string expected = key.empty() ? mine : key;
    BOOST_TEST(std::string(seen.begin(), seen.begin() + expected.size()) == expected);
    BOOST_TEST(parent_alive.value() == 1);
    BOOST_TEST(join_timed_out.value() == 1);  // the parent runs on: join(20ms) is false
  }
  parex::Event ready;
  parex::Process p(wait_for_sigint, ready);
  p.start();
  BOOST_REQUIRE(ready.wait(deadlock_timeout));
  p.interrupt();
  BOOST_TEST(p.join(deadlock_timeout));
  BOOST_TEST(code_of(p) == -SIGINT);
  // A child that ended can be joined through its ProcessInfo too.
  parex::Process q(sleep_ms, 0);
  q.start();
  const parex::ProcessInfo info{q.name, q.pid()};
  BOOST_TEST(info.join(deadlock_timeout));
  BOOST_TEST(!info.is_alive());
  q.join();
}

BOOST_AUTO_TEST_SUITE_END()
