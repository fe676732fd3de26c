// The worker loop of ranks 1..N-1: the process pool's worker (worker/run_calls.hpp) over
// MPI messages instead of pipes.
//
//   hello ──▶ rank 0            (protocol, registry digest: another program fails there)
//   loop: calls frame ◀── rank 0
//           run_calls: decode · run · encode each outcome into the results stream; send
//           it (MPI_Isend) when the input has run dry, at flush_bytes, or once its oldest
//           result has waited flush_latency; a flusher thread sends what waits behind a
//           long call
//         stop ◀── rank 0 (at its exit) ──▶ flush, MPI_Finalize, exit(0)
//
// Three threads make MPI calls here, one at a time under mpi_: the loop; the results
// flusher (rank_results.hpp), which sends results that wait behind a long call; and a
// heartbeat thread that, while calls are held, tells rank 0 every heartbeat_interval that
// this rank is alive (rank 0's watchdog takes a silent rank for lost), and answers rank
// 0's requests to take back the calls this rank holds unclaimed (remote/take_back.hpp),
// which it looks for every revoke_poll: the loop runs a long call meanwhile.
#include "mpi/launch.hpp"
#include "mpi/rank_results.hpp"
#include "mpi/transport.hpp"
#include "remote/take_back.hpp"
#include "worker/run_calls.hpp"

#include <parex/errors.hpp>
#include <parex/registry.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

namespace parex::detail::mpi {

namespace {

using Clock = std::chrono::steady_clock;

// A calls frame larger than this is a corrupt length (as for the pipe worker).
constexpr std::uint64_t max_calls_payload = std::uint64_t{1} << 40;
// An idle rank polls for calls with a back-off up to this: the first call after a quiet
// spell waits up to this long; a busy rank never sleeps (its next frame is already there).
constexpr auto max_idle_sleep = std::chrono::microseconds(200);
// While a call runs, rank 0 hears from this rank at least this often.
constexpr auto heartbeat_interval = std::chrono::milliseconds(250);
// How often the heartbeat thread looks for a request to take calls back: while calls are
// held, and (until it sees that they are) while none are. Rank 0 asks only while a worker
// idles, so this is added to that worker's wait. Waking the thread whenever the rank
// starts work instead cost every call a thread wake-up (bench_mpi: round trip 24 -> 38 us).
constexpr auto revoke_poll = std::chrono::milliseconds(1);
constexpr auto idle_poll = std::chrono::milliseconds(10);

class WorkerRank {
 public:
  explicit WorkerRank(const bmpi::communicator& comm) : comm_(comm) {}

  [[noreturn]] void run() {
    heartbeat_ = std::thread([this] { heartbeat_main(); });
    send_hello();
    try {
      for (;;) {
        const bmpi::status st = next_message();
        if (st.tag() == stop) {
          std::lock_guard lock(mpi_);
          discard_message(comm_, st, in_);
          break;
        }
        if (st.tag() == revoke) {
          std::lock_guard lock(mpi_);
          answer_revoke();
          continue;
        }
        Frame f;
        {
          std::lock_guard lock(mpi_);
          f = receive_frame(comm_, st, in_, max_calls_payload);
        }
        if (st.tag() != to_worker || f.kind() != FrameKind::calls) throw ProtocolError("unexpected message");
        working_.store(true, std::memory_order_relaxed);
        Sink sink{*this};
        run_calls(f.payload, sink);
        in_.truncate(0);
        in_.shrink(keep_input_bytes);  // one huge argument must not pin its memory for the rank's life
      }
    } catch (const std::exception& e) {  // rank 0 sent something that is not ours: the job is broken
      std::fprintf(stderr, "parex: MPI worker rank %d: %s\n", comm_.rank(), e.what());
      comm_.abort(3);
    }
    finish();
  }

 private:
  // run_calls's sink: outcomes go into the results stream, flushed as the tunables say.
  struct Sink {
    WorkerRank& w;

    Writer& out() noexcept { return w.results_; }
    bool claim(std::uint64_t items) { return w.gate_.claim(w.claim_, w.revoke_to_, items); }
    bool overhead_due() const noexcept { return false; }
    void begin_call() { w.results_.maybe_rewind(); }
    bool results_waiting() const noexcept { return w.results_.pending(); }
    void item_started() noexcept { w.results_.arm(); }  // results wait: the flusher watches them
    void item_finished() noexcept { w.results_.commit(); }
    bool tick(Clock::time_point now, Clock::duration busy) {
      w.results_.add_busy(busy);
      if (!w.results_.pending() || now - w.results_.pending_since() < flush_latency) return false;
      w.results_.flush();
      return true;
    }
    bool flush_due() const noexcept { return w.results_.unsent_bytes() >= flush_bytes; }
    bool after_item() {
      if (!flush_due()) return false;
      w.results_.flush();
      return true;
    }
    std::span<const std::byte> arena(ArenaRef) const { throw ProtocolError("an MPI worker rank has no argument arena"); }
  };

