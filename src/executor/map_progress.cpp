// MapOptions::on_progress: one report at a time, at a bounded rate, never under a lock
// (see map_range.hpp).
#include <parex/executor.hpp>

namespace parex::detail {

MapProgressTracker::MapProgressTracker(std::function<void(const MapProgress&)> fn, std::optional<std::size_t> total,
                                       std::chrono::milliseconds interval)
    : fn_(std::move(fn)), interval_(interval) {
  now_.total = total;
}

void MapProgressTracker::add(std::size_t done, std::size_t failed) noexcept {
  std::unique_lock lock(mutex_);
  now_.done += done;
  now_.failed += failed;
  const auto t = Clock::now();
  if (t - last_ >= interval_ || (now_.total && now_.done >= *now_.total)) {
    last_ = t;
    report(lock);
  }
}

void MapProgressTracker::finish() noexcept {
  std::unique_lock lock(mutex_);
  if (reported_done_ != now_.done) report(lock);
}

void MapProgressTracker::close() noexcept {
  std::unique_lock lock(mutex_);
  closed_ = true;
  idle_.wait(lock, [&] { return !reporting_ || reporter_ == std::this_thread::get_id(); });
}

// Called with the lock held; calls fn_ without it (the callback may cancel, shut down or
// ask for stats, which may complete other chunks of this map on this very thread). A
// report asked for while one runs is made by the reporter, with the newest figures, after
// its own: reports never overlap and never go backwards.
void MapProgressTracker::report(std::unique_lock<std::mutex>& lock) noexcept {
  if (closed_) return;
  if (reporting_) {
    again_ = true;
    return;
  }
  reporting_ = true;
  reporter_ = std::this_thread::get_id();
  do {
    again_ = false;
    const MapProgress p = now_;
    reported_done_ = p.done;
    lock.unlock();
    try {
      fn_(p);
    } catch (...) {
      report_callback_error(std::current_exception());
    }
    lock.lock();
  } while (again_ && !closed_);
  reporting_ = false;
  reporter_ = {};
  idle_.notify_all();
}

}  // namespace parex::detail
