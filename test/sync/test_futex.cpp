// sync/futex: waits and wake-ups between threads (private) and between processes that map
// the same page (shared), deadlines, and that a private wake-up stays in its process.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "sync/futex.hpp"

#include <atomic>
#include <chrono>
#include <new>
#include <sys/mman.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using parex::detail::Clock;
using parex::detail::FutexScope;
using parex::detail::futex_wait;
using parex::detail::futex_wake;
using parex::detail::futex_wake_all;

namespace {
// Two futex words on a page shared with children forked after it is mapped.
struct SharedWords {
  std::atomic<std::uint32_t> go{0};
  std::atomic<std::uint32_t> answer{0};
};
struct SharedPage {
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  SharedWords* words = new (p) SharedWords;
  ~SharedPage() { ::munmap(p, 4096); }
};

// Waits until `word` leaves `value` (bounded by `limit`); true if it did.
bool wait_while(std::atomic<std::uint32_t>& word, std::uint32_t value, FutexScope scope, Clock::duration limit) {
  const auto deadline = Clock::now() + limit;
  while (word.load() == value)
    if (!futex_wait(word, value, &deadline, scope) && word.load() == value) return false;
  return true;
}

// In a forked child: only async-signal-safe calls (futex syscalls, _exit).
[[noreturn]] void child_waits_then_answers(SharedWords& w, FutexScope scope, Clock::duration limit) {
  const bool woken = wait_while(w.go, 0, scope, limit);
  if (woken) {
    w.answer.store(w.go.load() + 1);
    futex_wake_all(w.answer, FutexScope::shared);
  }
  ::_exit(woken ? 0 : 3);
}

int exit_code_of(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(futex)

BOOST_AUTO_TEST_CASE(a_private_futex_wakes_a_thread) {
  std::atomic<std::uint32_t> word{0};
  std::thread t([&] { BOOST_TEST(wait_while(word, 0, FutexScope::process_private, 30s)); });
  std::this_thread::sleep_for(10ms);
  word.store(1);
  futex_wake(word, 1);
  t.join();
}

BOOST_AUTO_TEST_CASE(a_wait_ends_at_its_deadline_or_at_once_if_the_value_differs) {
  std::atomic<std::uint32_t> word{5};
  const auto past = Clock::now() - 1ms;
  BOOST_TEST(!futex_wait(word, 5, &past));
  const auto soon = Clock::now() + 20ms;
  BOOST_TEST(!futex_wait(word, 5, &soon, FutexScope::shared));
  BOOST_TEST((Clock::now() >= soon));
  futex_wait(word, 4, nullptr);  // not equal: returns at once (a hang fails the suite's timeout)
}

BOOST_AUTO_TEST_CASE(a_shared_futex_wakes_a_waiter_in_another_process_and_back) {
  SharedPage page;
  SharedWords& w = *page.words;
  const pid_t child = ::fork();
  if (child == 0) child_waits_then_answers(w, FutexScope::shared, 30s);
  std::this_thread::sleep_for(20ms);  // let it block (it works either way)
  w.go.store(41);
  futex_wake_all(w.go, FutexScope::shared);
  BOOST_TEST(wait_while(w.answer, 0, FutexScope::shared, 30s));
  BOOST_TEST(w.answer.load() == 42u);
  BOOST_TEST(exit_code_of(child) == 0);
}

BOOST_AUTO_TEST_CASE(many_processes_wait_on_one_shared_word) {
  SharedPage page;
  SharedWords& w = *page.words;
  pid_t children[4];
  for (pid_t& c : children)
    if ((c = ::fork()) == 0) ::_exit(wait_while(w.go, 0, FutexScope::shared, 30s) ? 0 : 3);
  std::this_thread::sleep_for(20ms);
  w.go.store(1);
  futex_wake_all(w.go, FutexScope::shared);
  for (pid_t c : children) BOOST_TEST(exit_code_of(c) == 0);
}

// A private wake-up is keyed to this process's address space: a waiter in another
// process that maps the same page does not see it (it sleeps until its deadline, and
// finds the value changed only then).
BOOST_AUTO_TEST_CASE(a_private_wake_does_not_cross_processes) {
  SharedPage page;
  SharedWords& w = *page.words;
  const pid_t child = ::fork();
  if (child == 0) {
    const auto deadline = Clock::now() + 300ms;
    const bool woken = futex_wait(w.go, 0, &deadline, FutexScope::shared);
    ::_exit(woken ? 0 : 3);  // 3: it slept to its deadline
  }
  std::this_thread::sleep_for(50ms);
  futex_wake_all(w.go, FutexScope::process_private);  // value unchanged: a wake-up alone
  BOOST_TEST(exit_code_of(child) == 3);
}

BOOST_AUTO_TEST_SUITE_END()
