// An unbounded queue's put, and the feeder thread behind it (see include/parex/mp/queues.hpp):
// items that found the ring full wait in this process, in order, and one detached thread
// per queue handle moves them in as room appears. A normal exit waits for them while
// another process holds the queue (a reader may still come); once no other process does,
// nobody ever can read them, and the exit goes on without them (saying so on stderr).
#include <parex/mp/queues.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <dirent.h>
#include <memory>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace parex::detail {

// ---- the feeder: an unbounded queue's items that found the ring full ----------------
struct QueueFeeder {
  std::mutex mutex;
  std::condition_variable drained;
  std::deque<std::vector<std::byte>> items;  // front: being moved into the ring
  std::atomic<std::size_t> pending{0};       // items.size(), read without the mutex
  bool running = false;
  int segment_fd = -1;  // the queue's memfd here, open while the feeder runs (exit handler)
  std::atomic<bool> exit_waits{true};  // false after cancel_join_thread()
  std::function<bool()> reader_gone;  // the core's (queues.hpp), for the exit handler
};

namespace {
// Every feeder of this process, for the exit handler. Leaked: feeder threads may run
// during static destruction.
struct Feeders {
  std::mutex mutex;
  std::vector<std::unique_ptr<QueueFeeder>> all;  // never freed: a handle may point at one
};
Feeders& feeders() {
  static Feeders* f = new Feeders;
  return *f;
}

// How often an exit that waits for a feeder which makes no progress looks for a process
// that could still read its queue.
constexpr auto exit_reader_check = std::chrono::milliseconds(100);

// Whether a process other than this one has the file that `fd` is here open (a scan of
// /proc/*/fd, made only by an exit whose feeder is stuck). Processes we may not look at
// cannot have been handed our queue.
bool open_elsewhere(int fd) {
  struct stat mine {};
  if (::fstat(fd, &mine) != 0) return false;
  const std::string self = std::to_string(::getpid());
  DIR* proc = ::opendir("/proc");
  if (!proc) return true;  // cannot tell: keep waiting, as Python does
  bool found = false;
  while (const dirent* p = ::readdir(proc)) {
    if (found) break;
    if (p->d_name[0] < '1' || p->d_name[0] > '9' || self == p->d_name) continue;
    const std::string dir = std::string("/proc/") + p->d_name + "/fd";
    DIR* fds = ::opendir(dir.c_str());
    if (!fds) continue;
    while (const dirent* e = ::readdir(fds)) {
      struct stat st {};
      if (e->d_name[0] == '.' || ::stat((dir + "/" + e->d_name).c_str(), &st) != 0) continue;
      if (st.st_dev == mine.st_dev && st.st_ino == mine.st_ino) {
        found = true;
        break;
      }
    }
    ::closedir(fds);
  }
  ::closedir(proc);
  return found;
}

// Waits until a feeder is empty, or its items can never be read: its queue no other
// process holds any more (its reader was killed, or never existed), or a pipe's whose
// receiving end no live process holds. False in the second case.
bool wait_for_feeder(QueueFeeder* f) {
  std::unique_lock lock(f->mutex);
  for (std::size_t left = f->items.size(); !f->items.empty();) {
    if (f->drained.wait_for(lock, exit_reader_check, [&] { return f->items.empty(); })) break;
    if (f->items.size() != left) {  // it moves
      left = f->items.size();
      continue;
    }
    lock.unlock();
    const bool reader_may_come = !(f->reader_gone && f->reader_gone()) && open_elsewhere(f->segment_fd);
    lock.lock();
    if (!reader_may_come && !f->items.empty()) return false;
  }
  return true;
}

// A normal exit waits for every feeder to empty, as Python joins its feeder threads
// (except those cancel_join_thread() let go), but not for items nobody can ever read.
void wait_for_feeders() {
  std::vector<QueueFeeder*> live;
  {
    std::lock_guard lock(feeders().mutex);
    for (auto& f : feeders().all) live.push_back(f.get());
  }
  for (QueueFeeder* f : live) {
    if (!f->exit_waits.load(std::memory_order_acquire)) continue;
    if (!wait_for_feeder(f)) {
      std::lock_guard lock(f->mutex);
      if (!f->items.empty())
        std::fprintf(stderr, "parex: exiting without %zu item(s) put on a queue that no other process holds\n",
                     f->items.size());
    }
  }
}

// How long an unbounded put waits for room before its item waits in this process instead:
// long enough that a producer ahead of its consumer is slowed down rather than buffered
// (buffering costs a copy and a hand-off per item), short enough to never look blocked.
constexpr auto unbounded_put_patience = std::chrono::milliseconds(1);
}  // namespace