  void send_hello() {
    OutgoingFrame h;
    const std::size_t at = begin_frame(h.bytes(), FrameKind::hello);
    put_hello(h.bytes(), Registry::global().digest());
    finish_frame(h.bytes(), at, 0);
    std::lock_guard lock(mpi_);
    h.post(comm_, 0, to_client);
    h.wait();
  }

  // The next message from rank 0. When none is there, this is the moment to answer:
  // flush, then poll with a back-off (the MPI mutex is free between polls).
  bmpi::status next_message() {
    Backoff backoff(max_idle_sleep);
    for (bool flushed = false;;) {
      {
        std::lock_guard lock(mpi_);
        if (auto st = comm_.iprobe(0, bmpi::any_tag)) return *st;
      }
      if (!flushed) {
        results_.flush();
        working_.store(false, std::memory_order_relaxed);
        flushed = true;
        continue;
      }
      results_.maybe_rewind();
      backoff.pause();
    }
  }

  // Under mpi_: rank 0 asks to take back what this rank has not claimed of the items it
  // was sent before `to`; the answer names where that starts (`to` itself: nothing).
  void answer_revoke() {
    std::uint64_t to = 0;
    comm_.recv(0, revoke, reinterpret_cast<char*>(&to), static_cast<int>(sizeof to));
    std::uint64_t from = to;
    const std::uint64_t c = claim_.load(std::memory_order_acquire);
    if (!(c & claim_fence) && raise_fence(claim_, revoke_to_, c, to)) from = c;
    comm_.send(0, revoked, reinterpret_cast<const char*>(&from), static_cast<int>(sizeof from));
  }

  void heartbeat_main() {
    std::vector<bmpi::request> sent;
    char nothing = 0;
    Clock::rep last_beat = 0;
    std::unique_lock lock(heartbeat_mutex_);
    for (;;) {
      const bool was_working = working_.load(std::memory_order_relaxed);
      heartbeat_cv_.wait_for(lock, was_working ? revoke_poll : idle_poll, [&] { return stopping_; });
      if (stopping_) break;
      const Clock::rep now = Clock::now().time_since_epoch().count();
      // Rank 0 asks only a rank that has sent no results for stall_after: while results
      // flow, the MPI lock is left to the threads that send them.
      if (working_.load(std::memory_order_relaxed) && Clock::duration(now - results_.last_sent()) >= revoke_poll) {
        std::lock_guard mpi(mpi_);
        if (comm_.iprobe(0, revoke)) answer_revoke();
      }
      const Clock::duration quiet(now - std::max(last_beat, results_.last_sent()));
      if (!working_.load(std::memory_order_relaxed) || quiet < heartbeat_interval) continue;
      std::lock_guard mpi(mpi_);
      std::erase_if(sent, [](bmpi::request& r) { return static_cast<bool>(r.test()); });
      sent.push_back(comm_.isend(0, heartbeat, &nothing, 0));
      last_beat = now;
    }
    std::lock_guard mpi(mpi_);
    for (auto& r : sent) r.wait();
  }

  [[noreturn]] void finish() {
    results_.finish();
    {
      std::lock_guard lock(heartbeat_mutex_);
      stopping_ = true;
    }
    heartbeat_cv_.notify_all();
    heartbeat_.join();
    finalize_and_exit(0);
  }

  const bmpi::communicator& comm_;
  std::mutex mpi_;  // every MPI call of this rank
  Buffer in_;       // the last calls frame; main thread
  RankResults results_{comm_, mpi_};
  std::atomic<bool> working_{false};  // holds calls: the heartbeat thread speaks for it
  // remote/take_back.hpp: the loop claims, the heartbeat thread (or the loop, between
  // frames) raises the fence for rank 0.
  std::atomic<std::uint64_t> claim_{0}, revoke_to_{0};
  ClaimGate gate_;  // main thread
  std::mutex heartbeat_mutex_;
  std::condition_variable heartbeat_cv_;
  bool stopping_ = false;
  std::thread heartbeat_;
};

}  // namespace

void run_worker_rank(const bmpi::communicator& world) {
  // Leaked on purpose: the rank ends in finalize_and_exit, from inside run().
  (new WorkerRank(world))->run();
}

}  // namespace parex::detail::mpi
