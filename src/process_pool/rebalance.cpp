// Taking back calls a worker holds but has not started, for a worker that idles (see
// impl.hpp; the claim protocol is remote/take_back.hpp's, on the worker's shared page).
//
// The dispatcher hands a worker more than one call only while they are estimated tiny
// (remote/batching.hpp), so this is the net under a wrong estimate: a function that was
// fast and now is not, or one slow item among fast ones. When nothing is pending and a
// worker idles, every worker holding calls behind the one it runs is looked at; one whose
// claim word has not moved for stall_after, while it runs (has claimed) the first call it
// holds, is stalled on a long call, and the calls it has not claimed go back to the front of pending, in order, for the idle workers. A worker
// whose claim moves is working through its batch and keeps it: taking back tiny calls
// would cost more round trips than it saves. So a wrong estimate costs at most
// stall_after plus a round trip of waiting, never a whole slow call's.
//
// Why not at once: a worker between two calls of a batch has not claimed the next one
// yet, and one observation cannot tell it from a stalled worker. Why a timer: the idle
// worker has nothing left to report, so no frame would bring the reactor back.
#include "process_pool/impl.hpp"
#include "remote/take_back.hpp"

namespace parex {

using detail::stall_after;

bool ProcessPoolExecutor::Impl::has_idle_worker() const {
  for (const WorkerPtr& w : workers)
    if (can_take(*w) && w->outstanding.empty()) return true;
  return false;
}

void ProcessPoolExecutor::Impl::rebalance() {
  if (!pending.empty() || !has_idle_worker()) return;
  const auto now = Clock::now();
  auto next = Clock::time_point::max();
  bool took = false;
  for (const WorkerPtr& wp : workers) {
    WorkerProcess& v = *wp;
    // Something behind a running call (a lone call is about to start, or runs), and a
    // frame fully written (its spliced arguments must stay alive until the worker has
    // read them, see send_calls).
    if (v.outstanding.size() < 2 || v.writing || !v.page || v.phase == WorkerProcess::Phase::dead ||
        v.stopped_for_call)
      continue;
    const std::uint64_t claim = v.page->claim.load(std::memory_order_acquire);
    if (claim & detail::claim_fence || claim >= v.sent) continue;  // a take-back under way, or all claimed
    if (claim <= v.outstanding.front()->first_item) {
      // Its first call not claimed yet: between calls, not stalled (a claim word that has
      // not moved since an old look means nothing). Looked at again soon.
      next = std::min(next, now + stall_after);
      continue;
    }
    if (claim != v.claim_seen) {
      v.claim_seen = claim;
      v.claim_seen_at = now;
    }
    if (now - v.claim_seen_at < stall_after) {
      next = std::min(next, v.claim_seen_at + stall_after);
      continue;
    }
    if (!take_back(v, claim)) continue;
    took = true;
    const RemoteCall& running = *v.outstanding.front();  // running since before claim_seen_at at least
    costs.raise_to(running.fn->id, std::chrono::duration<double, std::nano>(now - v.claim_seen_at).count() /
                                       (running.count - running.done));
  }
  if (took) distribute();
  if (next != Clock::time_point::max()) arm_rebalance(next);
}

// Takes back the calls of v from item `claim` on, if v has not claimed them meanwhile.
bool ProcessPoolExecutor::Impl::take_back(WorkerProcess& v, std::uint64_t claim) {
  auto first = v.outstanding.end();
  while (first != v.outstanding.begin() && (*std::prev(first))->first_item >= claim) --first;
  // Claims move by whole calls: `claim` is where one of them starts.
  if (first == v.outstanding.end() || (*first)->first_item != claim) return false;
  if (!detail::raise_fence(v.page->claim, v.page->revoke_to, claim, v.sent))
    return false;  // it claimed the next call just now: it is moving
  // Back to the front of pending, in order; for v as if never sent.
  for (auto it = v.outstanding.end(); it != first;) {
    RemoteCall* c = *--it;
    v.load.discharge(c->charge_ns);
    pending.push_front(c);
    if (v.calls_sent) --v.calls_sent;  // max_tasks_per_child counts what it runs
  }
  v.outstanding.erase(first, v.outstanding.end());
  v.sent = claim;
  v.stalled = true;  // nothing more for it until it answers (it holds the call it runs)
  return true;
}

void ProcessPoolExecutor::Impl::arm_rebalance(Clock::time_point at) {
  if (at >= rebalance_at) return;  // armed for sooner
  rebalance_at = at;
  rebalance_timer.expires_at(at);
  rebalance_timer.async_wait([this](const boost::system::error_code& e) {
    if (e) return;  // re-armed for sooner (its own handler runs for that), or the pool ends
    rebalance_at = Clock::time_point::max();
    guarded([&] { pump(); });
  });
}

}  // namespace parex