QueueFeeder* QueueCore::make_feeder() {
  static std::once_flag once;
  std::call_once(once, [] { std::atexit(wait_for_feeders); });
  std::lock_guard lock(feeders().mutex);  // one creation at a time
  QueueFeeder* f = feeder_.load(std::memory_order_acquire);
  if (!f) {
    f = feeders().all.emplace_back(std::make_unique<QueueFeeder>()).get();
    f->segment_fd = segment_->fd();
    f->reader_gone = reader_gone;
    f->exit_waits.store(exit_waits_.load(std::memory_order_acquire), std::memory_order_release);
    feeder_.store(f, std::memory_order_release);
  }
  return f;
}

void QueueCore::join_thread() {
  if (!closed_) throw ValueError("join_thread() before close()");
  if (QueueFeeder* f = feeder_.load(std::memory_order_acquire)) wait_for_feeder(f);
}

void QueueCore::cancel_join_thread() noexcept {
  std::lock_guard lock(feeders().mutex);  // against make_feeder()
  exit_waits_.store(false, std::memory_order_release);
  if (QueueFeeder* f = feeder_.load(std::memory_order_acquire)) f->exit_waits.store(false, std::memory_order_release);
}

void QueueCore::put(std::span<const std::byte> item, std::chrono::nanoseconds timeout) {
  check_open();
  check_not_shut_down();  // also when the item would wait behind others in the feeder
  if (maxsize() != 0) return put_in_ring(item, timeout);
  QueueFeeder* f = feeder_.load(std::memory_order_acquire);
  if (f && f->pending.load(std::memory_order_acquire) != 0) {
    std::lock_guard lock(f->mutex);
    if (!f->items.empty()) {  // items of this handle wait already: this one goes behind them
      f->items.emplace_back(item.begin(), item.end());
      f->pending.store(f->items.size(), std::memory_order_release);
      return;
    }
  }
  try {
    return put_in_ring(item, item.size() > capacity() / 4 ? std::chrono::nanoseconds(0)
                                                                 : std::chrono::nanoseconds(unbounded_put_patience));
  } catch (const Full&) {
  }
  count_unfinished();  // joinable queues count it now: join() must wait for it
  if (!f) f = make_feeder();
  std::lock_guard lock(f->mutex);
  f->items.emplace_back(item.begin(), item.end());
  f->pending.store(f->items.size(), std::memory_order_release);
  if (f->running) return;
  f->running = true;
  auto feed = [core = *this, f]() mutable {
    std::unique_lock lock(f->mutex);
    while (!f->items.empty()) {
      std::span<const std::byte> next(f->items.front());
      lock.unlock();
      try {
        core.put_in_ring(next, no_timeout, /*counted=*/true);
      } catch (const ShutDown&) {  // dropped, as the queue's own items were (and uncounted)
      } catch (const std::exception& e) {  // a corrupt queue: nothing sensible is left to do
        std::fprintf(stderr, "parex: a queue's feeder dropped an item: %s\n", e.what());
      }
      lock.lock();
      f->items.pop_front();
      f->pending.store(f->items.size(), std::memory_order_release);
    }
    f->running = false;
    f->drained.notify_all();
  };
  try {
    std::thread(std::move(feed)).detach();
  } catch (...) {  // no thread: take the item back, so that nothing waits for it for ever
    f->items.pop_back();
    f->pending.store(f->items.size(), std::memory_order_release);
    f->running = false;
    throw;
  }
}

}  // namespace parex::detail
