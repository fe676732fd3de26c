// Registered functions of the multiprocessing tests (see mp_functions.hpp).
#include "mp/mp_functions.hpp"

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unistd.h>

namespace mp_test {

void add_under_lock(parex::Value<int> counter, parex::Lock lock, int times) {
  for (int i = 0; i < times; ++i) {
    std::lock_guard g(lock);
    ++counter.value();
  }
}

void add_under_value_lock(parex::Value<int> counter, int times) {
  auto lock = counter.get_lock();
  for (int i = 0; i < times; ++i) {
    std::lock_guard g(lock);
    ++counter.value();
  }
}

void exit_with(int code) { std::exit(code); }

void throw_runtime_error(std::string what) { throw std::runtime_error(what); }

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

void hold_lock_and_sleep(parex::Lock lock, parex::Event held) {
  lock.acquire();
  held.set();
  std::this_thread::sleep_for(std::chrono::seconds(60));
}

void write_squares(parex::Array<int> a, int from, int to) {
  for (int i = from; i < to; ++i) a[static_cast<std::size_t>(i)] = i * i;
}

void fill_shared_memory(std::string name, int byte) {
  parex::SharedMemory shm(name);
  std::memset(shm.buf().data(), byte, shm.size());
}

void inside_semaphore(parex::Semaphore s, parex::Value<int> inside, parex::Value<int> peak) {
  std::lock_guard g(s);
  {
    std::lock_guard l(inside.get_lock());
    const int now = ++inside.value();
    if (now > peak.value()) peak.value() = now;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::lock_guard l(inside.get_lock());
  --inside.value();
}

void set_event_after(parex::Event e, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  e.set();
}

void report_identity(parex::Array<char> name_out, parex::Value<int> parent_pid) {
  const auto me = parex::current_process();
  std::strncpy(name_out.begin(), me.name.c_str(), name_out.size() - 1);
  if (auto p = parex::parent_process()) parent_pid.value() = p->pid;
}

void start_grandchild(bool daemon, parex::Value<int> grandchild_pid, parex::Event started, int grandchild_ms,
                      parex::Value<int> grandchild_done) {
  parex::Process p(sleep_then_set, grandchild_ms, grandchild_done);
  p.daemon = daemon;
  p.start();
  grandchild_pid.value() = p.pid();
  started.set();
}

void sleep_then_set(int ms, parex::Value<int> done) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  done.value() = 1;
}

void start_daemon_then_sleep(parex::Value<int> grandchild_pid, parex::Event started) {
  parex::Process p(sleep_ms, 60000);
  p.daemon = true;
  p.start();
  grandchild_pid.value() = p.pid();
  started.set();
  std::this_thread::sleep_for(std::chrono::seconds(60));
}

int add_in_worker(parex::Value<int> counter, parex::Lock lock) {
  std::lock_guard g(lock);
  return ++counter.value();
}

void produce_range(parex::Queue<int> q, int from, int to) {
  for (int i = from; i < to; ++i) q.put(i);
}

void consume_n(parex::Queue<int> q, parex::Array<int> seen, int n) {
  for (int i = 0; i < n; ++i) {
    const int v = q.get();
    std::lock_guard g(seen.get_lock());
    ++seen[static_cast<std::size_t>(v)];
  }
}

void consume_until_minus_one(parex::Queue<int> q, parex::Array<int> seen) {
  for (;;) {
    const int v = q.get();
    if (v < 0) return;
    // Recorded without a lock: each slot is one item's, and a duplicate would show as 2.
    std::atomic_ref<int>(seen[static_cast<std::size_t>(v)]).fetch_add(1);
  }
}

void join_worker(parex::JoinableQueue<int> q, parex::Value<long> sum) {
  for (;;) {
    const int v = q.get();
    if (v >= 0) {
      std::lock_guard g(sum.get_lock());
      sum.value() += v;
    }
    q.task_done();
    if (v < 0) return;
  }
}

void echo_big(parex::Queue<std::string> in, parex::Queue<std::string> out) { out.put(in.get()); }

std::string mixed_item(int id, int seq) {
  const std::size_t filler = seq % 7 == 0 ? 20000 + static_cast<std::size_t>(seq % 5) * 3000
                                          : static_cast<std::size_t>((seq * 37 + id * 11) % 900);
  return std::to_string(id) + ":" + std::to_string(seq) + ":" + std::string(filler, static_cast<char>('a' + seq % 26));
}

void put_mixed(parex::Queue<std::string> q, int id, int n) {
  for (int i = 0; i < n; ++i) q.put(mixed_item(id, i));
}

void echo_ints(parex::Queue<int> in, parex::Queue<int> out) {
  for (;;) {
    const int v = in.get();
    out.put(v);
    if (v < 0) return;
  }
}

void get_mixed(parex::Queue<std::string> q, parex::Array<int> seen, int n) {
  for (;;) {
    const std::string v = q.get();
    if (v.empty()) return;
    int id = -1, seq = -1;
    std::size_t slot = seen.size() - 1;
    if (std::sscanf(v.c_str(), "%d:%d:", &id, &seq) == 2 && id >= 0 && seq >= 0 && seq < n &&
        static_cast<std::size_t>(id) * n + seq < seen.size() - 1 && v == mixed_item(id, seq))
      slot = static_cast<std::size_t>(id) * n + static_cast<std::size_t>(seq);
    std::atomic_ref<int>(seen[slot]).fetch_add(1);
  }
}

PAREX_REGISTER(produce_range);
PAREX_REGISTER(consume_n);
PAREX_REGISTER(consume_until_minus_one);
PAREX_REGISTER(put_mixed);
PAREX_REGISTER(get_mixed);
PAREX_REGISTER(echo_ints);
PAREX_REGISTER(join_worker);
void acquire_and_return(parex::Lock lock) { lock.acquire(); }  // exits holding it

void pipe_talker(parex::Connection c) {
  // Answers each message with its upper-case copy until "bye".
  for (;;) {
    std::string m = c.recv<std::string>();
    if (m == "bye") return;
    for (auto& ch : m) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    c.send(m);
  }
}

void pipe_sender_then_exit(parex::Connection c, int n) {
  for (int i = 0; i < n; ++i) c.send(i);
}

void pipe_hold_and_sleep(parex::Connection c, parex::Event ready) {
  ready.set();
  std::this_thread::sleep_for(std::chrono::seconds(60));
  c.close();
}

PAREX_REGISTER(pipe_talker);
PAREX_REGISTER(pipe_sender_then_exit);
PAREX_REGISTER(pipe_hold_and_sleep);
void wait_until_ready(parex::Condition cv, parex::Value<int> ready, parex::Value<int> seen) {
  std::unique_lock g(cv);
  cv.wait_for([&] { return ready.value() != 0; });
  ++seen.value();
}

void barrier_party(parex::Barrier b, parex::Array<int> order, parex::Value<long> released_at_ns) {
  const unsigned i = b.wait(std::chrono::seconds(60));
  order[i] = 1;
  std::lock_guard g(released_at_ns.get_lock());
  const long now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::steady_clock::now().time_since_epoch()).count();
  if (released_at_ns.value() == 0 || now > released_at_ns.value()) released_at_ns.value() = now;
}

