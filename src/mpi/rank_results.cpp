// A worker rank's results stream (see rank_results.hpp).
#include "mpi/rank_results.hpp"

#include "sync/futex.hpp"

#include <parex/detail/wire/records.hpp>

#include <algorithm>
#include <cstdlib>
#include <new>

namespace parex::detail::mpi {

namespace {
// While a call runs, results that have waited this long behind it are sent by the flusher.
constexpr auto flusher_latency = std::chrono::microseconds(500);
// How often the flusher drives sends that have not completed (see flusher_main).
constexpr auto progress_period = std::chrono::microseconds(20);
constexpr std::size_t initial_bytes = std::size_t{64} << 10;
// A stream that grew past this (one big result) gives its memory back once rewound.
constexpr std::size_t keep_bytes = std::size_t{4} << 20;
}  // namespace

RankResults::RankResults(const bmpi::communicator& comm, std::mutex& mpi) : Writer(&grow), comm_(comm), mpi_(mpi) {
  data_ = static_cast<std::byte*>(std::malloc(initial_bytes));
  if (!data_) throw std::bad_alloc();
  cap_ = initial_bytes;
  flusher_ = std::thread([this] { flusher_main(); });
}

RankResults::~RankResults() {
  stop_flusher();
  std::free(data_);
}

void RankResults::stop_flusher() {
  if (!flusher_.joinable()) return;
  state_.fetch_or(stop_bit, std::memory_order_release);
  futex_wake(state_, 1);
  flusher_.join();
}

void RankResults::commit() noexcept {
  if (!pending()) pending_since_ = Clock::now();  // the first unsent result
  ++committed_items_;
  committed_.store(size_, std::memory_order_release);
}

void RankResults::arm() noexcept {
  if (!pending() || (state_.load(std::memory_order_relaxed) & armed_bit)) return;
  deadline_.store((pending_since_ + flusher_latency).time_since_epoch().count(), std::memory_order_relaxed);
  state_.fetch_or(armed_bit, std::memory_order_release);
  futex_wake(state_, 1);
}

void RankResults::flush() {
  std::lock_guard lock(mutex_);
  send_locked();
}

void RankResults::maybe_rewind() {
  if (size_ == 0 || sent_bytes_.load(std::memory_order_acquire) != size_) return;
  std::lock_guard lock(mutex_);
  if (sent_bytes_.load(std::memory_order_relaxed) != size_ || !sends_done_locked(false)) return;
  size_ = 0;
  committed_.store(0, std::memory_order_release);
  sent_bytes_.store(0, std::memory_order_release);
  if (cap_ > keep_bytes) {
    if (auto* p = static_cast<std::byte*>(std::realloc(data_, initial_bytes))) {
      data_ = p;
      cap_ = initial_bytes;
    }
  }
}

void RankResults::finish() {
  {
    std::lock_guard lock(mutex_);
    send_locked();
    sends_done_locked(true);
  }
  stop_flusher();  // before MPI_Finalize: no thread of this rank may touch MPI after it
}

// Sends [sent, committed) as one results frame. The outcomes are counted by reading them:
// only the byte offset is shared with the main thread (one atomic; a byte count and an
// item count could be read from two different moments).
void RankResults::send_locked() {
  const std::size_t to = committed_.load(std::memory_order_acquire);
  const std::size_t from = sent_bytes_.load(std::memory_order_relaxed);
  if (to == from) return;
  std::uint32_t n = 0;
  for (Reader r({data_ + from, to - from}); !r.empty(); ++n) read_outcome(r);
  const auto us = busy_ns_.exchange(0, std::memory_order_relaxed) / 1000;
  const FrameHeader h = frame_header(FrameKind::results, to - from, n,
                                     static_cast<std::uint32_t>(std::min<std::int64_t>(us, UINT32_MAX)));
  // Posted once in the deque, where it never moves (a header lives inside the Buffer).
  OutgoingFrame& f = in_flight_.emplace_back();
  f.bytes().put_raw(h);
  if (to - from >= splice_threshold) f.splice({data_ + from, to - from});  // sent from the stream
  else f.bytes().put(data_ + from, to - from);
  bool sent;
  {
    std::lock_guard mpi(mpi_);
    f.post(comm_, 0, to_client);
    sent = f.done();
  }
  // Not sent at once (past the eager limit): its transfer needs this rank to call into
  // MPI, and rank 0 may be waiting for it while the main thread runs a long call.
  if (!sent && !(state_.fetch_or(progress_bit, std::memory_order_release) & progress_bit)) futex_wake(state_, 1);
  sent_items_.fetch_add(n, std::memory_order_release);
  sent_bytes_.store(to, std::memory_order_release);
  last_sent_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
}

// Drops completed sends (in order); with wait, waits for all of them. True if none is left.
bool RankResults::sends_done_locked(bool wait) {
  std::lock_guard mpi(mpi_);
  while (!in_flight_.empty()) {
    if (wait) in_flight_.front().wait();
    else if (!in_flight_.front().done()) return false;
    in_flight_.pop_front();
  }
  return true;
}

// Sleeps until there is something to do: a deadline (armed_bit: results wait behind a
// long call) or sends to drive (progress_bit: polled every progress_period until they
// complete, so that rank 0 never waits for this rank's main thread to call into MPI).
void RankResults::flusher_main() {
  for (;;) {
    std::uint32_t s;
    while ((s = state_.load(std::memory_order_acquire)) == 0) futex_wait(state_, 0, nullptr);
    if (s & stop_bit) return;
    auto wake_at = Clock::time_point::max();
    if (s & armed_bit) wake_at = Clock::time_point(Clock::duration(deadline_.load(std::memory_order_relaxed)));
    if (s & progress_bit) wake_at = std::min(wake_at, Clock::now() + progress_period);
    std::this_thread::sleep_until(wake_at);
    s = state_.load(std::memory_order_acquire);
    if (s & stop_bit) return;
    std::lock_guard lock(mutex_);
    if ((s & armed_bit) &&
        Clock::now() >= Clock::time_point(Clock::duration(deadline_.load(std::memory_order_relaxed)))) {
      state_.fetch_and(~armed_bit, std::memory_order_acq_rel);  // before sending: a re-arm from now on counts
      send_locked();
    }
    if (sends_done_locked(false)) state_.fetch_and(~progress_bit, std::memory_order_acq_rel);
  }
}

// The stream moves: every send still reading it must complete first.
void RankResults::grow(Writer& w, std::size_t min_capacity) {
  auto& s = static_cast<RankResults&>(w);
  std::lock_guard lock(s.mutex_);
  s.sends_done_locked(true);
  const std::size_t cap = std::max(min_capacity, s.cap_ * 2);
  auto* p = static_cast<std::byte*>(std::realloc(s.data_, cap));
  if (!p) throw std::bad_alloc();
  s.data_ = p;
  s.cap_ = cap;
}

}  // namespace parex::detail::mpi
