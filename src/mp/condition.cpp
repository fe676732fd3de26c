// Condition and Barrier (see include/parex/mp/condition.hpp).
//
// Condition: a sequence word that notify() bumps under the lock; a waiter reads it under
// the lock, lets the lock go, and sleeps while it is unchanged. Barrier: threading.Barrier
// over a robust mutex and a generation word; a generation ends either released (the last
// party arrived) or broken (abort, reset, a timeout, a failed action).
#include <parex/mp/condition.hpp>

#include "mp/robust_mutex.hpp"
#include "sync/futex.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <pthread.h>
#include <string>

namespace parex {

namespace {
constexpr std::uint32_t condition_tag = 0x434f4e44;  // "COND"
constexpr std::uint32_t barrier_tag = 0x42415231;    // "BAR1"
using Clock = std::chrono::steady_clock;
}  // namespace

// ---- Condition --------------------------------------------------------------------------

struct Condition::Cell {
  std::uint32_t tag;
  alignas(64) std::atomic<std::uint32_t> seq;
  std::atomic<std::uint32_t> waiters;
};

Condition::Condition() : Condition(RLock()) {}
Condition::Condition(Lock lock)
    : Condition(detail::Segment::create(sizeof(Cell), "condition"), static_cast<detail::LockHandle&&>(lock)) {
  new (segment_->data()) Cell{condition_tag, {0}, {0}};
}
Condition::Condition(RLock lock)
    : Condition(detail::Segment::create(sizeof(Cell), "condition"), static_cast<detail::LockHandle&&>(lock)) {
  new (segment_->data()) Cell{condition_tag, {0}, {0}};
}
Condition::Condition(std::shared_ptr<detail::Segment> s, detail::LockHandle lock)
    : segment_(std::move(s)), cell_(reinterpret_cast<Cell*>(segment_->data())), lock_(std::move(lock)) {}

bool Condition::wait_ns(std::chrono::nanoseconds timeout) {
  const std::uint32_t seen = cell_->seq.load(std::memory_order_seq_cst);
  const unsigned depth = lock_.release_all();  // ValueError if not held
  const bool bounded = timeout != detail::no_timeout;
  const auto until = bounded ? Clock::now() + timeout : Clock::time_point::max();
  cell_->waiters.fetch_add(1, std::memory_order_seq_cst);
  bool notified = true;
  while (cell_->seq.load(std::memory_order_seq_cst) == seen) {
    if (bounded && Clock::now() >= until) {
      notified = false;
      break;
    }
    detail::futex_wait(cell_->seq, seen, bounded ? &until : nullptr, detail::FutexScope::shared);
  }
  cell_->waiters.fetch_sub(1, std::memory_order_seq_cst);
  lock_.reacquire(depth);
  return notified;
}

void Condition::notify(unsigned n) noexcept {
  if (n == 0) return;
  cell_->seq.fetch_add(1, std::memory_order_seq_cst);
  if (cell_->waiters.load(std::memory_order_seq_cst) != 0)
    detail::futex_wake(cell_->seq, static_cast<int>(std::min<unsigned>(n, 1u << 30)), detail::FutexScope::shared);
}

void Condition::notify_all() noexcept {
  cell_->seq.fetch_add(1, std::memory_order_seq_cst);
  if (cell_->waiters.load(std::memory_order_seq_cst) != 0)
    detail::futex_wake_all(cell_->seq, detail::FutexScope::shared);
}

void Condition::encode_to(detail::Writer& w) const {
  detail::encode_handle(w, segment_, 0);
  lock_.encode_to(w);
}

Condition Condition::decode_from(detail::Reader& r) {
  std::uint64_t offset = 0;
  auto s = detail::decode_handle(r, offset, sizeof(Cell));
  if (offset != 0 || reinterpret_cast<Cell*>(s->data())->tag != condition_tag)
    throw SharedObjectError("this handle does not refer to a Condition");
  return Condition(std::move(s), detail::LockHandle::decode_either(r));
}

// ---- Barrier ----------------------------------------------------------------------------

struct Barrier::Cell {
  pthread_mutex_t mutex;
  std::uint32_t tag;
  std::uint32_t parties;
  std::int64_t timeout_ns;     // the default for wait(); -1: none
  std::uint32_t action_id;     // registered function id + 1; 0: none
  std::uint64_t digest;        // the registry's, where the action id means something
  std::uint32_t count;         // arrived in this generation
  std::uint32_t broken;        // aborted or broken, until reset()
  std::uint64_t broken_ends;   // bit g % 64: generation g ended broken (else released)
  alignas(64) std::atomic<std::uint32_t> generation;
  std::atomic<std::uint32_t> waiters;
};

namespace {
using Held = detail::RobustHeld;

void end_generation(Barrier::Cell& c, bool broken) {
  const std::uint64_t bit = std::uint64_t{1} << (c.generation.load(std::memory_order_relaxed) % 64);
  c.broken_ends = broken ? c.broken_ends | bit : c.broken_ends & ~bit;
  c.count = 0;
  c.generation.fetch_add(1, std::memory_order_seq_cst);
  if (c.waiters.load(std::memory_order_seq_cst) != 0)
    detail::futex_wake_all(c.generation, detail::FutexScope::shared);
}

// Ends the current generation broken: its waiters get BrokenBarrierError.
void end_broken(Barrier::Cell& c) { end_generation(c, true); }

void break_barrier(Barrier::Cell& c) {
  c.broken = 1;
  end_broken(c);
}
}  // namespace

Barrier::Barrier(unsigned parties, void (*action)(), std::chrono::nanoseconds timeout) {
  if (parties == 0) throw ValueError("a Barrier needs at least one party");
  std::uint32_t action_id = 0;
  if (action) action_id = detail::lookup_function(action).id + 1;  // UnregisteredFunction
  segment_ = detail::Segment::create(sizeof(Cell), "barrier");
  cell_ = new (segment_->data()) Cell{};
  detail::init_robust_mutex(cell_->mutex, PTHREAD_MUTEX_NORMAL, "a Barrier's lock");
  cell_->tag = barrier_tag;
  cell_->parties = parties;
  cell_->timeout_ns = timeout == detail::no_timeout ? -1 : timeout.count();
  cell_->action_id = action_id;
  cell_->digest = detail::Registry::global().digest();
}

Barrier::Barrier(std::shared_ptr<detail::Segment> s) : segment_(std::move(s)), cell_(reinterpret_cast<Cell*>(segment_->data())) {}

Barrier Barrier::decode_from(detail::Reader& r) {
  std::uint64_t offset = 0;
  auto s = detail::decode_handle(r, offset, sizeof(Cell));
  if (offset != 0 || reinterpret_cast<Cell*>(s->data())->tag != barrier_tag)
    throw SharedObjectError("this handle does not refer to a Barrier");
  return Barrier(std::move(s));
}

std::chrono::nanoseconds Barrier::default_timeout() const noexcept {
  return cell_->timeout_ns < 0 ? detail::no_timeout : std::chrono::nanoseconds(cell_->timeout_ns);
}

unsigned Barrier::wait_ns(std::chrono::nanoseconds timeout) {
  Cell& c = *cell_;
  Held held(c.mutex);
  // A party that died holding the lock (in the action, say) left the generation half
  // done: break it rather than let the others wait for a release that cannot come.
  if (held.took_over()) break_barrier(c);
  if (c.broken) throw BrokenBarrierError();
  const unsigned index = c.count++;
  if (c.count == c.parties) {
    if (c.action_id != 0) {
      const detail::FunctionEntry* fn = nullptr;
      if (c.digest == detail::Registry::global().digest()) fn = detail::Registry::global().by_id(c.action_id - 1);
      std::exception_ptr failure;
      if (!fn) {
        failure = std::make_exception_ptr(Error("parex: the Barrier's action is not registered in this program"));
      } else {
        detail::Reader none(std::span<const std::byte>{});
        detail::Buffer out;
        fn->invoke(*fn, none, out);
        detail::Reader rd(out.bytes());
        detail::OutcomeView o = detail::read_outcome(rd);
        if (o.status != detail::OutcomeStatus::ok) {
          o.body.get_byte();  // the stage
          failure = detail::decode_exception(o.body);
        }
      }
      if (failure) {
        break_barrier(c);
        std::rethrow_exception(failure);
      }
    }
    end_generation(c, false);
    return index;
  }
  const std::uint32_t gen = c.generation.load(std::memory_order_relaxed);
  const bool bounded = timeout != detail::no_timeout;
  const auto until = bounded ? Clock::now() + timeout : Clock::time_point::max();
  while (c.generation.load(std::memory_order_seq_cst) == gen) {
    if (bounded && Clock::now() >= until) {
      break_barrier(c);  // a timeout breaks it for everyone, as in Python
      throw BrokenBarrierError("parex: a Barrier's wait timed out (the barrier is now broken)");
    }
    held.unlock();
    c.waiters.fetch_add(1, std::memory_order_seq_cst);
    detail::futex_wait(c.generation, gen, bounded ? &until : nullptr, detail::FutexScope::shared);
    c.waiters.fetch_sub(1, std::memory_order_seq_cst);
    held.lock();
    if (held.took_over() && c.generation.load(std::memory_order_relaxed) == gen) break_barrier(c);
  }
  if (c.broken_ends >> (gen % 64) & 1) throw BrokenBarrierError();
  return index;
}

void Barrier::abort() {
  Held held(cell_->mutex);
  break_barrier(*cell_);
}

void Barrier::reset() {
  Held held(cell_->mutex);
  if (cell_->count > 0) end_broken(*cell_);
  cell_->broken = 0;
}

unsigned Barrier::parties() const noexcept { return cell_->parties; }

unsigned Barrier::n_waiting() const {
  Held held(cell_->mutex);
  return cell_->broken ? 0 : cell_->count;
}

bool Barrier::broken() const {
  Held held(cell_->mutex);
  return cell_->broken != 0;
}

}  // namespace parex
