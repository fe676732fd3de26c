// src/mp/pool.cpp - the parts of Pool and ThreadPool that need no template: the threads
// that collect map_async results, and the pool's state errors.
#include <parex/mp/pool.hpp>

#include <cstdio>
#include <string>
#include <thread>

namespace parex::detail {

struct PoolCollectors::Slot {
  std::thread thread;
  std::atomic<bool> done{false};
};

void PoolCollectors::start(std::function<void()> job) {
  auto slot = std::make_shared<Slot>();
  std::vector<std::shared_ptr<Slot>> finished;
  {
    std::lock_guard lock(mutex_);
    for (auto it = slots_.begin(); it != slots_.end();) {  // reap the collectors that are done
      if ((*it)->done.load(std::memory_order_acquire)) {
        finished.push_back(std::move(*it));
        it = slots_.erase(it);
      } else {
        ++it;
      }
    }
    slots_.push_back(slot);
    slot->thread = std::thread([job = std::move(job), s = slot] {  // owns its slot: join_all may detach it
      InCallback flag;  // the map_async callbacks run here
      job();
      s->done.store(true, std::memory_order_release);
    });
  }
  for (auto& s : finished) s->thread.join();
}

void PoolCollectors::join_all() noexcept {
  std::vector<std::shared_ptr<Slot>> all;
  {
    std::lock_guard lock(mutex_);
    all.swap(slots_);
  }
  for (auto& s : all)
    if (s->thread.joinable() && s->thread.get_id() != std::this_thread::get_id()) s->thread.join();
    else if (s->thread.joinable()) s->thread.detach();  // join() from a callback of this very map_async
}

thread_local int in_pool_callback = 0;

void check_not_in_callback(const char* what) {
  if (in_pool_callback)
    throw InvalidStateError(std::string("Pool::") + what +
                            " from a Pool callback would wait for the thread that runs it; call it elsewhere");
}

void throw_pool_not_running() { throw ValueError("Pool not running (close() or terminate() was called)"); }
void throw_pool_still_running() { throw ValueError("Pool::join: call close() or terminate() first"); }

void report_callback_error(const char* which) noexcept {
  try {
    throw;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parex: a Pool %s threw: %s\n", which, e.what());
  } catch (...) {
    std::fprintf(stderr, "parex: a Pool %s threw a non-std exception\n", which);
  }
}

}  // namespace parex::detail
