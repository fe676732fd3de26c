// MapOptions::on_progress: one report at a time, at a bounded rate (see map_range.hpp).
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

// Under the lock: reports are never concurrent, and never out of order.
void MapProgressTracker::report(std::unique_lock<std::mutex>&) noexcept {
  reported_done_ = now_.done;
  try {
    fn_(now_);
  } catch (...) {
    report_callback_error(std::current_exception());
  }
}

}  // namespace parex::detail
