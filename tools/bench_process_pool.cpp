// bench_process_pool: ProcessPoolExecutor on the five measurements of the issue (docs/07-how-it-works.md,
// "Benchmarks"); tools/bench_vs_python.py runs it beside Python's pools.
//
//   (a) submit N tiny calls (x + 1), then collect every result         calls/s
//   (b) map x * x over 1M ints, for several chunksizes (best reported)  items/s
//   (c) one call's round trip on a warm pool                            us (median)
//   (d) pool start-up to first result (construct, submit, result)       ms (median)
//   (e) one call with a 64 MiB argument, against a raw pipe moving the
//       same bytes to a child process in the same run                   GB/s
//   (g) on request: round trips from 4 threads at once (each submits one tiny call and waits
//       for it, 2000 times), wall time per call                            us
//   (f) on request (--only f): one call with a 1 GiB result (through shared memory), against
//       the same pool's pipe path, a bare child computing the same bytes and writing them to
//       a raw pipe, and a raw pipe moving 1 GiB kept ready, into a fresh vector, same run GB/s
//
// 2 workers by default. Prints a human table, or with --json one JSON object that
// tools/bench_vs_python.py puts side by side with Python's pools.
//   bench_process_pool [--workers W] [--repeats R] [--json] [--only a,b,c,d,e,g | f]
#include <parex/parex.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <optional>
#include <thread>
#include <string>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>
#include <vector>

int tiny(int x) { return x + 1; }
PAREX_REGISTER(tiny);
int square(int x) { return x * x; }
PAREX_REGISTER(square);
std::size_t payload_size(const std::vector<char>& v) { return v.size() + static_cast<unsigned char>(v[v.size() / 2]); }
PAREX_REGISTER(payload_size);
std::vector<char> make_bytes(std::size_t n) {
  std::vector<char> v(n);
  for (std::size_t i = 0; i < n; i += 4096) v[i] = static_cast<char>(i >> 12);
  return v;
}
PAREX_REGISTER(make_bytes);

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

struct Args {
  std::size_t workers = 2;
  int repeats = 5;
  bool json = false;
  std::string only = "abcde";  // (f) on request: --only f
  std::size_t tiny_calls = 200'000;
  std::size_t map_items = 1'000'000;
};

double tiny_calls_per_s(parex::ProcessPoolExecutor& pool, std::size_t n) {
  std::vector<parex::Future<int>> fs;
  fs.reserve(n);
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) fs.push_back(pool.submit(tiny, static_cast<int>(i)));
  long sum = 0;
  for (auto& f : fs) sum += f.result();
  const double s = since(t0);
  if (sum != static_cast<long>(n) * static_cast<long>(n + 1) / 2) std::abort();
  return n / s;
}

double map_items_per_s(parex::ProcessPoolExecutor& pool, const std::vector<int>& in, std::size_t chunksize) {
  const auto t0 = Clock::now();
  long sum = 0;
  for (int y : pool.map(square, in, {.chunksize = chunksize})) sum += y;
  const double s = since(t0);
  long expect = 0;
  for (int x : in) expect += static_cast<long>(x * x);
  if (sum != expect) std::abort();
  return in.size() / s;
}

double round_trip_us(parex::ProcessPoolExecutor& pool, int trips) {
  std::vector<double> us;
  for (int i = 0; i < trips; ++i) {
    const auto t0 = Clock::now();
    if (pool.submit(tiny, i).result() != i + 1) std::abort();
    us.push_back(since(t0) * 1e6);
  }
  return median(us);
}

// Wall time per call while `threads` threads each make round trips at once.
double threaded_round_trip_us(parex::ProcessPoolExecutor& pool, int threads, int trips) {
  std::vector<std::thread> ts;
  const auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&pool, trips] {
      for (int i = 0; i < trips; ++i)
        if (pool.submit(tiny, i).result() != i + 1) std::abort();
    });
  for (auto& t : ts) t.join();
  return since(t0) * 1e6 / (threads * trips);
}

double startup_ms(std::size_t workers) {
  const auto t0 = Clock::now();
  parex::ProcessPoolExecutor pool{{.max_workers = workers}};
  if (pool.submit(tiny, 1).result() != 2) std::abort();
  return since(t0) * 1e3;  // the pool's shutdown is not counted (Python's isn't either)
}

