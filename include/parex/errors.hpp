// parex/errors.hpp - the error hierarchy, shaped like Python's concurrent.futures.
//
//   Error (std::runtime_error)
//   ├── CancelledError          the future was cancelled
//   ├── TimeoutError            a wait ran out of time
//   ├── InvalidStateError       an operation not allowed in the current state
//   ├── BrokenExecutor          the executor can no longer run work
//   │   ├── BrokenThreadPool    (an initializer failed)
//   │   └── BrokenProcessPool   (a worker process died, or its initializer failed)
//   │       └── WorkerCrashed   the worker running this very call died
//   ├── RemoteError             an exception of an unregistered type, carried from a worker
//   ├── UnregisteredFunction    a function the process backend cannot name
//   ├── ProtocolError           a corrupt, truncated or oversized frame
//   ├── NotSerializable         a value that cannot be encoded or decoded
//   ├── ValueError              a value out of its range (a semaphore released past its bound, ...)
//   ├── SharedObjectError       a shared object a handle names can no longer be reached
//   ├── Full, Empty             a queue's put or get ran out of time (Python's queue.Full/Empty)
//   ├── EOFError                a Connection's other end is closed and nothing is left
//   └── BrokenBarrierError      a Barrier was aborted, reset, timed out, or lost a party
//
// Python's OSError is C++'s std::system_error (parex throws it wherever the system says
// no); its subclasses that parex raises derive from it, with their errno:
//   std::system_error (OSError)
//   ├── FileExistsError         EEXIST: SharedMemory(name, true, size) of a name taken
//   └── FileNotFoundError       ENOENT: SharedMemory(name) of a name nothing has
//
// All are plain value types, safe to copy and to throw from any thread.
#pragma once

#include <cerrno>
#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>
#include <sys/types.h>

namespace parex {

/// Base of every error parex throws (Python: concurrent.futures.Error / RuntimeError).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The future was cancelled before it ran.
class CancelledError : public Error {
 public:
  CancelledError() : Error("the future was cancelled") {}
  using Error::Error;
};

/// A wait (result, exception, wait, as_completed, map) ran past its timeout.
class TimeoutError : public Error {
 public:
  using Error::Error;
};

/// An operation that the object's current state does not allow
/// (a second set_result, submit after shutdown, ...).
class InvalidStateError : public Error {
 public:
  using Error::Error;
};

/// The executor cannot run work any more.
class BrokenExecutor : public Error {
 public:
  using Error::Error;
};

/// A ThreadPoolExecutor whose initializer failed.
class BrokenThreadPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
};

/// A ProcessPoolExecutor that lost a worker or could not start one.
class BrokenProcessPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
};

/// The worker process running this call died; names the pid, the signal or exit code
/// and the function. Only the call that was running fails with it: the pool goes on.
class WorkerCrashed : public BrokenProcessPool {
 public:
  WorkerCrashed(std::string message, pid_t pid, int signal, int exit_code, std::string function)
      : BrokenProcessPool(std::move(message)),
        pid_(pid), signal_(signal), exit_code_(exit_code), function_(std::move(function)) {}
  pid_t pid() const noexcept { return pid_; }
  /// The signal that killed the worker, or 0 if it exited.
  int signal() const noexcept { return signal_; }
  /// The worker's exit code, or -1 if a signal killed it.
  int exit_code() const noexcept { return exit_code_; }
  const std::string& function() const noexcept { return function_; }

 private:
  pid_t pid_;
  int signal_;
  int exit_code_;
  std::string function_;
};

/// An exception thrown in a worker whose type is not registered with
/// PAREX_REGISTER_EXCEPTION: its type name and what() travel, the type does not.
class RemoteError : public Error {
 public:
  RemoteError(std::string type, const std::string& what)
      : Error(type + ": " + what), type_(std::move(type)), remote_what_(what) {}
  /// The demangled name of the exception type thrown in the worker.
  const std::string& type() const noexcept { return type_; }
  /// The remote exception's own what(), without the type prefix.
  const std::string& remote_what() const noexcept { return remote_what_; }

 private:
  std::string type_;
  std::string remote_what_;
};

/// A function that the process backend cannot ship by name; the message lists
/// the registered names nearest to the one asked for.
class UnregisteredFunction : public Error {
 public:
  using Error::Error;
};

/// A frame that is corrupt, truncated, oversized or from another protocol version.
class ProtocolError : public Error {
 public:
  using Error::Error;
};

/// A value that cannot be encoded or decoded; when a codec threw, the original
/// exception is nested (std::rethrow_if_nested reaches it).
class NotSerializable : public Error {
 public:
  using Error::Error;
};

/// A value out of range for the operation (Python's ValueError): releasing a lock this
/// thread does not hold, a BoundedSemaphore released past its bound.
class ValueError : public Error {
 public:
  using Error::Error;
};

