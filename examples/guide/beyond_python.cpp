// docs/06-beyond-python.md: deadlines, interrupts, retries, a map's progress, statistics,
// continuations: what no Python pool offers, on the same Executor interface.
#include <parex/parex.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

struct Flaky : std::runtime_error {
  using std::runtime_error::runtime_error;
};
PAREX_REGISTER_EXCEPTION(Flaky);

int solve(int puzzle) { return puzzle * 2; }
PAREX_REGISTER(solve);

std::string fetch(std::string url) {  // slow: long enough to be interrupted while it runs
  std::this_thread::sleep_for(std::chrono::seconds(20));
  return "fetched " + url;
}
PAREX_REGISTER(fetch);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  const int puzzle = 21;
  const std::string url = "https://example.org/";
  const std::vector<int> puzzles{1, 2, 3, 4, 5};
  int solved = 0;

  using namespace std::chrono_literals;
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  auto f = pool.submit(parex::CallOptions{.timeout = 100ms}, solve, puzzle);  // TimeoutError past 100 ms
  auto g = pool.submit(parex::CallOptions{.retries = 3, .retry = {.error = parex::exception_is<Flaky>}}, fetch, url);
  g.interrupt();                                   // stops it even while it runs: CancelledError
  for (auto y : pool.map(solve, puzzles, {.call_timeout = 1s, .interrupt_on_exit = true,
                                          .on_progress = [](const parex::MapProgress& p) {
                                            std::printf("\r%zu/%zu, %zu failed", p.done, *p.total, p.failed);
                                          }})) { solved += y; }
  parex::ExecutorStats s = pool.stats();           // queued, running, done, failed, restarts, per worker

  std::printf("\n");
  if (f.result() != 42 || solved != 30) return 1;
  try {
    g.result();
    return 2;
  } catch (const parex::CancelledError&) {
  }
  if (s.workers.size() > 2) return 3;

  parex::Future<int> n = pool.submit(solve, puzzle);
  parex::Future<std::string> text = n.then([](int v) { return std::to_string(v); });  // on the completing thread
  auto all = parex::when_all(std::vector{pool.submit(solve, 1), pool.submit(solve, 2)});   // Future<std::vector<Future<int>>>
  auto first = parex::when_any(std::vector{pool.submit(solve, 3), pool.submit(solve, 4)});  // Future<WhenAnyResult<int>>
  std::printf("%s; %zu done; #%zu first\n", text.result().c_str(), all.result().size(), first.result().index);

  return text.result() == "42" && all.result().at(1).result() == 4 ? 0 : 4;
}
