// MpiOptions::initializer: a registered function, run on each worker rank before the
// first call of its executor there (ranks are shared by every MpiExecutor of the job, so
// each executor's initializer runs once per rank it uses).
//
// It travels as an ordinary call (the process pool's records: no message kind of its
// own), sent to each rank as soon as the rank is ready; the executor's calls go to that
// rank only once its outcome is back. One that throws (or whose rank is lost meanwhile)
// breaks the executor, as a process pool's initializer does: its calls not sent fail with
// BrokenExecutor naming the rank, and submit throws it. A take-back that catches it
// unclaimed drops it; it is sent again.
#include "mpi/engine.hpp"

#include <parex/errors.hpp>
#include <parex/future.hpp>

#include <cstdio>

namespace parex::detail::mpi {

bool Engine::send_initializers() {
  bool sent = false;
  for (const auto& cp : clients_) {
    Client& c = *cp;
    if (!c.init_fn || c.broken.load(std::memory_order_relaxed) || (c.closed && c.pending.empty())) continue;
    for (std::size_t i = 1; i <= c.ranks && i < ranks_.size(); ++i) {
      Rank& r = ranks_[i];
      if (!r.ready || r.lost || r.revoking || r.stalled || c.init_state[i] != Client::Init::not_sent) continue;
      send_initializer(r, c);
      sent = true;
    }
  }
  return sent;
}

void Engine::send_initializer(Rank& r, Client& c) {
  auto* ic = new SingleCall<void>(*c.init_fn);
  auto future = FutureAccess::make(StateRef<State<void>>::adopt(ic));
  ic->internal = true;
  ic->owner = &c;
  ic->args.put(c.init_args.data(), c.init_args.size());
  ic->state().set_running();
  Client* owner = &c;
  const int rank = r.id;
  // On this thread: its outcome is delivered (or the rank lost) here.
  future.add_done_callback([owner, rank](const Future<void>& f) {
    try {
      f.result();
      owner->init_state[static_cast<std::size_t>(rank)] = Client::Init::done;
      return;
    } catch (...) {
    }
    // Broken already by another rank: submit() may be reading broken_why on its thread,
    // and only the first failure is told.
    if (owner->broken.load(std::memory_order_acquire)) return;
    try {
      f.result();
    } catch (const std::exception& e) {
      owner->broken_why = "MpiExecutor: the initializer failed on MPI worker rank " + std::to_string(rank) + ": " +
                          e.what();
    } catch (...) {
      owner->broken_why = "MpiExecutor: the initializer failed on MPI worker rank " + std::to_string(rank);
    }
    std::fprintf(stderr, "parex: %s\n", owner->broken_why.c_str());
    owner->broken.store(true, std::memory_order_release);
  });
  Sent s;
  s.first_item = r.sent;
  Buffer& b = s.frame.bytes();
  const std::size_t at = begin_frame(b, FrameKind::calls);
  put_call_head(b, {ic->fn->id, 1, false});
  b.put(ic->args.data(), ic->args.size());
  if (r.outstanding.empty()) r.heard = r.progress_at = Clock::now();
  ic->first_item = r.sent;
  r.load.charge(ic->charge_ns);  // 0: it holds up nothing, but is a call it holds
  r.outstanding.emplace_back(ic, &c);
  r.sent += 1;
  ++c.held;
  c.init_state[static_cast<std::size_t>(r.id)] = Client::Init::running;
  finish_frame(b, at, 1);
  r.sending.push_back(std::move(s));
  r.sending.back().frame.post(world_, r.id, to_worker);
}

// The calls of an executor whose initializer failed, and not sent, fail.
void Engine::fail_broken() {
  for (const auto& c : clients_)
    if (!c->pending.empty() && c->broken.load(std::memory_order_relaxed))
      fail_pending(*c, error_ptr<BrokenExecutor>(c->broken_why));
}

void Engine::fail_pending(Client& c, const std::exception_ptr& e) {
  for (RemoteCall* x : c.pending) {
    if (x->state().set_running()) {
      c.count(0, true);
      x->fail_rest(e);
    } else {
      x->drop();
    }
    c.release();
  }
  c.pending.clear();
}

}  // namespace parex::detail::mpi
