// Executor::stats of an MpiExecutor: read on the progress thread (a posted task, or at
// once from a done callback there), from counts it keeps per executor and rank.
//
// A call is done once its future is: delivered, failed with its rank, interrupted, or
// past its deadline (its outcome, when it comes, is not counted again). A rank's busy
// time is what the rank measured running calls (the results frames' busy_us), shared
// among the executors whose outcomes a frame carried by their items. A worker's pid is
// 0: a rank may live on another host; its rank number says which it is.
#include "mpi/engine.hpp"

#include <parex/errors.hpp>

#include <cmath>

namespace parex::detail::mpi {

namespace {
// The longest stats() waits for the progress thread (a done callback that blocks holds it up).
constexpr auto max_stats_wait = std::chrono::seconds(60);
}  // namespace

void Engine::count_frame_busy(Rank& r, std::uint64_t busy_us) {
  const auto i = static_cast<std::size_t>(r.id);
  std::uint64_t total = 0;
  for (const auto& c : clients_)
    if (i <= c->ranks) total += c->tally[i].frame_items;
  if (!total) return;
  for (const auto& c : clients_) {
    if (i > c->ranks) continue;
    Client::Tally& t = c->tally[i];
    if (!t.frame_items) continue;
    t.busy_ns += static_cast<double>(busy_us) * 1000.0 * t.frame_items / static_cast<double>(total);
    t.frame_items = 0;
  }
}

ExecutorStats Engine::snapshot(const Client& c) const {
  ExecutorStats s;
  s.queued = c.pending.size() + c.in_inbox.load(std::memory_order_relaxed);
  s.done = c.other_done;
  s.failed = c.other_failed;
  for (std::size_t i = 1; i <= c.ranks && i < ranks_.size(); ++i) {
    const Rank& r = ranks_[i];
    for (const auto& [x, owner] : r.outstanding)
      if (owner == &c && !x->internal && !x->expired) ++s.running;
    const Client::Tally& t = c.tally[i];
    s.done += t.calls;
    s.failed += t.failed;
    if (!r.lost)
      s.workers.push_back(
          {0, t.calls, t.failed, std::chrono::nanoseconds(std::llround(t.busy_ns)), static_cast<int>(i)});
  }
  return s;
}

ExecutorStats Engine::stats(const std::shared_ptr<Client>& c) {
  if (on_progress_thread()) return snapshot(*c);
  auto asked = std::make_shared<std::promise<ExecutorStats>>();
  auto answer = asked->get_future();
  if (!post([this, c, asked] {
        try {
          asked->set_value(snapshot(*c));
        } catch (...) {  // no memory for the figures: the asker gets the error
          asked->set_exception(std::current_exception());
        }
      }))
    return snapshot(*c);  // the thread has ended: nothing changes any more
  if (answer.wait_for(max_stats_wait) != std::future_status::ready)
    throw TimeoutError("MpiExecutor::stats: the MPI progress thread did not answer within 60 s (a done callback "
                       "that blocks holds it up)");
  return answer.get();
}

}  // namespace parex::detail::mpi