double payload_gb_per_s(parex::ProcessPoolExecutor& pool, const std::vector<char>& v) {
  const auto t0 = Clock::now();
  const std::size_t got = pool.submit(payload_size, v).result();
  const double s = since(t0);
  if (got != v.size() + static_cast<unsigned char>(v[v.size() / 2])) std::abort();
  return v.size() / s / 1e9;
}

// The baselines: bare pipes to child processes forked once, first thing in main, while
// this process is still small. (Forking later, between measurements, would mark parex's
// buffers copy-on-write and charge it ~16k page faults per 64 MiB for the baseline's sake.)
class RawPipe {
 public:
  // mode 'e': echo one byte per byte (round trips); 's': sink n bytes, answer n (bandwidth);
  // 'w': asked for n, write n bytes back from a buffer it keeps (a result's bandwidth);
  // 'm': asked for n, compute make_bytes(n) as the pool's worker does, write it back
  RawPipe(char mode, int pipe_size) {
    int to[2], back[2];
    if (::pipe(to) || ::pipe(back)) std::abort();
    if (pipe_size) ::fcntl(mode == 'w' || mode == 'm' ? back[1] : to[1], F_SETPIPE_SZ, pipe_size);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(to[1]);
      ::close(back[0]);
      if (mode == 'w' || mode == 'm') source(to[0], back[1], mode == 'm');
      else mode == 'e' ? echo(to[0], back[1]) : sink(to[0], back[1]);
      ::_exit(0);
    }
    ::close(to[0]);
    ::close(back[1]);
    out_ = to[1];
    in_ = back[0];
  }
  ~RawPipe() {
    ::close(out_);
    ::close(in_);
    ::waitpid(pid_, nullptr, 0);
  }
  double round_trip_us(int trips) {
    std::vector<double> us;
    char c = 'x';
    for (int i = 0; i < trips; ++i) {
      const auto t0 = Clock::now();
      if (::write(out_, &c, 1) != 1 || ::read(in_, &c, 1) != 1) std::abort();
      us.push_back(since(t0) * 1e6);
    }
    return median(us);
  }
  double gb_per_s(const std::vector<char>& v) {
    const auto t0 = Clock::now();
    const std::uint64_t n = v.size();
    if (::write(out_, &n, sizeof n) != sizeof n) std::abort();
    for (std::size_t sent = 0; sent < v.size();) {
      const ssize_t k = ::write(out_, v.data() + sent, v.size() - sent);
      if (k <= 0) std::abort();
      sent += static_cast<std::size_t>(k);
    }
    std::uint64_t ack = 0;
    if (::read(in_, &ack, sizeof ack) != sizeof ack || ack != v.size()) std::abort();
    return v.size() / since(t0) / 1e9;
  }

 private:
  static void echo(int in, int out) {
    char c;
    while (::read(in, &c, 1) == 1)
      if (::write(out, &c, 1) != 1) return;
  }

 public:
  // n bytes from the child into a fresh vector, as a result arrives (GB/s).
  double result_gb_per_s(std::uint64_t n) {
    const auto t0 = Clock::now();
    if (::write(out_, &n, sizeof n) != sizeof n) std::abort();
    std::vector<char> v(n);
    for (std::size_t got = 0; got < n;) {
      const ssize_t k = ::read(in_, v.data() + got, n - got);
      if (k <= 0) std::abort();
      got += static_cast<std::size_t>(k);
    }
    return n / since(t0) / 1e9;
  }

 private:
  static void source(int in, int out, bool compute) {
    std::vector<char> buf;
    for (std::uint64_t n; ::read(in, &n, sizeof n) == sizeof n;) {
      if (compute) buf = make_bytes(n);
      else if (buf.size() < n) buf.assign(n, 1);
      for (std::size_t sent = 0; sent < n;) {
        const ssize_t k = ::write(out, buf.data() + sent, n - sent);
        if (k <= 0) return;
        sent += static_cast<std::size_t>(k);
      }
    }
  }
  static void sink(int in, int out) {
    static char buf[1 << 20];  // pure transfer: the reader keeps nothing
    for (std::uint64_t n; ::read(in, &n, sizeof n) == sizeof n;) {
      for (std::uint64_t got = 0; got < n;) {
        const ssize_t k = ::read(in, buf, std::min<std::uint64_t>(sizeof buf, n - got));
        if (k <= 0) return;
        got += static_cast<std::uint64_t>(k);
      }
      if (::write(out, &n, sizeof n) != sizeof n) return;
    }
  }
  pid_t pid_;
  int out_, in_;
};

}  // namespace

