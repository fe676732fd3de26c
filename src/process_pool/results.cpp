// Reading frames from workers and delivering their outcomes to the calls' futures (see impl.hpp).
#include "process_pool/impl.hpp"
#include "sync/futex.hpp"

namespace parex {

// The worker has exited. Everything it wrote is in its pipe by now, but a process it
// forked may keep the pipe open: EOF may never come. The read in flight is cancelled
// and on_read, which it always reaches, drains the pipe without waiting. (Reading here
// instead would race with that read: Asio may have performed it already, its bytes in
// the reader's buffer but not yet handed to on_read.)
void ProcessPoolExecutor::Impl::on_exit(const WorkerPtr& w) {
  if (w->phase == WorkerProcess::Phase::dead) return;
  w->exited = true;
  if (w->eof) return worker_ended(w);  // its pipe is drained and no read is in flight
  boost::system::error_code ignored;
  w->from.cancel(ignored);
}

// After on_exit: reads what the pipe still holds, without blocking, then ends w.
void ProcessPoolExecutor::Impl::drain_exited(const WorkerPtr& w) {
  for (;;) {
    auto space = w->reader.prepare();
    const ssize_t n = ::read(w->from.native_handle(), space.data(), space.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (!consume(w, static_cast<std::size_t>(n))) return;
  }
  worker_ended(w);
}

void ProcessPoolExecutor::Impl::read_more(const WorkerPtr& w) {
  auto space = w->reader.prepare();
  w->from.async_read_some(asio::buffer(space.data(), space.size()),
                          [this, w](const boost::system::error_code& ec, std::size_t n) {
                            guarded([&] { on_read(w, ec, n); });
                          });
}

void ProcessPoolExecutor::Impl::on_read(const WorkerPtr& w, const boost::system::error_code& ec, std::size_t n) {
  if (w->phase == WorkerProcess::Phase::dead) return;
  if (ec == asio::error::eof && !w->exited && w->exit_watch.is_open()) {
    w->eof = true;  // on_exit ends it
    return expect_exit(w, "was stopped: it closed its output");
  }
  if (ec && !(w->exited && ec == asio::error::operation_aborted)) return worker_ended(w);
  if (!ec && !consume(w, n)) return;
  if (w->exited) return drain_exited(w);
  read_more(w);
  pump();
  maybe_close(*w);
  note_idle(w);
}

// Handles the complete frames among n more bytes read from w; false if w has ended.
bool ProcessPoolExecutor::Impl::consume(const WorkerPtr& w, std::size_t n) {
  w->reader.commit(n);
  try {
    while (auto f = w->reader.next()) {
      handle_frame(w, *f);
      if (w->phase == WorkerProcess::Phase::dead) return false;
    }
  } catch (const ProtocolError& e) {
    std::fprintf(stderr, "parex: worker %d sent a bad frame (%s); stopping it\n", static_cast<int>(w->pid), e.what());
    w->stopped_by_pool = std::string("was stopped: it sent a bad frame (") + e.what() + ")";
    w->killed_by_pool = true;
    worker_ended(w);
    return false;
  }
  return true;
}

void ProcessPoolExecutor::Impl::handle_frame(const WorkerPtr& w, const Frame& f) {
  Reader r(f.payload);
  switch (f.kind()) {
    case FrameKind::hello: {
      if (w->phase != WorkerProcess::Phase::starting) throw ProtocolError("unexpected hello");
      const detail::Hello hello = detail::read_hello(r);
      if (hello.version != detail::protocol_version || hello.digest != detail::Registry::global().digest())
        return break_pool("worker process " + std::to_string(w->pid) +
                          " runs a different program: its registered functions differ from ours (was the "
                          "binary rebuilt while this program ran?)");
      w->phase = WorkerProcess::Phase::initializing;
      w->timer.cancel();
      return;
    }
    case FrameKind::ready:
      if (w->phase != WorkerProcess::Phase::initializing) throw ProtocolError("unexpected ready");
      w->phase = WorkerProcess::Phase::ready;
      startup_failures = 0;
      startup_crashes = 0;
      return;
    case FrameKind::init_failed: {
      r.get_byte();  // stage
      const std::string what = detail::describe_exception(detail::decode_exception(r));
      // On stderr too, as Python logs "Exception in initializer:" with the traceback.
      std::fprintf(stderr, "parex: exception in the initializer of worker process %d: %s\n",
                   static_cast<int>(w->pid), what.c_str());
      return break_pool("the initializer failed in worker process " + std::to_string(w->pid) + ": " + what);
    }
    case FrameKind::results:
      return on_results(*w, r, f.header);
    case FrameKind::shared_results:
      return on_shared_results(*w, r, f.header);
    default:
      throw ProtocolError("unexpected frame kind from a worker");
  }
}

// Outcomes for the next n items sent to w, in order: each call at the front of the
// outstanding list takes its run of them in one go.
void ProcessPoolExecutor::Impl::deliver(WorkerProcess& w, Reader& r, std::uint32_t n, detail::FrameMix* mix) {
  while (n) {
    if (w.outstanding.empty()) throw ProtocolError("a result for no call");
    RemoteCall* c = w.outstanding.front();
    const std::uint32_t k = std::min(n, c->count - c->done);
    if (mix) mix->add(c->fn->id, k);
    idle_deaths = 0;
    c->take_outcomes(r, k);
    complete_items(w, c, k);
    n -= k;
  }
}

void ProcessPoolExecutor::Impl::fail_front(WorkerProcess& w, const std::exception_ptr& e) {
  RemoteCall* c = w.outstanding.front();
  c->on_error(e);
  complete_items(w, c, 1);
}

void ProcessPoolExecutor::Impl::complete_items(WorkerProcess& w, RemoteCall* c, std::uint32_t k) {
  w.received += k;
  if ((c->done += k) == c->count) {
    ++w.calls_done;
    w.calls_failed += c->errors != 0;
    w.outstanding.pop_front();
    w.load.discharge(c->charge_ns);
    c->finish();  // may free c
  }
}

void ProcessPoolExecutor::Impl::on_results(WorkerProcess& w, Reader& r, const detail::FrameHeader& h) {
  detail::FrameMix mix;
  deliver(w, r, h.items, &mix);
  if (!r.empty()) throw ProtocolError("trailing bytes in a results frame");
  mix.teach(costs, h.busy_us);
  w.stalled = false;  // it moves again
  w.busy_us += h.busy_us;
  if (w.outstanding.empty()) last_answered = &w;
}

// Results the worker left in its shared buffer: read through a mapping of its memfd (the
// bytes travel once, instead of through the pipe and a frame buffer), then acknowledged
// so that it may write over them. Where the range cannot be mapped (address space), it
// is read into memory instead: the results are there, and the worker counts them as sent.
void ProcessPoolExecutor::Impl::on_shared_results(WorkerProcess& w, Reader& r, const detail::FrameHeader& h) {
  const auto offset = r.get_raw<std::uint64_t>();
  const auto length = r.get_raw<std::uint64_t>();
  if (!r.empty()) throw ProtocolError("trailing bytes in a shared results frame");
  if (!w.page) throw ProtocolError("shared results from a worker whose shared page is not mapped");
  struct stat st {};
  if (::fstat(w.shm_fd, &st) != 0) throw ProtocolError("cannot find the size of a worker's shared results buffer");
  const auto file = static_cast<std::uint64_t>(st.st_size);
  const std::uint64_t start = detail::shm_header_bytes + offset;
  if (length == 0 || offset > file || start > file || length > file - start)
    throw ProtocolError("shared results outside the worker's buffer");
  struct Release {  // however delivering ends: unmap, then let the worker reuse the bytes
    detail::WorkerShared& page;
    void* base = MAP_FAILED;
    std::size_t span = 0;
    ~Release() {
      if (base != MAP_FAILED) ::munmap(base, span);
      page.acked.fetch_add(1, std::memory_order_release);
      detail::futex_wake_all(page.acked, detail::FutexScope::shared);
    }
  } release{*w.page};
  const auto page_size = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t from = start / page_size * page_size;
  release.span = static_cast<std::size_t>(start + length - from);
  release.base = ::mmap(nullptr, release.span, PROT_READ, MAP_SHARED | MAP_POPULATE, w.shm_fd, static_cast<off_t>(from));
  if (release.base != MAP_FAILED) {
    Reader results({static_cast<const std::byte*>(release.base) + (start - from), static_cast<std::size_t>(length)});
    return on_results(w, results, h);
  }
  std::vector<std::byte> copy;
  try {
    copy.resize(static_cast<std::size_t>(length));
  } catch (const std::bad_alloc&) {  // that worker's results are lost, not the pool
    throw ProtocolError("no memory to read a worker's shared results");
  }
  for (std::size_t got = 0; got < copy.size();) {
    const ssize_t n = ::pread(w.shm_fd, copy.data() + got, copy.size() - got, static_cast<off_t>(start + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw ProtocolError("cannot read a worker's shared results");
    got += static_cast<std::size_t>(n);
  }
  Reader results({copy.data(), copy.size()});
  on_results(w, results, h);
}

}  // namespace parex
