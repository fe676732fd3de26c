// Rank 0's engine: its calls, ranks and results, what one step of its loop does (see
// engine.hpp for the picture and the invariants; who runs the loop: loop.cpp).
#include "mpi/engine.hpp"

#include "mpi/launch.hpp"

#include <parex/errors.hpp>
#include <parex/registry.hpp>

#include <algorithm>
#include <cstdio>

namespace parex::detail::mpi {

namespace {
std::mutex g_engine_mutex;
Engine* g_engine = nullptr;  // leaked: its thread is joined at exit (stop_if_started)
bool g_engine_stopped = false;  // at exit: no engine any more

// A results frame larger than this is a corrupt length, not a result.
constexpr std::uint64_t max_results_payload = std::uint64_t{64} << 30;
// A rank that has not said hello this long after the engine started is lost: it is not
// running this program's parex::init (another program in an MPMD launch, or hung).
constexpr auto handshake_timeout = std::chrono::seconds(30);
// Messages handled per poll before the loop looks at new calls again.
constexpr int max_messages_per_poll = 64;
}  // namespace

Engine& Engine::get() {
  std::lock_guard lock(g_engine_mutex);
  if (g_engine_stopped) throw InvalidStateError("MpiExecutor: the program is exiting (MPI is being finalized)");
  if (!g_engine) g_engine = new Engine(*world());
  return *g_engine;
}

bool Engine::stop_if_started() {
  Engine* e = nullptr;
  {
    std::lock_guard lock(g_engine_mutex);
    e = g_engine;
    g_engine_stopped = true;
  }
  if (!e) return true;
  if (e->on_progress_thread()) {  // exit() from a done callback: this thread cannot join itself
    std::fprintf(stderr, "parex: exit() called from the thread that runs the MPI loop (a done callback)\n");
    return false;
  }
  {
    std::lock_guard lock(e->mutex_);
    e->stopping_ = true;
  }
  e->has_commands_.store(true, std::memory_order_release);
  e->wake();
  e->thread_.join();
  return !e->lost_any_;
}

Engine::Engine(const bmpi::communicator& world) : world_(world), ranks_(static_cast<std::size_t>(world.size())) {
  for (std::size_t i = 0; i < ranks_.size(); ++i) ranks_[i].id = static_cast<int>(i);
  last_loop_ = polling_since_ = Clock::now();
  thread_ = std::thread([this] { run(); });
}

// ---- any thread -------------------------------------------------------------------------

void Engine::attach(const std::shared_ptr<Client>& c) {
  {
    std::lock_guard lock(mutex_);
    commands_.push_back({c, true, false, nullptr});
  }
  has_commands_.store(true, std::memory_order_release);
  wake();
}

void Engine::close(const std::shared_ptr<Client>& c, bool cancel_futures) {
  RemoteCall* rest = c->inbox.close();
  {
    std::lock_guard lock(mutex_);
    commands_.push_back({c, false, cancel_futures, rest});
  }
  has_commands_.store(true, std::memory_order_release);
  wake();
}

// ---- the loop's steps (under loop_: loop.cpp) --------------------------------------------

bool Engine::take_commands() {
  if (!has_commands_.load(std::memory_order_acquire)) return false;
  std::vector<Command> commands;
  std::vector<std::function<void()>> posted;
  {
    std::lock_guard lock(mutex_);
    commands.swap(commands_);
    posted.swap(posted_);
    has_commands_.store(false, std::memory_order_relaxed);
    stop_seen_ = stopping_;
  }
  for (Command& cmd : commands) {
    if (cmd.attach) {
      clients_.push_back(cmd.client);
      continue;
    }
    Client& c = *cmd.client;
    c.take(cmd.rest);
    c.closed = true;
    if (cmd.cancel_futures) {
      std::deque<RemoteCall*> keep;
      for (RemoteCall* x : c.pending) {
        if (x->state().cancel()) {
          x->drop();
          c.release();
        } else {
          keep.push_back(x);
        }
      }
      c.pending.swap(keep);
    }
  }
  for (auto& fn : posted) fn();  // after the attaches: a task may look for its executor
  if (stop_seen_) {  // at exit: executors still alive take no more calls
    for (auto& c : clients_) {
      if (c->closed) continue;
      c->take(c->inbox.close());
      c->closed = true;
    }
  }
  return true;
}

bool Engine::drain_inboxes() {
  // Cleared before taking: a deferred call pushed after the take sets it again.
  if (deferred_.load(std::memory_order_relaxed)) {
    deferred_.store(false, std::memory_order_seq_cst);
    drains_.fetch_add(1, std::memory_order_seq_cst);  // a deferred call was taken (nap's miss count)
  }
  bool any = false;
  for (auto& c : clients_) any |= c->take(c->inbox.take_all());
  return any;
}

bool Engine::receive(bool& drained) {
  bool any = false;
  for (int i = 0; i < max_messages_per_poll; ++i) {
    const auto st = world_.iprobe(bmpi::any_source, bmpi::any_tag);
    if (!st) {
      drained = true;
      break;
    }
    any = true;
    Rank& r = ranks_.at(static_cast<std::size_t>(st->source()));
    r.heard = Clock::now();
    if (st->tag() == revoked) {
      on_revoked(r);
      continue;
    }
    if (st->tag() != to_client) {  // a heartbeat (nothing else is sent to rank 0 on this communicator)
      discard_message(world_, *st, in_);
      continue;
    }
    try {
      const Frame f = receive_frame(world_, *st, in_, max_results_payload);
      if (!r.lost) on_frame(r, f);
      in_.truncate(0);
      in_.shrink(keep_input_bytes);  // one huge result must not pin its memory
    } catch (const ProtocolError& e) {
      if (!r.lost) lose(r, std::string("sent a bad message (") + e.what() + ")");
    }
  }
  return any;
}

void Engine::on_frame(Rank& r, const Frame& f) {
  Reader in(f.payload);
  switch (f.kind()) {
    case FrameKind::hello: {
      const Hello h = read_hello(in);
      if (h.version != protocol_version || h.digest != Registry::global().digest())
        return lose(r, "runs a different program: its registered functions differ from rank 0's");
      r.ready = true;
      return;
    }
    case FrameKind::results: {
      if (!r.ready) throw ProtocolError("results before hello");
      // Sends up to the items answered here have completed at the rank: finish them
      // before the calls free the arguments they were sent from.
      reap_sends(r, r.received + f.header.items);
      FrameMix mix;
      deliver(r, in, f.header.items, &mix);
      if (!in.empty()) throw ProtocolError("trailing bytes in a results frame");
      mix.teach(costs_, f.header.busy_us);
      count_frame_busy(r, f.header.busy_us);
      r.progress_at = Clock::now();
      r.stalled = false;  // it moves again
      return;
    }
    default:
      throw ProtocolError("unexpected frame kind from a worker rank");
  }
}

// Outcomes for the next n items sent to r, in order: the call at the front of its
// outstanding list takes its run of them in one go.
void Engine::deliver(Rank& r, Reader& in, std::uint32_t n, FrameMix* mix) {
  while (n) {
    if (r.outstanding.empty()) throw ProtocolError("a result for no call");
    auto [c, owner] = r.outstanding.front();
    const std::uint32_t k = std::min(n, c->count - c->done);
    if (mix) mix->add(c->fn->id, k);
    c->take_outcomes(in, k);
    owner->tally[static_cast<std::size_t>(r.id)].frame_items += k;
    r.received += k;
    n -= k;
    if ((c->done += k) == c->count) {
      r.outstanding.pop_front();
      r.load.discharge(c->charge_ns);
      const bool counted = !c->internal && !c->expired, failed = c->errors != 0;
      c->finish();  // may free c
      if (counted) owner->count(r.id, failed);
      owner->release();
    }
  }
}

bool Engine::pump() {
  bool sent = false;
  for (std::size_t i = 1; i < ranks_.size(); ++i) {
    Rank& r = ranks_[i];
    if (!r.ready || r.lost) continue;
    reap_sends(r, 0);
    if (!r.revoking && !r.stalled && has_room(r)) sent |= send_calls(r);
  }
  sent |= send_initializers();
  fail_broken();
  fail_stranded();
  return sent;
}

// Whether the next call for r may join what it holds (remote/batching.hpp).
bool Engine::has_room(Rank& r) {
  Client* owner = nullptr;
  const RemoteCall* next = next_call(r, owner, false);
  return next && r.load.has_room(costs_.per_item(next->fn->id) * next->count);
}

// The next call for rank r, taking the executors in turn (take: off its pending list).
RemoteCall* Engine::next_call(Rank& r, Client*& owner, bool take) {
  for (std::size_t k = 0; k < clients_.size(); ++k) {
    Client& c = *clients_[(next_client_ + k) % clients_.size()];
    if (c.pending.empty() || static_cast<std::size_t>(r.id) > c.ranks) continue;
    if (c.init_fn && c.init_state[static_cast<std::size_t>(r.id)] != Client::Init::done) continue;  // initializer.cpp
    RemoteCall* x = c.pending.front();
    if (!take) return x;
    c.pending.pop_front();
    owner = &c;
    ++next_client_;
    return x;
  }
  return nullptr;
}

bool Engine::send_calls(Rank& r) {
  Sent s;
  s.first_item = r.sent;
  Buffer& b = s.frame.bytes();
  const std::size_t at = begin_frame(b, FrameKind::calls);
  std::uint32_t items = 0;
  while (items < max_frame_items && b.size() + s.frame.spliced_bytes() < max_frame_bytes_out &&
         (items == 0 || has_room(r))) {
    Client* owner = nullptr;
    RemoteCall* c = next_call(r, owner);
    if (!c) break;
    if (!c->state().set_running()) {  // cancelled while it waited here
      c->drop();
      owner->release();
      continue;
    }
    put_call_head(b, {c->fn->id, c->count, false});
    const auto bytes = c->args.bytes();
    if (bytes.size() >= splice_threshold) s.frame.splice(bytes);  // sent from where it is
    else b.put(bytes.data(), bytes.size());
    if (r.outstanding.empty()) r.heard = r.progress_at = Clock::now();  // its silence counts from now
    c->first_item = r.sent;
    c->charge_ns = costs_.per_item(c->fn->id) * c->count;
    r.load.charge(c->charge_ns);
    r.outstanding.emplace_back(c, owner);
    r.sent += c->count;
    items += c->count;
  }
  if (items == 0) return false;
  finish_frame(b, at, items, 0, s.frame.spliced_bytes());
  // Posted only once in the deque, where it never moves again (a small frame's bytes
  // live inside the Buffer object itself).
  r.sending.push_back(std::move(s));
  r.sending.back().frame.post(world_, r.id, to_worker);
  return true;
}

// Drops the frames whose sends completed; waits for those that carried items before
// `through` (the rank has answered them, so it has received them all).
void Engine::reap_sends(Rank& r, std::uint64_t through) {
  while (!r.sending.empty()) {
    Sent& s = r.sending.front();
    if (s.first_item < through) s.frame.wait();
    else if (!s.frame.done()) return;
    r.sending.pop_front();
  }
}

void Engine::check_watchdogs(Clock::time_point now) {
  for (std::size_t i = 1; i < ranks_.size(); ++i) {
    Rank& r = ranks_[i];
    if (r.lost) continue;
    if (!r.ready) {  // counted only while this thread polls: hellos wait unread while it sleeps
      if (now - polling_since_ > handshake_timeout)
        lose(r, "never answered: its main() must call parex::init(argc, argv) first");
      continue;
    }
    if (r.outstanding.empty()) continue;
    auto limit = r.outstanding.front().second->watchdog;  // the tightest of the executors it serves
    for (const auto& [c, owner] : r.outstanding) limit = std::min(limit, owner->watchdog);
    if (now - r.heard > limit)
      lose(r, "sent nothing for " + std::to_string(limit.count()) +
                  " ms (MpiOptions::watchdog): it is stopped, hung inside MPI or unreachable");
  }
}

// r gets no more work; the calls it holds fail. Frames still being sent to it keep their
// bytes: the arguments they were sent from move to the graveyard, alive until exit.
// The hook for an MPI with ULFM (fault-tolerant MPI): a send or receive that fails with
// MPIX_ERR_PROC_FAILED names a dead rank, and lands here; the calls it held but had not
// started could then be re-sent to other ranks, as the process pool does. Open MPI 4.1
// without ULFM ends the job instead, so nothing reaches this from a dead rank today.
void Engine::lose(Rank& r, const std::string& why) {
  r.lost = true;
  lost_any_ = true;
  std::fprintf(stderr, "parex: MPI worker rank %d %s; its calls fail\n", r.id, why.c_str());
  bool unfinished_sends = false;
  for (auto& s : r.sending) unfinished_sends |= !s.frame.done();
  answer_interrupts(r, nullptr);
  for (auto [c, owner] : r.outstanding) {
    if (unfinished_sends) graveyard_.push_back(std::move(c->args));
    if (!c->internal && !c->expired) owner->count(r.id, true);
    const std::string name = c->fn->name;
    c->fail_rest(error_ptr<WorkerCrashed>(
        "MPI worker rank " + std::to_string(r.id) + " " + why + " while it held a call of '" + name + "'", -1, 0, -1,
        name));
    owner->release();
  }
  r.outstanding.clear();
}

// Calls whose executor has no usable rank left fail rather than wait for ever.
void Engine::fail_stranded() {
  for (auto& c : clients_) {
    if (c->pending.empty()) continue;
    bool usable = false;
    for (std::size_t i = 1; i <= c->ranks && i < ranks_.size() && !usable; ++i) usable = !ranks_[i].lost;
    if (usable) continue;
    for (RemoteCall* x : c->pending) {
      if (x->state().set_running()) {
        c->count(0, true);
        x->fail_rest(error_ptr<BrokenExecutor>("MpiExecutor: every worker rank it may use was lost"));
      } else {
        x->drop();
      }
      c->release();
    }
    c->pending.clear();
  }
}

void Engine::finish_clients() {
  std::erase_if(clients_, [](const std::shared_ptr<Client>& c) {
    if (!c->closed || c->held) return false;
    {
      std::lock_guard lock(c->mutex);
      c->finished = true;
    }
    c->cv.notify_all();
    return true;
  });
}

bool Engine::idle() const noexcept {
  for (const auto& c : clients_)
    if (!c->pending.empty()) return false;
  for (std::size_t i = 1; i < ranks_.size(); ++i)
    if (!ranks_[i].lost && (!ranks_[i].outstanding.empty() || !ranks_[i].sending.empty() || ranks_[i].revoking))
      return false;
  return true;
}

}  // namespace parex::detail::mpi