int main(int argc, char** argv) {
  parex::init(argc, argv);
  // Before anything big exists.
  RawPipe echo('e', 0), sink_default('s', 0), sink_big('s', 1 << 20), source_big('w', 1 << 20),
      source_computed('m', 1 << 20);
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--json") a.json = true;
    else if (k == "--workers" && i + 1 < argc) a.workers = std::stoul(argv[++i]);
    else if (k == "--repeats" && i + 1 < argc) a.repeats = std::stoi(argv[++i]);
    else if (k == "--only" && i + 1 < argc) a.only = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--workers W] [--repeats R] [--json] [--only abcdeg | f]\n", argv[0]);
      return 2;
    }
  }
  auto want = [&](char c) { return a.only.find(c) != std::string::npos; };
  std::vector<std::string> json;
  auto report = [&](const char* key, const char* label, double value, const char* unit) {
    if (a.json) json.push_back("\"" + std::string(key) + "\": " + std::to_string(value));
    else std::printf("  %-46s %12.2f %s\n", label, value, unit);
  };
  if (!a.json) std::printf("bench_process_pool: %zu workers, median of %d repeats\n", a.workers, a.repeats);

  if (a.only.find('f') != std::string::npos && a.only != "f") {
    std::fprintf(stderr, "(f) runs alone: --only f\n");
    return 2;
  }
  std::optional<parex::ProcessPoolExecutor> main_pool;
  if (a.only != "f") {
    main_pool.emplace(parex::ProcessPoolOptions{.max_workers = a.workers});
    main_pool->submit(tiny, 0).result();  // warm: workers up
  }

  if (want('a')) {
    std::vector<double> r;
    for (int i = 0; i < a.repeats; ++i) r.push_back(tiny_calls_per_s(*main_pool, a.tiny_calls));
    report("submit_calls_per_s", "(a) submit 200k tiny calls, then collect", median(r), "calls/s");
  }
  if (want('b')) {
    std::vector<int> in(a.map_items);
    std::iota(in.begin(), in.end(), 0);
    for (auto& x : in) x %= 40000;
    double best = 0;
    std::size_t best_chunk = 0;
    for (std::size_t chunk : {1000u, 10000u, 50000u, 125000u}) {
      std::vector<double> r;
      for (int i = 0; i < a.repeats; ++i) r.push_back(map_items_per_s(*main_pool, in, chunk));
      const double m = median(r);
      if (!a.json) std::printf("      map chunksize %-7zu %12.0f items/s\n", chunk, m);
      if (m > best) best = m, best_chunk = chunk;
    }
    report("map_items_per_s", ("(b) map over 1M ints, best chunksize " + std::to_string(best_chunk)).c_str(), best,
           "items/s");
  }
  if (want('c')) {
    std::vector<double> r, raw;
    for (int i = 0; i < a.repeats; ++i) {
      r.push_back(round_trip_us(*main_pool, 2000));
      raw.push_back(echo.round_trip_us(2000));
    }
    report("round_trip_us", "(c) round trip on a warm pool", median(r), "us");
    report("raw_pipe_round_trip_us", "    raw pipe ping-pong with a child process", median(raw), "us");
  }
  if (want('g')) {
    std::vector<double> r;
    for (int i = 0; i < a.repeats; ++i) r.push_back(threaded_round_trip_us(*main_pool, 4, 2000));
    report("threaded_round_trip_us", "(g) round trips from 4 threads at once, per call", median(r), "us");
  }
  if (want('d')) {
    std::vector<double> r;
    for (int i = 0; i < std::max(a.repeats, 5); ++i) r.push_back(startup_ms(a.workers));
    report("startup_ms", "(d) pool start-up to first result", median(r), "ms");
  }
  if (want('e')) {
    std::vector<char> v(std::size_t{64} << 20);
    for (std::size_t i = 0; i < v.size(); i += 4096) v[i] = static_cast<char>(i >> 12);
    std::vector<double> ours, raw_default, raw_big;
    // The first 64 MiB call of each worker pays for fresh buffers (page faults, zeroing);
    // after it the pool reuses them. Report it apart, time the steady state.
    const double cold = payload_gb_per_s(*main_pool, v);
    for (std::size_t i = 1; i < a.workers; ++i) payload_gb_per_s(*main_pool, v);
    for (int i = 0; i < a.repeats; ++i) {
      ours.push_back(payload_gb_per_s(*main_pool, v));
      raw_default.push_back(sink_default.gb_per_s(v));
      raw_big.push_back(sink_big.gb_per_s(v));
    }
    const double raw = std::max(median(raw_default), median(raw_big));
    report("payload_gb_per_s", "(e) 64 MiB argument, submit to result", median(ours), "GB/s");
    report("payload_cold_gb_per_s", "    the same, a worker's first such call", cold, "GB/s");
    report("raw_pipe_default_gb_per_s", "    raw pipe, default 64 KiB buffer", median(raw_default), "GB/s");
    report("raw_pipe_1mib_gb_per_s", "    raw pipe, 1 MiB buffer (as parex sets)", median(raw_big), "GB/s");
    report("payload_vs_raw_pipe", "    parex / the faster raw pipe", median(ours) / raw, "x");
  }
  if (want('f')) {
    // Alternating, each round: parex (results through shared memory), parex with every
    // result through its pipe, the same function run by a bare child writing its result
    // to a raw pipe, and a bare child writing 1 GiB it keeps ready. Each parex
    // measurement runs in a fresh process of its own, on a pool warmed by one 1 GiB call
    // (whose worker then has such a call behind it, as in steady use; this process holds
    // no pool in (f)): what one 1 GiB call leaves behind (memory being given back, a
    // fragmented heap) must not land on the next; and every measurement, raw ones too,
    // starts after a pause in which the previous one's gigabyte goes back to the kernel.
    const std::size_t n = std::size_t{1} << 30;
    const auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(700)); };
    auto result_gb_per_s = [&](std::size_t shared_from) {
      int fds[2];
      if (::pipe(fds)) std::abort();
      const pid_t child = ::fork();
      if (child == 0) {
        double gbs = 0;
        {
          parex::ProcessPoolExecutor p{{.max_workers = a.workers, .shared_results_bytes = shared_from}};
          p.submit(make_bytes, n).result();  // warm: a worker's first 1 GiB call also grows its heap
          settle();
          const auto t0 = Clock::now();
          const std::vector<char> v = p.submit(make_bytes, n).result();
          gbs = n / since(t0) / 1e9;
          if (v.size() != n || v[4096 * 5] != 5) std::abort();
        }
        if (::write(fds[1], &gbs, sizeof gbs) != sizeof gbs) std::abort();
        ::_exit(0);
      }
      ::close(fds[1]);
      double gbs = 0;
      if (child < 0 || ::read(fds[0], &gbs, sizeof gbs) != sizeof gbs) std::abort();
      ::close(fds[0]);
      ::waitpid(child, nullptr, 0);
      return gbs;
    };
    std::vector<double> ours, through_pipe, raw_computed, raw;
    for (int i = 0; i < a.repeats; ++i) {
      ours.push_back(result_gb_per_s(parex::ProcessPoolOptions{}.shared_results_bytes));
      through_pipe.push_back(result_gb_per_s(SIZE_MAX));
      settle();
      raw_computed.push_back(source_computed.result_gb_per_s(n));
      settle();
      raw.push_back(source_big.result_gb_per_s(n));
    }
    report("result_1gib_gb_per_s", "(f) 1 GiB result, submit to result", median(ours), "GB/s");
    report("result_1gib_piped_gb_per_s", "    parex, every result through its pipe", median(through_pipe), "GB/s");
    report("raw_pipe_1gib_computed_gb_per_s", "    bare child: make_bytes, then a raw pipe", median(raw_computed), "GB/s");
    report("raw_pipe_1gib_result_gb_per_s", "    raw pipe, 1 GiB ready, into a fresh vector", median(raw), "GB/s");
    report("result_1gib_vs_piped", "    parex / parex through its pipe", median(ours) / median(through_pipe), "x");
    report("result_1gib_vs_raw_computed", "    parex / bare child and raw pipe", median(ours) / median(raw_computed), "x");
    report("result_1gib_vs_raw_pipe", "    parex / the raw pipe (ready bytes)", median(ours) / median(raw), "x");
  }
  if (a.json) {
    std::printf("{");
    for (std::size_t i = 0; i < json.size(); ++i) std::printf("%s%s", i ? ", " : "", json[i].c_str());
    std::printf("}\n");
  }
  return 0;
}
