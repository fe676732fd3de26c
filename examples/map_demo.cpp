// map_demo: count the primes in blocks of large numbers (CPU-bound), first with a plain
// serial loop, then on each backend through the same Executor& code, with a progress
// bar; prints wall times and a speed-up table.
//   map_demo [--blocks N] [--block-size S] [--workers W]
#include <parex/parex.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

using Block = std::pair<std::uint64_t, std::uint64_t>;  // [first, first + size)

std::uint64_t count_primes(Block block) {
  std::uint64_t count = 0;
  for (std::uint64_t n = block.first; n < block.first + block.second; ++n) {
    bool prime = n >= 2 && (n % 2 != 0 || n == 2) && (n % 3 != 0 || n == 3);
    for (std::uint64_t d = 5; prime && d * d <= n; d += 6) prime = n % d != 0 && n % (d + 2) != 0;
    count += prime;
  }
  return count;
}
PAREX_REGISTER(count_primes);  // so that the process backend can ship it by name

class ProgressBar {
 public:
  ProgressBar(std::string label, std::size_t total) : label_(std::move(label)), total_(total), tty_(isatty(1)) {
    if (tty_) draw();  // piped output gets only the final line
  }
  void tick() {
    ++done_;
    if (tty_ || done_ == total_) draw();
  }
  double finish() {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    std::printf("  %6.2f s", s);
    return s;
  }

 private:
  void draw() {
    const std::size_t width = 30, filled = total_ ? done_ * width / total_ : width;
    std::printf("\r%-28s [%s%s] %zu/%zu", label_.c_str(), std::string(filled, '#').c_str(),
                std::string(width - filled, ' ').c_str(), done_, total_);
    std::fflush(stdout);
  }
  std::string label_;
  std::size_t total_, done_ = 0;
  bool tty_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

// The one piece of code every backend runs: only the Executor& changes.
std::uint64_t run(parex::Executor& ex, const std::string& label, const std::vector<Block>& blocks, double& seconds) {
  ProgressBar bar(label, blocks.size());
  std::uint64_t total = 0;
  for (std::uint64_t primes : ex.map(count_primes, blocks)) {
    total += primes;
    bar.tick();
  }
  seconds = bar.finish();
  return total;
}

int main(int argc, char** argv) {
  parex::init(argc, argv);  // worker processes branch off here
  std::size_t n_blocks = 48, workers = parex::process_cpu_count();
  std::uint64_t block_size = 40'000, first = 1'000'000'000ull;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--blocks") n_blocks = std::stoul(argv[i + 1]);
    else if (k == "--block-size") block_size = std::stoull(argv[i + 1]);
    else if (k == "--workers") workers = std::stoul(argv[i + 1]);
  }
  std::vector<Block> blocks;
  for (std::size_t b = 0; b < n_blocks; ++b) blocks.emplace_back(first + b * block_size, block_size);
  std::printf("map_demo: count primes in %zu blocks of %llu numbers from %llu, %zu workers\n", n_blocks,
              static_cast<unsigned long long>(block_size), static_cast<unsigned long long>(first), workers);

  double serial_s = 0;
  std::uint64_t serial_total = 0;
  {
    ProgressBar bar("serial loop", blocks.size());
    for (const Block& b : blocks) {
      serial_total += count_primes(b);
      bar.tick();
    }
    serial_s = bar.finish();
    std::printf("\n");
  }

  parex::ThreadPoolExecutor threads{{.max_workers = workers}};
  parex::ProcessPoolExecutor processes{{.max_workers = workers}};
  struct Row {
    const char* name;
    parex::Executor& ex;
    double seconds = 0;
    std::uint64_t total = 0;
  };
  Row rows[] = {{"ThreadPoolExecutor", threads}, {"ProcessPoolExecutor", processes}};
  for (Row& r : rows) {
    r.total = run(r.ex, r.name, blocks, r.seconds);
    std::printf("  %5.2fx\n", serial_s / r.seconds);
  }

  std::printf("\n%-22s %10s %10s\n", "backend", "wall time", "speed-up");
  std::printf("%-22s %9.2fs %9.2fx\n", "serial loop", serial_s, 1.0);
  bool agree = true;
  for (const Row& r : rows) {
    std::printf("%-22s %9.2fs %9.2fx\n", r.name, r.seconds, serial_s / r.seconds);
    agree = agree && r.total == serial_total;
  }
  std::printf("primes found: %llu (%s)\n", static_cast<unsigned long long>(serial_total),
              agree ? "all runs agree" : "MISMATCH");
  return agree ? 0 : 1;
}