int action_runs = 0;
void count_action() { ++action_runs; }

PAREX_REGISTER(wait_until_ready);
PAREX_REGISTER(barrier_party);
PAREX_REGISTER(count_action);
void Adder::run() {
  std::lock_guard g(lock);
  total.value() += amount * static_cast<int>(label.size());
}
PAREX_REGISTER_PROCESS(Adder);

void take_lock_from_queue_and_add(parex::Queue<parex::Lock> locks, parex::Value<int> counter, int times) {
  parex::Lock lock = locks.get();  // a handle that travelled through the queue
  add_under_lock(counter, lock, times);
}

void hold_rlock_twice_and_sleep(parex::RLock lock, parex::Event held) {
  lock.acquire();
  lock.acquire();
  held.set();
  std::this_thread::sleep_for(std::chrono::seconds(60));
}

void put_forever(parex::Queue<std::string> q, int id) {
  // Items "<id>:<n>" of growing size, some streamed in chunks, until killed.
  for (int n = 0;; ++n) q.put(std::to_string(id) + ":" + std::to_string(n) + ":" + std::string(n % 50000, 'p'));
}

PAREX_REGISTER(take_lock_from_queue_and_add);
PAREX_REGISTER(hold_rlock_twice_and_sleep);
PAREX_REGISTER(put_forever);
PAREX_REGISTER(echo_big);
PAREX_REGISTER(acquire_and_return);
PAREX_REGISTER(add_under_lock);
PAREX_REGISTER(add_under_value_lock);
PAREX_REGISTER(exit_with);
PAREX_REGISTER(throw_runtime_error);
PAREX_REGISTER(sleep_ms);
PAREX_REGISTER(hold_lock_and_sleep);
PAREX_REGISTER(write_squares);
PAREX_REGISTER(fill_shared_memory);
PAREX_REGISTER(inside_semaphore);
PAREX_REGISTER(set_event_after);
PAREX_REGISTER(report_identity);
PAREX_REGISTER(start_grandchild);
PAREX_REGISTER(sleep_then_set);
PAREX_REGISTER(add_in_worker);
PAREX_REGISTER(start_daemon_then_sleep);

