// MpiExecutor: the facade over the engine (engine.hpp).
#include <parex/mpi.hpp>

#include "mpi/engine.hpp"
#include "mpi/launch.hpp"

#include <parex/errors.hpp>

#include <string>

namespace parex {

namespace {
constexpr auto min_watchdog = std::chrono::milliseconds(1000);

std::size_t checked_workers(const MpiOptions& o) {
  if (!initialized()) throw InvalidStateError("MpiExecutor: call parex::init(argc, argv) first in main");
  if (!detail::mpi::world())
    throw InvalidStateError("MpiExecutor: this program was not started by an MPI launcher: run it as "
                            "`mpirun -np 3 ./app` (rank 0 runs main, the other ranks are the workers)");
  if (mpi::rank() != 0)
    throw InvalidStateError("MpiExecutor: only rank 0 has worker ranks; in a worker rank (a registered function) "
                            "use a ThreadPoolExecutor or a ProcessPoolExecutor");
  const auto ranks = static_cast<std::size_t>(mpi::world_size()) - 1;
  if (ranks == 0)
    throw InvalidStateError("MpiExecutor: the MPI job has only rank 0; start it with at least 2 ranks "
                            "(mpirun -np N, N >= 2)");
  if (o.max_workers > ranks)
    throw ValueError("MpiExecutor: max_workers is " + std::to_string(o.max_workers) + " but the MPI job has " +
                     std::to_string(ranks) + " worker ranks");
  return o.max_workers ? o.max_workers : ranks;
}
}  // namespace

struct MpiExecutor::Impl {
  std::shared_ptr<detail::mpi::Client> client;
  detail::mpi::Engine* engine = nullptr;
  std::size_t workers = 0;
};

MpiExecutor::MpiExecutor(MpiOptions options) : Executor(true), impl_(std::make_shared<Impl>()) {
  impl_->workers = checked_workers(options);
  const detail::FunctionEntry* init_fn = nullptr;
  if (options.initializer) {
    init_fn = detail::Registry::global().by_pointer(options.initializer.function());
    if (!init_fn) detail::throw_unregistered(options.initializer.function(), nullptr);
  }
  impl_->client = std::make_shared<detail::mpi::Client>(impl_->workers, std::max(options.watchdog, min_watchdog),
                                                        init_fn, options.initializer.encoded_args());
  detail::set_interrupt_hook(&detail::mpi::Engine::interrupt);
  impl_->engine = &detail::mpi::Engine::get();
  impl_->engine->attach(impl_->client);
}

MpiExecutor::~MpiExecutor() {
  end_map_ranges();
  try {
    do_shutdown(true, false);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parex: MpiExecutor destroyed from its own progress thread: %s\n", e.what());
    std::abort();
  }
}

std::size_t MpiExecutor::max_workers() const noexcept { return impl_->workers; }

std::size_t MpiExecutor::adaptive_chunk(const detail::FunctionEntry& fn) const noexcept {
  return impl_->engine->chunk_for(fn);
}

void MpiExecutor::dispatch(detail::LocalTask*) {
  throw InvalidStateError("an MpiExecutor runs registered functions in worker ranks, not local tasks");
}

void MpiExecutor::dispatch_remote(detail::RemoteCall* call) {
  call->owner = impl_->client.get();  // for Future::interrupt (interrupts.cpp)
  call->driver = impl_->engine;       // a thread waiting for it may run the loop (Engine::drive)
  impl_->engine->submit(*impl_->client, call);
}

ExecutorStats MpiExecutor::stats() { return impl_->engine->stats(impl_->client); }

void MpiExecutor::do_shutdown(bool wait, bool cancel_futures) {
  impl_->engine->close(impl_->client, cancel_futures);
  if (!wait) return;
  if (impl_->engine->on_progress_thread())
    throw InvalidStateError("shutdown(wait=true) called from the MPI progress thread (a done callback) would wait "
                            "for itself");
  detail::mpi::Client& c = *impl_->client;
  std::unique_lock lock(c.mutex);
  c.cv.wait(lock, [&] { return c.finished; });
}

}  // namespace parex
