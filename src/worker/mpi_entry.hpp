// worker/mpi_entry.hpp - the one hook by which parex::init reaches the optional MPI
// backend without the core library depending on MPI. src/mpi/ sets it during static
// initialisation (in the file that defines MpiExecutor, so that every program using
// MpiExecutor links it); init calls it last. Under an MPI launch it initialises MPI and,
// in every rank but 0, runs the worker loop and never returns.
#pragma once

namespace parex::detail {

extern void (*mpi_entry)(int argc, char** argv);

}  // namespace parex::detail
