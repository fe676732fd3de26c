// The byte queue's counts, a JoinableQueue's task_done()/join() and who owes what, and
// shutdown (see include/parex/mp/queues.hpp and mp/queue_state.hpp; put and get are in
// queue.cpp).
#include <parex/mp/queues.hpp>

#include "mp/queue_state.hpp"

#include <algorithm>

namespace parex::detail {

using namespace queue;

namespace queue {
void owe(QueueState& s, int delta) {
  if (!s.joinable) return;
  const std::int32_t me = ::getpid();
  QueueState::Owed* free_slot = nullptr;
  for (auto& o : s.owed) {
    if (o.count != 0 && o.pid == me) {
      o.count = static_cast<std::uint32_t>(static_cast<std::int64_t>(o.count) + delta);
      return;
    }
    if (o.count == 0 && !free_slot) free_slot = &o;
  }
  if (delta > 0 && free_slot) *free_slot = {me, 1};
}
}  // namespace queue

namespace {
// One task_done() (get_mutex held): from this process's count if it owes any; else it is
// made on another process's behalf (which one cannot be known), and counts as a credit
// against the counts of dead consumers: join() then blames a dead consumer only for what
// the credits do not cover, and never a process that owes nothing.
void settle(QueueState& s) {
  const std::int32_t me = ::getpid();
  for (auto& o : s.owed)
    if (o.count != 0 && o.pid == me) {
      --o.count;
      return;
    }
  ++s.credits;
}

// A consumer that died owing task_done() calls that no credit covers (get_mutex held):
// join() would wait for it for ever.
std::optional<QueueState::Owed> dead_consumer(QueueState& s) {
  std::uint64_t dead_owe = 0;
  std::optional<QueueState::Owed> first;
  for (auto& o : s.owed)
    if (o.count != 0 && !process_alive(o.pid)) {
      dead_owe += o.count;
      if (!first) first = o;
    }
  if (!first || dead_owe <= s.credits) return std::nullopt;
  first->count = static_cast<std::uint32_t>(std::min<std::uint64_t>(first->count, dead_owe - s.credits));
  return first;
}
bool anyone_owes(const QueueState& s) {
  for (auto& o : s.owed)
    if (o.count != 0) return true;
  return false;
}
}  // namespace

std::size_t QueueCore::qsize() const {
  check_open();
  // A snapshot: gets, then puts, then gets again. If no getter moved in between, the count
  // was exactly puts - gets when puts was read (gets only grows). Under heavy getting,
  // the getters' mutex holds it still.
  QueueState& s = *state_;
  for (int i = 0; i < 64; ++i) {
    const std::uint64_t gets = s.gets.load(std::memory_order_acquire);
    const std::uint64_t puts = s.puts.load(std::memory_order_acquire);
    if (s.gets.load(std::memory_order_acquire) == gets) return puts - gets;
  }
  Held held(s.get_mutex);
  return s.puts.load(std::memory_order_acquire) - s.gets.load(std::memory_order_relaxed);
}
std::size_t QueueCore::maxsize() const noexcept { return state_->maxsize; }
std::size_t QueueCore::capacity() const noexcept { return state_->capacity; }

void QueueCore::count_unfinished() {
  if (state_->joinable) state_->unfinished.fetch_add(1, std::memory_order_acq_rel);
}

void QueueCore::shutdown(bool immediate) {
  QueueState& s = *state_;
  Held put(s.put_mutex), get(s.get_mutex);  // both, in order
  s.shut.store(std::max<std::uint32_t>(s.shut.load(std::memory_order_relaxed), immediate ? shut_down_now : shut_down),
               std::memory_order_release);
  if (immediate) {  // as Python: the items dropped count as done for join()
    const std::uint64_t puts = s.puts.load(std::memory_order_relaxed);
    const std::uint64_t dropped = puts - s.gets.load(std::memory_order_relaxed);
    if (s.joinable) {  // a CAS: another process's put() may count an item meanwhile
      std::uint64_t u = s.unfinished.load(std::memory_order_relaxed);
      while (!s.unfinished.compare_exchange_weak(u, u - std::min(u, dropped), std::memory_order_acq_rel)) {
      }
    }
    s.gets.store(puts, std::memory_order_release);
    const std::uint64_t tail = s.tail.load(std::memory_order_relaxed);
    s.head.store(tail, std::memory_order_release);
  }
  bump(s.data, INT32_MAX);
  bump(s.space, INT32_MAX);
  if (s.unfinished.load(std::memory_order_acquire) == 0) bump(s.done, INT32_MAX);
}

void QueueCore::task_done() {
  QueueState& s = *state_;
  Held held(s.get_mutex);
  if (!finish_one(s)) throw ValueError("task_done() called more times than there were items");
  settle(s);
}

bool QueueCore::join(std::chrono::nanoseconds timeout) {
  QueueState& s = *state_;
  const Deadline deadline = deadline_of(timeout);
  Held held(s.get_mutex);
  for (;;) {
    const Seen seen = look(s, s.done);  // before the count it decides on
    if (s.unfinished.load(std::memory_order_acquire) == 0) break;
    // Only a join() without a timeout gives up on a dead consumer: one with a timeout
    // keeps Python's meaning (false once it ran out).
    if (!deadline)
      if (auto dead = dead_consumer(s)) throw ConsumerDiedError(dead->pid, dead->count);
    if (passed(deadline)) return false;
    sleep_on(held, s.done, s, seen, deadline, !deadline && anyone_owes(s));
  }
  return true;
}

}  // namespace parex::detail