void get_n_and_exit(parex::JoinableQueue<int> q, int n) {
  for (int i = 0; i < n; ++i) q.get();  // and no task_done()
}
void get_n_and_hang(parex::JoinableQueue<int> q, int n, parex::Event got) {
  for (int i = 0; i < n; ++i) q.get();
  got.set();
  std::this_thread::sleep_for(std::chrono::seconds(60));
}
void keep_value(parex::Value<int> v) { ++v.value(); }
void report_daemon_flags(parex::Value<int> current, parex::Value<int> created) {
  current.value() = parex::current_process().daemon ? 1 : 0;
  parex::Process p(sleep_ms, 0);
  created.value() = p.daemon ? 1 : 0;
}
void flood_pipe_then_exit(parex::Connection tx, parex::Event sent, int megabytes) {
  // Past the ring's 4 MiB the messages wait in this process's feeder.
  for (int i = 0; i < megabytes; ++i) tx.send(std::string(1 << 20, 'f'));
  sent.set();
}
PAREX_REGISTER(get_n_and_exit);
PAREX_REGISTER(get_n_and_hang);
PAREX_REGISTER(keep_value);
PAREX_REGISTER(report_daemon_flags);
PAREX_REGISTER(flood_pipe_then_exit);

void report_authkey_and_parent(parex::Array<char> key_out, parex::Value<int> parent_alive,
                               parex::Value<int> join_timed_out) {
  const std::string key = parex::current_process().authkey;
  for (std::size_t i = 0; i < key.size() && i < key_out.size(); ++i) key_out[i] = key[i];
  const auto parent = parex::parent_process();
  parent_alive.value() = parent && parent->is_alive() ? 1 : 0;
  join_timed_out.value() = parent && !parent->join(std::chrono::milliseconds(20)) ? 1 : 0;
}
void wait_for_sigint(parex::Event ready) {
  ready.set();
  std::this_thread::sleep_for(std::chrono::seconds(60));
}
PAREX_REGISTER(report_authkey_and_parent);
PAREX_REGISTER(wait_for_sigint);

void produce_range_then_cancel(parex::Queue<int> q, int from, int to) {
  for (int i = from; i < to; ++i) q.put(i);  // most wait in the feeder: nobody reads
  q.cancel_join_thread();
}
PAREX_REGISTER(produce_range_then_cancel);

}  // namespace mp_test
