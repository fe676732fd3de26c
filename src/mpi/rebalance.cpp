// Rank 0 takes back calls a worker rank holds but has not claimed, for an idle rank (see
// engine.hpp; the protocol is remote/take_back.hpp's, with the fence raised inside the
// rank by its heartbeat thread, which looks for a request every revoke_poll).
//
// The engine cannot see a rank's claim word, so a stall is a silence: a rank that holds
// calls behind the one it runs and has sent no results for stall_after. It is asked, with
// the count of items sent to it; it answers with where the items it had not claimed start
// (the count itself: none). Until the answer, it gets no more calls (both sides then
// number the next item from that point). The calls taken back go to the front of their
// executors' pending lists, in order, and the rank gets nothing more until it answers
// results again: it runs a long call.
#include "mpi/engine.hpp"

#include "remote/take_back.hpp"

#include <parex/errors.hpp>

#include <utility>
#include <vector>

namespace parex::detail::mpi {

bool Engine::rebalance(Clock::time_point now) {
  for (const auto& c : clients_)
    if (!c->pending.empty()) return false;
  bool someone_idle = false;
  for (std::size_t i = 1; i < ranks_.size() && !someone_idle; ++i) {
    const Rank& r = ranks_[i];
    someone_idle = r.ready && !r.lost && !r.revoking && !r.stalled && r.outstanding.empty();
  }
  if (!someone_idle) return false;
  bool asked = false;
  for (std::size_t i = 1; i < ranks_.size(); ++i) {
    Rank& r = ranks_[i];
    if (!r.ready || r.lost || r.revoking || r.outstanding.size() < 2 || now - r.progress_at < stall_after) continue;
    reap_sends(r, 0);
    if (!r.sending.empty()) continue;  // arguments still on their way: they must outlive the call
    ask_revoke(r);
    asked = true;
  }
  return asked;
}

// Asks r to give back every call it holds unclaimed (its sends must have completed).
void Engine::ask_revoke(Rank& r) {
  r.revoke_to = r.sent;
  r.revoke_request =
      world_.isend(r.id, revoke, reinterpret_cast<const char*>(&r.revoke_to), static_cast<int>(sizeof r.revoke_to));
  r.revoking = true;
}

// The answer of rank r (probed, not yet received).
void Engine::on_revoked(Rank& r) {
  std::uint64_t from = 0;
  world_.recv(r.id, revoked, reinterpret_cast<char*>(&from), static_cast<int>(sizeof from));
  if (!r.revoking) return lose(r, "answered a request to take back calls that nobody made");
  r.revoke_request.wait();  // it received the request: the send is complete
  r.revoking = false;
  const bool for_interrupt = std::exchange(r.revoke_for_interrupt, false);
  if (r.lost) return;  // lost meanwhile (its interrupts were answered then)
  if (from >= r.sent) return answer_interrupts(r, nullptr);  // it had claimed them all
  auto first = r.outstanding.end();
  while (first != r.outstanding.begin() && std::prev(first)->first->first_item >= from) --first;
  if (first == r.outstanding.end() || first->first->first_item != from)
    return lose(r, "took back calls from the middle of one");
  std::vector<std::pair<RemoteCall*, Client*>> taken(first, r.outstanding.end());
  r.outstanding.erase(first, r.outstanding.end());
  r.sent = from;
  // Back to the front of their executors' lists, in order; an interrupted one is cancelled
  // instead (interrupts.cpp): it never ran.
  for (auto it = taken.rbegin(); it != taken.rend(); ++it) {
    auto [c, owner] = *it;
    r.load.discharge(c->charge_ns);
    if (c->internal) {  // an initializer (initializer.cpp): sent again
      owner->init_state[static_cast<std::size_t>(r.id)] = Client::Init::not_sent;
      c->drop();
      owner->release();
      continue;
    }
    if (!c->interrupted) {
      owner->pending.push_front(c);
      continue;
    }
    owner->count(0, true);
    c->fail_rest(error_ptr<CancelledError>("the call was interrupted before its MPI rank started it"));
    owner->release();
  }
  answer_interrupts(r, &taken);
  r.stalled = !r.outstanding.empty();  // it runs a long call: nothing more until it answers
  if (r.stalled && !for_interrupt) {
    // Its running call has been at it for about as long as the rank was silent (half of
    // that, surely: the flusher sends what finished before it within flusher_latency).
    RemoteCall& running = *r.outstanding.front().first;
    const double silent_ns = std::chrono::duration<double, std::nano>(Clock::now() - r.progress_at).count();
    costs_.raise_to(running.fn->id, silent_ns / 2 / (running.count - running.done));
  }
}

}  // namespace parex::detail::mpi
