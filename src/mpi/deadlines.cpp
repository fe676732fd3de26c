// Deadlines of calls an MpiExecutor runs (CallOptions::timeout, MapOptions::call_timeout).
//
// A rank does not say when a call starts (that would be a message per call): it runs its
// calls in order, so its first call rank 0 holds unanswered is the one it runs, and it
// started about when rank 0 sent it to the idle rank or received the outcomes before it
// (Rank::progress_at: the results stream sends those within flush_latency, or
// flusher_latency behind a long call). That item's deadline counts from then: a little
// late, never early. At the deadline the future fails with TimeoutError (the rest of a
// chunk with it). A rank cannot be stopped without ending the job (Open MPI without
// ULFM), so the call runs on there, as on a thread pool; its outcome is read and dropped
// (RemoteCall::expire), and the calls behind it start after it.
#include "mpi/engine.hpp"

#include <parex/detail/executor/deadline.hpp>

namespace parex::detail::mpi {

bool Engine::check_deadlines(Clock::time_point now) {
  bool any = false;
  for (std::size_t i = 1; i < ranks_.size(); ++i) {
    Rank& r = ranks_[i];
    if (r.lost || r.outstanding.empty()) continue;
    auto [c, owner] = r.outstanding.front();
    if (!c->timeout.count() || c->expired || c->internal || now - r.progress_at < c->timeout) continue;
    owner->count(r.id, true);
    c->expire(deadline_error(c->fn->name.c_str(), c->timeout,
                             "an MPI rank cannot be stopped without ending the job: the call runs on there and its "
                             "result is dropped"));
    any = true;
  }
  return any;
}

}  // namespace parex::detail::mpi
