// demo.hpp - the data set and the map of the demo, shared by map_demo.cpp (threads and
// processes) and mpi_map.cpp (MPI ranks): count the primes in blocks of large numbers
// (CPU-bound), through an Executor&, with a progress bar.
#pragma once

#include <parex/executor.hpp>
#include <parex/registry.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

using Block = std::pair<std::uint64_t, std::uint64_t>;  // [first, first + size)

inline std::uint64_t count_primes(Block block) {
  std::uint64_t count = 0;
  for (std::uint64_t n = block.first; n < block.first + block.second; ++n) {
    bool prime = n >= 2 && (n % 2 != 0 || n == 2) && (n % 3 != 0 || n == 3);
    for (std::uint64_t d = 5; prime && d * d <= n; d += 6) prime = n % d != 0 && n % (d + 2) != 0;
    count += prime;
  }
  return count;
}


class ProgressBar {
 public:
  ProgressBar(std::string label, std::size_t total) : label_(std::move(label)), total_(total), tty_(isatty(1)) {
    if (tty_) draw();  // piped output gets only the final line
  }
  void tick() { show(done_ + 1, 0); }
  // done items of total so far, failed of them (MapOptions::on_progress calls this).
  void show(std::size_t done, std::size_t failed) {
    done_ = done;
    failed_ = failed;
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
    if (failed_) std::printf(" (%zu failed)", failed_);
    std::fflush(stdout);
  }
  std::string label_;
  std::size_t total_, done_ = 0, failed_ = 0;
  bool tty_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

// The one piece of code every backend runs: only the Executor& changes. The bar moves as
// blocks complete (MapOptions::on_progress), not only as the loop reaches them.
inline std::uint64_t run(parex::Executor& ex, const std::string& label, const std::vector<Block>& blocks, double& seconds) {
  ProgressBar bar(label, blocks.size());
  std::uint64_t total = 0;
  parex::MapOptions options{.on_progress = [&bar](const parex::MapProgress& p) { bar.show(p.done, p.failed); },
                            .progress_interval = std::chrono::milliseconds(50)};
  for (std::uint64_t primes : ex.map(count_primes, blocks, options)) total += primes;
  seconds = bar.finish();
  return total;
}

// What the executor says of its workers (Executor::stats), where it keeps statistics.
inline void print_stats(parex::Executor& ex, const char* name) {
  try {
    const parex::ExecutorStats s = ex.stats();
    std::printf("%-22s %zu calls done, %zu failed, %zu workers restarted; per worker:", name, s.done, s.failed,
                s.restarts);
    for (const parex::WorkerStats& w : s.workers) std::printf(" %zu", w.calls);
    std::printf("\n");
  } catch (const parex::InvalidStateError&) {  // MpiExecutor keeps none
  }
}

struct DemoInput {
  std::vector<Block> blocks;
  std::size_t workers = 0;
};

// [--blocks N] [--block-size S] [--workers W]; prints what it will do.
inline DemoInput demo_input(const char* name, int argc, char** argv, std::size_t workers) {
  std::size_t n_blocks = 48;
  std::uint64_t block_size = 40'000, first = 1'000'000'000ull;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--blocks") n_blocks = std::stoul(argv[i + 1]);
    else if (k == "--block-size") block_size = std::stoull(argv[i + 1]);
    else if (k == "--workers") workers = std::stoul(argv[i + 1]);
  }
  DemoInput in;
  in.workers = workers;
  for (std::size_t b = 0; b < n_blocks; ++b) in.blocks.emplace_back(first + b * block_size, block_size);
  std::printf("%s: count primes in %zu blocks of %llu numbers from %llu, %zu workers\n", name, n_blocks,
              static_cast<unsigned long long>(block_size), static_cast<unsigned long long>(first), workers);
  return in;
}

// The serial loop every backend is checked against.
inline std::uint64_t run_serial(const std::vector<Block>& blocks, double& seconds) {
  ProgressBar bar("serial loop", blocks.size());
  std::uint64_t total = 0;
  for (const Block& b : blocks) {
    total += count_primes(b);
    bar.tick();
  }
  seconds = bar.finish();
  std::printf("\n");
  return total;
}