/// The shared object (Lock, Value, Array, SharedMemory, ...) a handle refers to can no
/// longer be reached: every process that held it closed it before this one attached, or
/// the bytes are not a handle of this build.
class SharedObjectError : public Error {
 public:
  using Error::Error;
};

/// A queue's put found it full past the timeout (Python's queue.Full).
class Full : public Error {
 public:
  Full() : Error("the queue is full") {}
  using Error::Error;
};

/// A queue's get found it empty past the timeout (Python's queue.Empty).
class Empty : public Error {
 public:
  Empty() : Error("the queue is empty") {}
  using Error::Error;
};

/// A Connection's other end is closed and no message is left (Python's EOFError).
class EOFError : public Error {
 public:
  EOFError() : Error("the other end of the connection is closed") {}
  using Error::Error;
};

/// A key a Manager dict does not hold (Python's KeyError).
class KeyError : public Error {
 public:
  using Error::Error;
};

/// An index out of a Manager list's range (Python's IndexError).
class IndexError : public Error {
 public:
  using Error::Error;
};

/// A Namespace attribute that was never set (Python's AttributeError).
class AttributeError : public Error {
 public:
  using Error::Error;
};

/// The Manager server cannot be reached: it ended, was killed, or never listened at that
/// address (Python's ConnectionError family: BrokenPipeError, ConnectionRefusedError).
class ConnectionError : public Error {
 public:
  using Error::Error;
};

/// A Queue that was shut down: put() at once, get() once it is empty (Python 3.13's
/// queue.ShutDown).
class ShutDown : public Error {
 public:
  ShutDown() : Error("the queue was shut down") {}
  using Error::Error;
};

/// JoinableQueue::join(): a consumer process died between get() and task_done(), so the
/// count can never reach zero (Python's join() would wait for ever). Names the process
/// and how many task_done() calls it owed.
class ConsumerDiedError : public Error {
 public:
  ConsumerDiedError(long pid, unsigned long owed)
      : Error("a JoinableQueue's consumer, process " + std::to_string(pid) + ", died owing " +
              std::to_string(owed) + " task_done() call(s): join() would wait for ever"),
        pid_(pid), owed_(owed) {}
  explicit ConsumerDiedError(const std::string& what) : Error(what) {}
  /// The consumer that died (0 when rebuilt from another process's message).
  long pid() const noexcept { return pid_; }
  /// The task_done() calls it owed.
  unsigned long owed() const noexcept { return owed_; }

 private:
  long pid_ = 0;
  unsigned long owed_ = 0;
};

/// A send on a connection whose other end no live process holds (Python's BrokenPipeError).
class BrokenPipeError : public ConnectionError {
 public:
  BrokenPipeError() : ConnectionError("the other end of the pipe is gone") {}
  using ConnectionError::ConnectionError;
};

/// Connection::recv_bytes_into: the message is longer than the buffer's room past the
/// offset (Python's multiprocessing.BufferTooShort). message() holds the whole message,
/// already received (empty when rebuilt from another process's message).
class BufferTooShort : public Error {
 public:
  using Error::Error;
  BufferTooShort(const std::string& what, std::vector<std::byte> message) : Error(what), message_(std::move(message)) {}
  const std::vector<std::byte>& message() const noexcept { return message_; }

 private:
  std::vector<std::byte> message_;
};

/// The other side of a Manager or connection::Listener/Client does not know the authkey
/// (multiprocessing.AuthenticationError).
class AuthenticationError : public Error {
 public:
  using Error::Error;
};

/// A Barrier that was aborted, reset, timed out or lost a party (threading.BrokenBarrierError).
class BrokenBarrierError : public Error {
 public:
  BrokenBarrierError() : Error("the barrier is broken") {}
  using Error::Error;
};

/// Python's OSError: C++'s std::system_error, under the name a Python user looks for.
using OSError = std::system_error;

/// A name that is taken (Python's FileExistsError): code() is EEXIST, what() is
/// "<what>: File exists". catch (const std::system_error&) catches it too.
class FileExistsError : public std::system_error {
 public:
  explicit FileExistsError(const std::string& what) : std::system_error(EEXIST, std::generic_category(), what) {}
};

/// A name that nothing has (Python's FileNotFoundError): code() is ENOENT, what() is
/// "<what>: No such file or directory". catch (const std::system_error&) catches it too.
class FileNotFoundError : public std::system_error {
 public:
  explicit FileNotFoundError(const std::string& what) : std::system_error(ENOENT, std::generic_category(), what) {}
};

namespace detail {
/// "type: what" for messages: the demangled dynamic type of e, then its what().
std::string describe_exception(const std::exception_ptr& e);
std::string demangle(const char* mangled);
}  // namespace detail

}  // namespace parex
