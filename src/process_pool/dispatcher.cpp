// Which worker gets which calls, and the calls frame that carries them (see impl.hpp).
#include "process_pool/impl.hpp"

namespace parex {

// A worker that may be given calls now.
bool ProcessPoolExecutor::Impl::can_take(const WorkerProcess& w) const {
  return w.phase == WorkerProcess::Phase::ready && !w.input_closed && !w.channel_ended && !w.writing && !w.stalled;
}

// Whether `next` may join what w holds (remote/batching.hpp: the estimate of its function).
bool ProcessPoolExecutor::Impl::has_room(const WorkerProcess& w, const RemoteCall& next) const {
  return w.load.has_room(costs.per_item(next.fn->id) * (next.count - next.done));
}

// Pending calls to workers with room; then, with nothing pending, work that waits behind
// a stalled worker's running call goes back to idle ones (rebalance.cpp).
void ProcessPoolExecutor::Impl::pump() {
  distribute();
  if (pending.empty()) rebalance();
}

void ProcessPoolExecutor::Impl::distribute() {
  if (pending.empty() || workers.empty()) return;
  const auto snapshot = workers;  // send_calls may spawn a replacement (retiring workers)
  const std::size_t n = snapshot.size();
  for (const WorkerPtr& w : snapshot)
    if (w.get() == last_answered) {
      if (w->outstanding.empty() && can_take(*w) && has_room(*w, *pending.front())) send_calls(w);
      break;
    }
  for (std::size_t k = 0; k < n && !pending.empty(); ++k) {
    const WorkerPtr& w = snapshot[(next_worker + k) % n];
    if (can_take(*w) && has_room(*w, *pending.front())) send_calls(w);
  }
  ++next_worker;
}

void ProcessPoolExecutor::Impl::send_calls(const WorkerPtr& wp) {
  WorkerProcess& w = *wp;
  w.writer.begin();
  Buffer& f = w.writer.frame();
  detail::begin_frame(f, FrameKind::calls);
  std::uint32_t items = 0;
  while (!pending.empty() && items < max_frame_items && f.size() + w.writer.spliced_bytes() < max_frame_bytes_out &&
         (items == 0 || has_room(w, *pending.front()))) {
    RemoteCall* c = pending.front();
    pending.pop_front();
    if (!c->state().set_running()) {  // cancelled while it waited here
      c->drop();
      continue;
    }
    if (c->interrupted) {  // back from a worker that ended before it could be stopped
      ++calls_done, ++calls_failed;
      c->fail_rest(std::make_exception_ptr(CancelledError("the call was interrupted")));
      continue;
    }
    const std::uint32_t n = c->count - c->done;
    c->seek_resume();  // a re-send after a crash starts at the first item without an outcome
    const auto bytes = c->args.bytes().subspan(c->resume_offset);
    const bool in_arena = arena && c->args.block_owner() == arena.get();
    const bool timed = c->timeout.count() != 0;
    detail::put_call_head(f, {c->fn->id, n, in_arena, timed});
    if (in_arena) {  // the worker reads the arguments where they are
      detail::put_arena_ref(f, {arena->offset_of(bytes.data()), bytes.size()});
    } else if (bytes.size() >= splice_threshold) {
      // Referenced, not copied: the bytes stay unchanged and alive until the worker has
      // read them, since a call's arguments are freed only once its outcomes are in
      // (take_outcomes, finish) or its worker is reaped (worker_ended, break_pool).
      w.writer.splice(bytes);
    } else {
      f.put(bytes.data(), bytes.size());
    }
    c->first_item = w.sent;
    c->charge_ns = costs.per_item(c->fn->id) * n;
    w.load.charge(c->charge_ns);
    w.outstanding.push_back(c);
    if (timed) watch_deadline(wp, Clock::now() + c->timeout);  // it cannot run out before
    w.sent += n;
    items += n;
    if (options.max_tasks_per_child && ++w.calls_sent >= options.max_tasks_per_child) {
      w.phase = WorkerProcess::Phase::retiring;  // its replacement starts once this frame is under way
      break;
    }
  }
  if (items == 0) return;
  detail::finish_frame(f, 0, items, 0, w.writer.spliced_bytes());
  w.writer.seal();
  start_write(wp);
  // Only now: starting a worker may fail and break the pool, which must not find a
  // frame half-built for this one.
  if (w.phase == WorkerProcess::Phase::retiring) ensure_workers();
}

void ProcessPoolExecutor::Impl::start_write(const WorkerPtr& w) {
  w->writing = true;
  continue_write(w);
}

// Writes what the pipe takes now (channel/frame_writer.hpp); waits for room with Asio,
// never blocks.
void ProcessPoolExecutor::Impl::continue_write(const WorkerPtr& w) {
  int error = 0;
  switch (w->writer.write_some(w->to.native_handle(), error)) {
    case detail::FrameWriter::Status::would_block:
      w->to.async_wait(asio::posix::stream_descriptor::wait_write, [this, w](const boost::system::error_code& ec) {
        guarded([&] {
          if (w->phase == WorkerProcess::Phase::dead) return;
          if (ec) return write_failed(w, ec.value());
          continue_write(w);
        });
      });
      return;
    case detail::FrameWriter::Status::failed:
      return write_failed(w, error);
    case detail::FrameWriter::Status::done:
      break;
  }
  w->writing = false;
  w->writer.release(max_frame_bytes_out);  // let a frame that grew big give its memory back
  pump();
  maybe_close(*w);
}

// The worker is gone or going: its read side will report the end; make sure it ends.
void ProcessPoolExecutor::Impl::write_failed(const WorkerPtr& w, int error) {
  w->writing = false;
  if (w->phase == WorkerProcess::Phase::dead) return;
  expect_exit(w, "was stopped: the pool could not write to it (" + std::string(strerror(error)) + ")");
}

// idle_timeout: a ready worker with nothing to do ends once it has had nothing to do for
// that long (retiring: EOF, it exits); ensure_workers starts workers again when calls wait.
void ProcessPoolExecutor::Impl::note_idle(const WorkerPtr& wp) {
  WorkerProcess& w = *wp;
  if (!options.idle_timeout.count() || w.phase != WorkerProcess::Phase::ready || !w.outstanding.empty() ||
      w.writing || stopping)
    return;
  w.idle_since = Clock::now();
  if (!w.idle_armed) arm_idle(wp);  // else the timer looks at idle_since when it fires
}

void ProcessPoolExecutor::Impl::arm_idle(const WorkerPtr& wp) {
  wp->idle_armed = true;
  wp->idle.expires_at(wp->idle_since + options.idle_timeout);
  wp->idle.async_wait([this, wp](const boost::system::error_code& e) {
    wp->idle_armed = false;
    if (e) return;
    guarded([&] {
      WorkerProcess& w = *wp;
      if (w.phase != WorkerProcess::Phase::ready || !w.outstanding.empty() || w.writing || stopping) return;
      if (Clock::now() - w.idle_since < options.idle_timeout) return arm_idle(wp);  // busy meanwhile
      w.phase = WorkerProcess::Phase::retiring;
      maybe_close(w);
    });
  });
}

// A retiring worker gets EOF once it has nothing left to answer; when the pool is stopping,
// every worker does, once nothing is left to send either.
void ProcessPoolExecutor::Impl::maybe_close(WorkerProcess& w) {
  const bool done_with_it = w.phase == WorkerProcess::Phase::retiring || (stopping && pending.empty());
  if (done_with_it && !w.input_closed && w.phase != WorkerProcess::Phase::dead && w.outstanding.empty() && !w.writing) {
    w.input_closed = true;
    boost::system::error_code ignored;
    w.to.close(ignored);
  }
}

}  // namespace parex
