// mpi/launch.hpp - MPI's life in this process: parex::init's MPI branch (enter), the world
// communicator, and the end of the job at exit. Rank 0 initialises MPI in init, runs main,
// and at exit stops the engine, tells every worker rank to stop, and finalizes. Every
// other rank runs the worker loop (worker_rank.cpp) and never returns to main.
#pragma once

#include <boost/mpi/communicator.hpp>

namespace parex::detail::mpi {

/// True if an MPI launcher started this process (its environment says so).
bool launched_by_environment() noexcept;
/// MPI_COMM_WORLD once parex::init ran under an MPI launch; nullptr otherwise.
const boost::mpi::communicator* world() noexcept;
/// parex::init's MPI branch (worker/mpi_entry.hpp): initialises MPI under an MPI launch;
/// in a worker rank runs the worker loop and exits.
void enter(int argc, char** argv);
/// The worker loop of ranks 1..N-1 (worker_rank.cpp).
[[noreturn]] void run_worker_rank(const boost::mpi::communicator& world);
/// A worker rank's end: MPI_Finalize, then exit(code).
[[noreturn]] void finalize_and_exit(int code);

}  // namespace parex::detail::mpi
