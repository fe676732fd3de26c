// parex/mp/reduction.hpp - passing a file descriptor to another process over a
// Connection (Python's multiprocessing.reduction.send_handle / recv_handle).
//
//   parex::reduction::send_handle(conn, fd, child_pid);   // the receiver gets its own dup
//   int fd = parex::reduction::recv_handle(conn);           // of the same open file
//
// Over a Unix-socket Connection only (Listener/Client with a Unix address, or
// Connection(fd) over a socketpair): the descriptor travels as SCM_RIGHTS with a message
// of its own, so messages and handles stay in order. A Pipe end cannot carry one (it is
// shared memory, with no socket under it): ValueError says so. The sender keeps its fd
// (close it when done); the receiver owns the one it gets (O_CLOEXEC). Received
// descriptors wait in the connection until recv_handle takes them, at most 64 at a time
// (more from a hostile peer are closed on arrival).
#pragma once

#include <parex/mp/connection.hpp>

#include <sys/types.h>

namespace parex::reduction {

/// Sends a duplicate of fd. destination_pid is Python's argument, unused on Linux.
/// @throws ValueError (not a Unix socket connection), BrokenPipeError.
void send_handle(Connection& conn, int fd, pid_t destination_pid = 0);
/// Receives a descriptor sent by send_handle. @throws ProtocolError if the next message is
/// not a handle, EOFError, ValueError as send_handle.
int recv_handle(Connection& conn);

}  // namespace parex::reduction
