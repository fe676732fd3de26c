// Future::interrupt of a call an MpiExecutor holds, and the tasks other threads post to
// the progress thread (this, and stats.cpp).
//
// A call still in rank 0's list is cancelled by Future::cancel before it gets here; one
// taken back from a rank (running by its state, never started) is failed here with
// CancelledError. One a rank holds is decided by the take-back protocol (rebalance.cpp,
// remote/take_back.hpp): rank 0 asks the rank for every call it has not claimed; an
// interrupted one among them is cancelled (it never runs), the others go back to rank 0's
// list, and an interrupted one the rank had claimed has started: it cannot be stopped
// without ending the job (no ULFM), so the answer is false, as a thread pool's for a
// running call. The interrupting thread waits for that answer (one round trip: the
// rank's heartbeat thread looks for the request every revoke_poll).
#include "mpi/engine.hpp"

#include <parex/errors.hpp>

#include <algorithm>

namespace parex::detail::mpi {

namespace {
// The longest the interrupting thread waits for the answer (it comes within a take-back
// round trip; a rank that never answers is lost after its watchdog, which answers too).
constexpr auto max_answer_wait = std::chrono::seconds(120);
}  // namespace

bool Engine::post(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    if (thread_done_) return false;
    posted_.push_back(std::move(fn));
  }
  has_commands_.store(true, std::memory_order_release);
  wake();
  return true;
}

// At the end of run(): the tasks still posted run; once none are left, post() says no.
bool Engine::run_posted() {
  std::vector<std::function<void()>> posted;
  {
    std::lock_guard lock(mutex_);
    posted.swap(posted_);
    if (posted.empty()) thread_done_ = true;
  }
  for (auto& fn : posted) fn();
  return !posted.empty();
}

bool Engine::interrupt(RemoteCall& c) noexcept {
  try {
    if (!c.owner) return false;
    Engine& e = get();
    // A producer's reference keeps the call alive until it is answered (answer_interrupts).
    c.state().retain_producer();
    auto answer = std::make_shared<std::promise<bool>>();
    auto answered = answer->get_future();
    RemoteCall* call = &c;
    if (!e.post([&e, call, answer] { e.on_interrupt(call, answer); })) {
      c.state().release_producer();
      return false;
    }
    // A done callback on the progress thread cannot wait for its own thread: the stop is
    // under way (the call may still turn out to have started, and then completes).
    if (e.on_progress_thread()) return true;
    if (answered.wait_for(max_answer_wait) != std::future_status::ready) return false;
    return answered.get();
  } catch (...) {  // no engine (exiting), or no memory for the request
    return false;
  }
}

void Engine::on_interrupt(RemoteCall* c, const std::shared_ptr<std::promise<bool>>& answer) {
  auto reply = [&](bool v) {
    answer->set_value(v);
    c->state().release_producer();
  };
  if (c->state().done()) return reply(false);
  Client* owner = nullptr;
  for (const auto& cl : clients_)
    if (cl.get() == c->owner) owner = cl.get();
  if (!owner) return reply(false);
  if (auto it = std::find(owner->pending.begin(), owner->pending.end(), c); it != owner->pending.end()) {
    owner->pending.erase(it);  // taken back from a rank: it never started there
    owner->count(0, true);
    c->fail_rest(error_ptr<CancelledError>("the call was interrupted before its MPI rank started it"));
    owner->release();
    return reply(true);
  }
  for (std::size_t i = 1; i < ranks_.size(); ++i) {
    Rank& r = ranks_[i];
    if (r.lost) continue;
    for (const auto& held : r.outstanding) {
      if (held.first != c) continue;
      c->interrupted = true;
      r.interrupts.emplace_back(c, answer);
      ++interrupts_waiting_;
      return;  // revoke_for_interrupts asks the rank
    }
  }
  reply(false);
}

// Asks each rank that holds interrupted calls for what it has not started (once its
// sends have completed: a call's arguments must outlive the rank's reading them).
bool Engine::revoke_for_interrupts() {
  bool asked = false;
  for (std::size_t i = 1; i < ranks_.size(); ++i) {
    Rank& r = ranks_[i];
    if (r.interrupts.empty() || r.revoking || r.lost) continue;
    reap_sends(r, 0);
    if (!r.sending.empty()) continue;
    r.revoke_for_interrupt = true;
    ask_revoke(r);
    asked = true;
  }
  return asked;
}

// The take-back's answer (or the rank's loss: nothing taken back): an interrupted call
// taken back was cancelled; one not taken back had started (or finished).
void Engine::answer_interrupts(Rank& r, const std::vector<std::pair<RemoteCall*, Client*>>* taken_back) {
  for (auto& [c, answer] : r.interrupts) {
    const bool cancelled =
        taken_back && std::any_of(taken_back->begin(), taken_back->end(), [&](const auto& x) { return x.first == c; });
    if (!cancelled) c->interrupted = false;
    answer->set_value(cancelled);
    c->state().release_producer();  // may free it
  }
  interrupts_waiting_ -= r.interrupts.size();
  r.interrupts.clear();
}

}  // namespace parex::detail::mpi
