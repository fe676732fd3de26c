// Registered functions the multiprocessing tests run in Process children and pool workers.
#pragma once

#include <parex/parex.hpp>

#include <span>
#include <string>

namespace mp_test {
/// A Process's exit code for checks; -1000 while it has none.
inline int code_of(const parex::Process& p) { return p.exitcode().value_or(-1000); }

/// A value encoded and decoded as it is when it travels (a handle arrives as the same object).
template <class T>
T round_trip(const T& v) {
  parex::detail::Buffer b;
  parex::detail::encode(b, v);
  parex::detail::Reader r(std::span<const std::byte>(b.data(), b.size()));
  return parex::detail::decode<T>(r);
}

void add_under_lock(parex::Value<int> counter, parex::Lock lock, int times);
void add_under_value_lock(parex::Value<int> counter, int times);
void exit_with(int code);
void throw_runtime_error(std::string what);
void sleep_ms(int ms);
void hold_lock_and_sleep(parex::Lock lock, parex::Event held);
void write_squares(parex::Array<int> a, int from, int to);
void fill_shared_memory(std::string name, int byte);
void inside_semaphore(parex::Semaphore s, parex::Value<int> inside, parex::Value<int> peak);
void set_event_after(parex::Event e, int ms);
void report_identity(parex::Array<char> name_out, parex::Value<int> parent_pid);
void start_grandchild(bool daemon, parex::Value<int> grandchild_pid, parex::Event started, int grandchild_ms,
                      parex::Value<int> grandchild_done);
void sleep_then_set(int ms, parex::Value<int> done);
void start_daemon_then_sleep(parex::Value<int> grandchild_pid, parex::Event started);
int add_in_worker(parex::Value<int> counter, parex::Lock lock);
}  // namespace mp_test

namespace mp_test {
void produce_range(parex::Queue<int> q, int from, int to);
void consume_n(parex::Queue<int> q, parex::Array<int> seen, int n);
void consume_until_minus_one(parex::Queue<int> q, parex::Array<int> seen);
void join_worker(parex::JoinableQueue<int> q, parex::Value<long> sum);
void echo_big(parex::Queue<std::string> in, parex::Queue<std::string> out);
// Item `seq` of putter `id`: "id:seq:" and a filler whose size and letter follow from both;
// every 7th is bigger than a quarter of a 64 KiB ring (it streams in chunks).
std::string mixed_item(int id, int seq);
void put_mixed(parex::Queue<std::string> q, int id, int n);
// Gets ints from `in` and puts each back on `out`, until a negative one (put back too).
void echo_ints(parex::Queue<int> in, parex::Queue<int> out);
// Gets until an empty item; checks each against mixed_item and counts it in seen[id * n + seq]
// (a wrong item counts in seen's last slot).
void get_mixed(parex::Queue<std::string> q, parex::Array<int> seen, int n);
void acquire_and_return(parex::Lock lock);
}  // namespace mp_test

namespace mp_test {
void pipe_talker(parex::Connection c);
void pipe_sender_then_exit(parex::Connection c, int n);
void pipe_hold_and_sleep(parex::Connection c, parex::Event ready);
}  // namespace mp_test

namespace mp_test {
void wait_until_ready(parex::Condition cv, parex::Value<int> ready, parex::Value<int> seen);
void barrier_party(parex::Barrier b, parex::Array<int> order, parex::Value<long> released_at_ns);
void count_action();
extern int action_runs;
}  // namespace mp_test

namespace mp_test {
/// A Process subclass (Python: class Worker(Process): def run(self): ...).
struct Adder : parex::Process {
  parex::Value<int> total;
  parex::Lock lock;
  int amount = 0;
  std::string label;
  void run() override;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar & total & lock & amount & label;
  }
};
struct Unregistered : parex::Process {
  void run() override {}
  template <class Ar>
  void serialize(Ar&, unsigned) {}
};
}  // namespace mp_test

namespace mp_test {
void take_lock_from_queue_and_add(parex::Queue<parex::Lock> locks, parex::Value<int> counter, int times);
void hold_rlock_twice_and_sleep(parex::RLock lock, parex::Event held);
void put_forever(parex::Queue<std::string> q, int id);
}  // namespace mp_test

namespace mp_test {
// Issue 20's faults: consumers that die owing task_done(), pins of dead receivers, daemon
// flags inherited, pipes whose reader is gone.
void get_n_and_exit(parex::JoinableQueue<int> q, int n);
void get_n_and_hang(parex::JoinableQueue<int> q, int n, parex::Event got);
void keep_value(parex::Value<int> v);
void report_daemon_flags(parex::Value<int> current, parex::Value<int> created);
void flood_pipe_then_exit(parex::Connection tx, parex::Event sent, int megabytes);
}  // namespace mp_test

namespace mp_test {
// Issue 21's process odds.
void report_authkey_and_parent(parex::Array<char> key_out, parex::Value<int> parent_alive,
                               parex::Value<int> join_timed_out);
void wait_for_sigint(parex::Event ready);
}  // namespace mp_test

namespace mp_test {
void produce_range_then_cancel(parex::Queue<int> q, int from, int to);
}  // namespace mp_test
