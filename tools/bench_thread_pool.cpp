// bench_thread_pool: ThreadPoolExecutor against Boost.Asio's thread_pool and oneTBB, in
// one run, on the same trivial work.
//
//   throughput: submit N trivial tasks (each returns i + 1 through a future), then
//               collect every result; tasks/s = N / wall time of both phases.
//   round trip: submit one task and wait for its result, many times; median latency.
//
// Every contender completes a future per task: parex::Future, std::packaged_task's
// std::future (asio), std::promise's std::future (oneTBB). Contenders run interleaved in
// each repeat (A B C D, A B C D, ...) so that machine noise hits all of them alike; the
// report gives medians over repeats and ratios against the others.
//
//   bench_thread_pool [--tasks N] [--repeats R] [--workers W] [--load L]
//   --load L   starts L extra busy threads at low priority for the whole run, to see how
//              each pool behaves with more runnable threads than cores.
#include <parex/parex.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::size_t tasks = 1'000'000;
  int repeats = 7;
  std::size_t workers = 2;
  int load = 0;
  std::size_t round_trips = 20'000;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

[[gnu::noinline]] int work(int i) { return i + 1; }

long expected_sum(std::size_t n) { return static_cast<long>(n) * static_cast<long>(n + 1) / 2; }

void check(long sum, std::size_t n, const char* who) {
  if (sum != expected_sum(n)) {
    std::fprintf(stderr, "%s: wrong sum %ld (expected %ld)\n", who, sum, expected_sum(n));
    std::exit(1);
  }
}

// ---- throughput: submit all, then collect all ------------------------------------------

double parex_throughput(parex::ThreadPoolExecutor& pool, std::size_t n) {
  std::vector<parex::Future<int>> fs;
  fs.reserve(n);
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) fs.push_back(pool.submit(work, static_cast<int>(i)));
  long sum = 0;
  for (auto& f : fs) sum += f.result();
  const double s = seconds_since(t0);
  check(sum, n, "parex");
  return n / s;
}

double asio_throughput(boost::asio::thread_pool& pool, std::size_t n) {
  std::vector<std::future<int>> fs;
  fs.reserve(n);
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    std::packaged_task<int()> task([i] { return work(static_cast<int>(i)); });
    fs.push_back(task.get_future());
    boost::asio::post(pool, std::move(task));
  }
  long sum = 0;
  for (auto& f : fs) sum += f.get();
  const double s = seconds_since(t0);
  check(sum, n, "asio");
  return n / s;
}

// oneTBB, task_arena::enqueue: fire-and-forget tasks on the arena's worker threads.
double tbb_arena_throughput(tbb::task_arena& arena, std::size_t n) {
  std::vector<std::future<int>> fs;
  fs.reserve(n);
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    auto p = std::make_shared<std::promise<int>>();
    fs.push_back(p->get_future());
    arena.enqueue([p, i] { p->set_value(work(static_cast<int>(i))); });
  }
  long sum = 0;
  for (auto& f : fs) sum += f.get();
  const double s = seconds_since(t0);
  check(sum, n, "tbb arena");
  return n / s;
}

// oneTBB, task_group::run inside an arena of W threads, the caller helping in wait().
double tbb_group_throughput(tbb::task_arena& arena, std::size_t n) {
  std::vector<std::future<int>> fs;
  fs.reserve(n);
  const auto t0 = Clock::now();
  arena.execute([&] {
    tbb::task_group tg;
    for (std::size_t i = 0; i < n; ++i) {
      auto p = std::make_shared<std::promise<int>>();
      fs.push_back(p->get_future());
      tg.run([p, i] { p->set_value(work(static_cast<int>(i))); });
    }
    tg.wait();
  });
  long sum = 0;
  for (auto& f : fs) sum += f.get();
  const double s = seconds_since(t0);
  check(sum, n, "tbb task_group");
  return n / s;
}

// ---- round trip: one task, wait, repeat; returns the median in microseconds ------------

