// MPI's life in this process (see launch.hpp).
#include "mpi/launch.hpp"

#include "mpi/engine.hpp"
#include "mpi/transport.hpp"
#include "worker/mpi_entry.hpp"

#include <parex/errors.hpp>
#include <parex/mpi.hpp>

#include <boost/mpi/environment.hpp>

#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

namespace parex::detail::mpi {

namespace {

// Set during static initialisation, before main calls parex::init: this file is linked
// into every program that uses MpiExecutor or parex::mpi (they reference it).
[[maybe_unused]] const bool hooked = (mpi_entry = &enter, true);

// Leaked on purpose: MPI is finalized by at_exit (rank 0) or before exit (worker ranks),
// never by a static destructor racing the engine's thread.
bmpi::environment* g_environment = nullptr;
// parex's own communicator: a duplicate of MPI_COMM_WORLD, so that the program's own MPI
// messages (any tag, any source) never mix with parex's.
bmpi::communicator* g_world = nullptr;
// This rank and the world's size, read once: MPI_Comm_rank from a user's thread would be an
// MPI call racing the progress thread's (MPI_THREAD_SERIALIZED).
int g_rank = 0;
int g_size = 1;

void finalize() {
  delete g_world;
  g_world = nullptr;
  delete g_environment;  // MPI_Finalize
  g_environment = nullptr;
}

// A rank that was lost may never reach MPI_Finalize, which waits for every rank: rank 0
// gives it this long, then leaves without finalizing (mpirun then ends the job and says so).
constexpr auto finalize_grace = std::chrono::seconds(10);

// Rank 0, at exit: the engine finishes what it holds; every worker rank is told to stop;
// MPI is finalized.
void at_exit() {
  const bool every_rank_answered = Engine::stop_if_started();
  if (!every_rank_answered) {  // the timer starts first: even a stop message may not complete
    std::thread([] {
      std::this_thread::sleep_for(finalize_grace);
      std::fprintf(stderr, "parex: a lost MPI worker rank did not finalize; leaving without MPI_Finalize\n");
      std::_Exit(1);
    }).detach();
  }
  std::vector<bmpi::request> stops;
  char none = 0;
  for (int r = 1; r < g_size; ++r) stops.push_back(g_world->isend(r, stop, &none, 0));
  for (auto& s : stops) s.wait();  // empty messages: they complete without the receiver
  finalize();
}

}  // namespace

bool launched_by_environment() noexcept {
  // Open MPI's mpirun, MPICH's hydra (PMI), Slurm's srun with PMI-2 or PMIx.
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

const bmpi::communicator* world() noexcept { return g_world; }

void finalize_and_exit(int code) {
  finalize();
  std::exit(code);
}

void enter(int argc, char** argv) {
  if (g_environment || !launched_by_environment()) return;
  if (bmpi::environment::initialized())
    throw InvalidStateError("MPI is already initialized: parex::init(argc, argv) must come first in main and "
                            "initializes MPI itself (MPI_THREAD_SERIALIZED); then use MPI freely");
  // One thread at a time makes MPI calls: the main thread (init, finalize) and the
  // engine's progress thread in between; in a worker rank, its loop and its heartbeat
  // thread under one mutex.
  g_environment = new bmpi::environment(argc, argv, bmpi::threading::serialized, true);
  if (g_environment->thread_level() < bmpi::threading::serialized) {
    std::fprintf(stderr, "parex: this MPI library does not support MPI_THREAD_SERIALIZED\n");
    bmpi::communicator().abort(1);
  }
  // Collective: every rank of the job must reach parex::init (a rank that runs another
  // program, in an MPMD launch, would hold every rank here).
  g_world = new bmpi::communicator(bmpi::communicator(), bmpi::comm_duplicate);
  g_rank = g_world->rank();
  g_size = g_world->size();
  if (g_rank != 0) run_worker_rank(*g_world);
  std::atexit(at_exit);
}

}  // namespace parex::detail::mpi

namespace parex::mpi {

bool launched() noexcept { return detail::mpi::launched_by_environment(); }
int rank() noexcept { return detail::mpi::g_rank; }
int world_size() noexcept { return detail::mpi::g_size; }

}  // namespace parex::mpi
