// mpi/engine.hpp - rank 0's side of an MPI job: one progress thread that owns every MPI
// call and serves every MpiExecutor of the process (they share the worker ranks).
//
//  submit (any thread)                 progress thread ("parex-mpi")
//  ───────────────────                 ────────────────────────────────────────────────────
//  RemoteCall ──▶ the executor's  ──▶  pending (per executor) ──▶ pump(): for each ready rank
//  lock-free inbox (a wake-up only     with room, one calls frame (the process pool's records;
//  when the engine sleeps)             big arguments spliced, not copied) ── MPI_Isend ──▶ rank
//                                                                                        │
//  future ◀── complete ◀── results frame from the rank: outcomes in send order ◀─ MPI_Isend
//
// Invariants:
//  - Only the progress thread touches ranks, pending lists and RemoteCalls that left an
//    inbox, and makes MPI calls (between MPI_Init and MPI_Finalize, which the main thread
//    makes: MPI_THREAD_SERIALIZED is enough).
//  - A rank runs its calls in order: outcome k of a rank belongs to the k-th item sent to it.
//  - A rank gets work as remote/batching.hpp says, from estimates per function: tiny calls
//    go in big frames, slow ones one at a time, and the rest stay cancellable here. With
//    nothing pending and a rank idle, calls held behind a stalled rank's running call are
//    taken back (rebalance.cpp, remote/take_back.hpp).
//  - Idle (nothing pending, nothing at any rank), the thread sleeps on a futex; otherwise
//    it polls MPI with a back-off (transport.hpp: MPI cannot wait on two things at once).
#pragma once

#include <parex/detail/remote/remote_call.hpp>
#include <parex/detail/wire/buffer.hpp>

#include "mpi/transport.hpp"
#include "remote/batching.hpp"
#include "sync/inbox.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace parex::detail::mpi {

using Clock = std::chrono::steady_clock;

/// One MpiExecutor's share of the engine.
struct Client {
  Client(std::size_t ranks, std::chrono::milliseconds watchdog) : ranks(ranks), watchdog(watchdog) {}
  Inbox<RemoteCall> inbox;  // submitters push, the engine takes
  const std::size_t ranks;  // runs on ranks 1..ranks
  const std::chrono::milliseconds watchdog;

  // Progress thread only.
  std::deque<RemoteCall*> pending;
  std::size_t held = 0;  // calls pending here or outstanding at a rank
  bool closed = false;
  /// Appends a chain from the inbox (oldest first) to pending; false if it was empty.
  bool take(RemoteCall* chain) noexcept {
    const bool any = chain != nullptr;
    for (RemoteCall* x = chain; x;) {
      RemoteCall* next = x->next;
      pending.push_back(x);
      ++held;
      x = next;
    }
    return any;
  }
  /// A call of this executor left the engine (finished, dropped or failed).
  void release() noexcept { --held; }

  // Set by the progress thread once closed and nothing is held; shutdown(wait) waits.
  std::mutex mutex;
  std::condition_variable cv;
  bool finished = false;
};

class Engine {
 public:
  /// The engine, started on first use (rank 0 only, after MPI_Init).
  static Engine& get();
  /// At exit, before MPI_Finalize: finishes what is held, then stops the thread; get()
  /// throws from then on. Returns false if a rank was lost (it may never finalize) or the
  /// thread could not be stopped.
  static bool stop_if_started();

  int world_size() const noexcept { return static_cast<int>(ranks_.size()); }
  void attach(const std::shared_ptr<Client>& c);
  /// Hands a call to the engine. @throws InvalidStateError once c is closed.
  void submit(Client& c, RemoteCall* call);
  /// Closes c: no more calls; cancel_futures cancels those not sent. The engine sets
  /// c.finished once the rest have completed.
  void close(const std::shared_ptr<Client>& c, bool cancel_futures);
  /// True in the progress thread (where done callbacks run).
  bool on_progress_thread() const noexcept { return std::this_thread::get_id() == thread_.get_id(); }
  /// Items per chunk of a map of `fn` without a chunksize (any thread).
  std::size_t chunk_for(const FunctionEntry& fn) const noexcept { return costs_.chunk_for(fn.id); }

 private:
  struct Sent {
    OutgoingFrame frame;
    std::uint64_t first_item = 0;  // the rank's item count before this frame
  };
  struct Rank {
    int id = 0;
    bool ready = false;  // its hello arrived and matched
    bool lost = false;   // gets no more work (watchdog, a bad frame, a different program)
    std::deque<std::pair<RemoteCall*, Client*>> outstanding;
    std::uint64_t sent = 0, received = 0;  // items
    Load load;  // what it holds, in estimated work (remote/batching.hpp)
    // Taking back what it holds unclaimed (rebalance.cpp): when it last answered (or got
    // work while holding none); a request in flight; stalled once work was taken back
    // from it, until it answers again.
    Clock::time_point progress_at{};
    bool revoking = false;
    bool stalled = false;
    std::uint64_t revoke_to = 0;  // the request's bytes, alive until it is sent
    bmpi::request revoke_request;
    std::deque<Sent> sending;  // frames whose sends may not have completed
    Clock::time_point heard{};  // last message, or when it last got work while holding none
  };
  struct Command {
    std::shared_ptr<Client> client;
    bool attach = false;
    bool cancel_futures = false;
    RemoteCall* rest = nullptr;  // close: what was left in the inbox
  };

  explicit Engine(const bmpi::communicator& world);
  void run();
  bool take_commands();
  bool drain_inboxes();
  bool receive(bool& drained);
  void on_frame(Rank& r, const Frame& f);
  void deliver(Rank& r, Reader& in, std::uint32_t n, FrameMix* mix = nullptr);
  bool pump();
  bool rebalance(Clock::time_point now);
  void on_revoked(Rank& r);
  bool send_calls(Rank& r);
  RemoteCall* next_call(Rank& r, Client*& owner, bool take = true);
  bool has_room(Rank& r);
  void reap_sends(Rank& r, std::uint64_t through);
  void check_watchdogs(Clock::time_point now);
  void lose(Rank& r, const std::string& why);
  void fail_stranded();
  void finish_clients();
  bool idle() const noexcept;
  void sleep();
  void wake() noexcept;

  const bmpi::communicator& world_;
  CostTable costs_;  // per function: what its calls take (read by any thread: chunk_for)
  std::vector<Rank> ranks_;  // index = MPI rank; [0] unused
  std::vector<std::shared_ptr<Client>> clients_;  // progress thread only
  std::size_t next_client_ = 0;
  Buffer in_;  // the last frame received
  std::vector<Buffer> graveyard_;  // arguments a lost rank's unfinished sends may still read
  Clock::time_point next_watchdog_check_{};
  bool lost_any_ = false;
  bool stop_seen_ = false;  // stopping_, as the progress thread last read it
  Clock::time_point last_loop_{};      // the previous loop's clock
  Clock::time_point polling_since_{};  // since when it polls without a gap (handshake timing)

  std::mutex mutex_;  // guards commands_, stopping_
  std::vector<Command> commands_;
  bool stopping_ = false;
  std::atomic<bool> has_commands_{false};
  std::atomic<std::uint32_t> wake_seq_{0};
  std::atomic<bool> sleeping_{false};
  std::thread thread_;
};

}  // namespace parex::detail::mpi