template <class OneTrip>
double round_trip_us(std::size_t trips, OneTrip one) {
  std::vector<double> us;
  us.reserve(trips);
  for (std::size_t i = 0; i < trips; ++i) {
    const auto t0 = Clock::now();
    if (one(static_cast<int>(i)) != static_cast<int>(i) + 1) std::abort();
    us.push_back(seconds_since(t0) * 1e6);
  }
  return median(std::move(us));
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--tasks") a.tasks = std::stoul(v);
    else if (k == "--repeats") a.repeats = std::stoi(v);
    else if (k == "--workers") a.workers = std::stoul(v);
    else if (k == "--load") a.load = std::stoi(v);
    else if (k == "--round-trips") a.round_trips = std::stoul(v);
    else {
      std::fprintf(stderr, "usage: %s [--tasks N] [--repeats R] [--workers W] [--load L] [--round-trips T]\n", argv[0]);
      return 2;
    }
  }

  std::atomic<bool> stop{false};
  std::vector<std::thread> load;
  for (int i = 0; i < a.load; ++i)
    load.emplace_back([&] {
      setpriority(PRIO_PROCESS, 0, 10);
      volatile unsigned long x = 0;
      while (!stop.load(std::memory_order_relaxed)) x = x + 1;
    });

  std::printf("bench_thread_pool: %zu trivial tasks, %zu workers, %d repeats, %d background busy threads, %u CPUs\n",
              a.tasks, a.workers, a.repeats, a.load, std::thread::hardware_concurrency());

  // oneTBB caps its workers at hardware_concurrency - 1 by default: lift the cap so that
  // its arenas really get the W workers they ask for.
  tbb::global_control tbb_limit(tbb::global_control::max_allowed_parallelism, a.workers + 1);
  parex::ThreadPoolExecutor parex_pool{{.max_workers = a.workers}};
  boost::asio::thread_pool asio_pool(a.workers);
  tbb::task_arena arena(static_cast<int>(a.workers), 0);  // W workers, no slot reserved for the caller
  tbb::task_arena group_arena(static_cast<int>(a.workers));  // W threads counting the caller

  std::map<std::string, std::vector<double>> tput;
  const std::vector<std::pair<std::string, std::function<double()>>> contenders{
      {"parex ThreadPoolExecutor", [&] { return parex_throughput(parex_pool, a.tasks); }},
      {"boost::asio::thread_pool", [&] { return asio_throughput(asio_pool, a.tasks); }},
      {"oneTBB task_arena::enqueue", [&] { return tbb_arena_throughput(arena, a.tasks); }},
      {"oneTBB task_group (caller helps)", [&] { return tbb_group_throughput(group_arena, a.tasks); }},
  };
  for (auto& c : contenders) c.second();  // warm-up: threads started, allocator primed
  for (int r = 0; r < a.repeats; ++r)
    for (auto& [name, run] : contenders) tput[name].push_back(run());

  std::printf("\nthroughput, submit %zu then collect (median of %d, tasks/s):\n", a.tasks, a.repeats);
  std::map<std::string, double> med;
  for (auto& [name, run] : contenders) {
    med[name] = median(tput[name]);
    auto [lo, hi] = std::minmax_element(tput[name].begin(), tput[name].end());
    std::printf("  %-34s %10.0f   (min %.0f, max %.0f)\n", name.c_str(), med[name], *lo, *hi);
  }
  const double p = med["parex ThreadPoolExecutor"];
  const double tbb_best = std::max(med["oneTBB task_arena::enqueue"], med["oneTBB task_group (caller helps)"]);
  std::printf("  ratio parex / asio            %6.2fx   (bar: >= 2.5x)\n", p / med["boost::asio::thread_pool"]);
  std::printf("  ratio parex / best of oneTBB  %6.2fx   (bar: >= 1.0x)\n", p / tbb_best);

  // Round trips, interleaved in blocks so that noise spreads evenly.
  std::map<std::string, std::vector<double>> rt;
  const std::size_t block = std::max<std::size_t>(1, a.round_trips / static_cast<std::size_t>(a.repeats));
  for (int r = 0; r < a.repeats; ++r) {
    rt["parex"].push_back(round_trip_us(block, [&](int i) { return parex_pool.submit(work, i).result(); }));
    rt["asio"].push_back(round_trip_us(block, [&](int i) {
      std::packaged_task<int()> task([i] { return work(i); });
      auto f = task.get_future();
      boost::asio::post(asio_pool, std::move(task));
      return f.get();
    }));
    rt["tbb"].push_back(round_trip_us(block, [&](int i) {
      auto pr = std::make_shared<std::promise<int>>();
      auto f = pr->get_future();
      arena.enqueue([pr, i] { pr->set_value(work(i)); });
      return f.get();
    }));
  }
  std::printf("\nround trip, submit one then wait (median of %d block medians, us):\n", a.repeats);
  const double rp = median(rt["parex"]), ra = median(rt["asio"]), rtb = median(rt["tbb"]);
  std::printf("  %-34s %8.2f\n  %-34s %8.2f\n  %-34s %8.2f\n", "parex ThreadPoolExecutor", rp, "boost::asio::thread_pool", ra,
              "oneTBB task_arena::enqueue", rtb);
  std::printf("  ratio parex / oneTBB          %6.2fx   (bar: <= 1.5x)\n", rp / rtb);

  stop = true;
  for (auto& t : load) t.join();
  return 0;
}
