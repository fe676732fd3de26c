// Semaphore, BoundedSemaphore, Event (see include/parex/mp/synchronize.hpp).
//
// Each waits on a process-shared futex word with a waiters count beside it: a release or
// a set that finds no waiter makes no system call. The Dekker pair (the waker changes the
// word, then reads waiters; a waiter bumps waiters, then sleeps only while the word is
// unchanged, checked by the kernel) loses no wake-up.
#include <parex/mp/synchronize.hpp>

#include <ostream>

#include <parex/errors.hpp>

#include "sync/futex.hpp"

#include <atomic>
#include <new>
#include <string>

namespace parex {
namespace detail {

namespace {
constexpr std::uint32_t semaphore_tag = 0x53454d31;  // "SEM1"
constexpr std::uint32_t bounded_semaphore_tag = 0x42534d31;  // "BSM1"
constexpr std::uint32_t max_count = 0x7fffffff;
constexpr std::uint32_t event_tag = 0x45564e31;      // "EVN1"

// Waits while word == expected, counting itself in `waiters`. False once the deadline passed.
bool wait_on(std::atomic<std::uint32_t>& word, std::atomic<std::uint32_t>& waiters, std::uint32_t expected,
             const std::optional<Clock::time_point>& deadline) {
  if (passed(deadline)) return false;
  waiters.fetch_add(1, std::memory_order_seq_cst);
  futex_wait(word, expected, deadline ? &*deadline : nullptr, FutexScope::shared);
  waiters.fetch_sub(1, std::memory_order_seq_cst);
  return true;
}

template <class Cell>
Cell* checked_cell(const std::shared_ptr<Segment>& s, std::uint32_t tag, const char* name) {
  auto* c = reinterpret_cast<Cell*>(s->data());
  if (c->tag != tag) throw SharedObjectError(std::string("this handle does not refer to a ") + name);
  return c;
}
}  // namespace

struct SemaphoreCell {
  std::uint32_t tag;
  std::uint32_t bound;  // the initial value (BoundedSemaphore) or max_count
  alignas(64) std::atomic<std::uint32_t> value;
  std::atomic<std::uint32_t> waiters;
};

SemaphoreHandle::SemaphoreHandle(unsigned value, bool bounded) {
  if (value > max_count) throw ValueError("a semaphore's value must be below 2^31");
  segment_ = Segment::create(sizeof(SemaphoreCell), "semaphore");
  cell_ = new (segment_->data())
      SemaphoreCell{bounded ? bounded_semaphore_tag : semaphore_tag, bounded ? value : max_count, {value}, {0}};
}

SemaphoreHandle::SemaphoreHandle(Reader& r, bool bounded) {
  std::uint64_t offset = 0;
  segment_ = decode_handle(r, offset, sizeof(SemaphoreCell));
  const char* name = bounded ? "BoundedSemaphore" : "Semaphore";
  if (offset != 0) throw SharedObjectError(std::string("this handle does not refer to a ") + name);
  cell_ = checked_cell<SemaphoreCell>(segment_, bounded ? bounded_semaphore_tag : semaphore_tag, name);
}

bool SemaphoreHandle::acquire() { return acquire_for(no_timeout); }

bool SemaphoreHandle::acquire_for(std::chrono::nanoseconds timeout) {
  const auto deadline = deadline_of(timeout);
  for (;;) {
    std::uint32_t v = cell_->value.load(std::memory_order_relaxed);
    while (v != 0)
      if (cell_->value.compare_exchange_weak(v, v - 1, std::memory_order_acquire)) return true;
    if (!wait_on(cell_->value, cell_->waiters, 0, deadline)) return false;
  }
}

void SemaphoreHandle::release(unsigned n) {
  if (n == 0) return;
  std::uint32_t v = cell_->value.load(std::memory_order_relaxed);
  do {
    if (v > cell_->bound || n > cell_->bound - v)
      throw ValueError(cell_->tag == bounded_semaphore_tag
                           ? "BoundedSemaphore released too many times (past its initial value " +
                                 std::to_string(cell_->bound) + ")"
                           : std::string("Semaphore released past 2^31 - 1"));
  } while (!cell_->value.compare_exchange_weak(v, v + n, std::memory_order_seq_cst));
  if (cell_->waiters.load(std::memory_order_seq_cst) != 0)
    futex_wake(cell_->value, static_cast<int>(std::min<unsigned>(n, 1u << 30)), FutexScope::shared);
}

unsigned SemaphoreHandle::get_value() const noexcept { return cell_->value.load(std::memory_order_relaxed); }

}  // namespace detail

// `generation` counts set() calls: a waiter sleeps on it, so that set(); clear(); still
// wakes every waiter of the moment (a flag alone would look unchanged to them).
struct Event::Cell {
  std::uint32_t tag;
  alignas(64) std::atomic<std::uint32_t> flag;
  std::atomic<std::uint32_t> generation;
  std::atomic<std::uint32_t> waiters;
};

Event::Event()
    : segment_(detail::Segment::create(sizeof(Cell), "event")),
      cell_(new (segment_->data()) Cell{event_tag(), {0}, {0}, {0}}) {}

Event::Event(std::shared_ptr<detail::Segment> s) noexcept : segment_(std::move(s)) {}

Event Event::decode_from(detail::Reader& r) {
  std::uint64_t offset = 0;
  Event e(detail::decode_handle(r, offset, sizeof(Cell)));
  if (offset != 0) throw SharedObjectError("this handle does not refer to an Event");
  e.cell_ = detail::checked_cell<Cell>(e.segment_, event_tag(), "Event");
  return e;
}

std::uint32_t Event::event_tag() noexcept { return detail::event_tag; }

void Event::set() noexcept {
  cell_->flag.store(1, std::memory_order_seq_cst);
  cell_->generation.fetch_add(1, std::memory_order_seq_cst);
  if (cell_->waiters.load(std::memory_order_seq_cst) != 0)
    detail::futex_wake_all(cell_->generation, detail::FutexScope::shared);
}

void Event::clear() noexcept { cell_->flag.store(0, std::memory_order_seq_cst); }

bool Event::is_set() const noexcept { return cell_->flag.load(std::memory_order_acquire) != 0; }

std::ostream& operator<<(std::ostream& os, const Event& e) { return os << (e.is_set() ? "<Event(set)>" : "<Event(unset)>"); }

bool Event::wait() { return wait_for(detail::no_timeout); }

bool Event::wait_for(std::chrono::nanoseconds timeout) {
  const auto deadline = detail::deadline_of(timeout);
  const std::uint32_t seen = cell_->generation.load(std::memory_order_seq_cst);
  while (!is_set()) {
    if (!detail::wait_on(cell_->generation, cell_->waiters, seen, deadline))
      return is_set();
    if (cell_->generation.load(std::memory_order_seq_cst) != seen) return true;  // set, maybe cleared since
  }
  return true;
}

}  // namespace parex
