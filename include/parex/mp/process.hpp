// parex/mp/process.hpp - Process: run a registered function in a child process (Python's
// multiprocessing.Process), and the module functions around it.
//
//   void greet(std::string who) { std::printf("hello %s\n", who.c_str()); }
//   PAREX_REGISTER(greet);
//   int main(int argc, char** argv) {
//     parex::init(argc, argv);                 // the child branches here, runs greet, exits
//     parex::Process p(greet, std::string("bob"));
//     p.start();
//     p.join();                                // p.exitcode() == 0
//   }
//
// The child is this program re-executed, as pool workers are (start method "spawn", but
// without pickling: the function travels by registered name, its arguments encoded; a
// Lock, Value, Queue, ... arrives as a handle to the same object). It shares the parent's
// stdout and stderr. exitcode(): empty until the child ends; then 0, or N for exit(N), or
// -signal if a signal killed it, or 1 if the function threw (its type and what() are
// printed on the child's stderr, as Python prints the traceback).
//
// daemon children are stopped when the parent exits: at a normal exit (SIGTERM, then
// SIGKILL after a second), and also when the parent is killed (the child watches it).
// Other children are joined at a normal exit, as in Python.
//
// A Process is move-only; join and the queries are thread-safe.
#pragma once

#include <parex/detail/mp/segment.hpp>
#include <parex/detail/remote/remote_call.hpp>
#include <parex/errors.hpp>
#include <parex/registry.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace parex {

/// What current_process(), parent_process() and active_children() tell about a process.
struct ProcessInfo {
  std::string name;
  pid_t pid = 0;
};

class Process {
 public:
  /// A child that will run fn(args...): fn registered with PAREX_REGISTER, the arguments
  /// serializable (compile-time checks as for ProcessPoolExecutor::submit). Nothing starts
  /// until start(). @throws UnregisteredFunction, NotSerializable.
  template <class F, class... A>
  explicit Process(F&& fn, A&&... args) : Process(Unstarted{}) {
    using C = detail::Remotable<F, A...>;
    static_assert(C::shape_ok && C::stateless && C::has_signature,
                  "parex::Process: the target must be a registered function (PAREX_REGISTER) or a registered "
                  "stateless function object");
    static_assert(C::Args::arity, "parex::Process: the number of arguments does not match the function's parameters");
    static_assert(C::Args::convertible, "parex::Process: an argument is not convertible to its parameter type");
    static_assert(C::Args::serializable, "parex::Process: " PAREX_DETAIL_SERIALIZABLE_FIX);
    const detail::FunctionEntry& e = detail::lookup_function(fn);
    detail::Buffer b;
    try {
      detail::encode_item(b, typename detail::SignatureOf<std::remove_cvref_t<F>>::params{}, std::forward<A>(args)...);
    } catch (...) {
      detail::throw_encode_error(e);
    }
    set_call(e, b);
  }
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  ~Process();

  /// "Process-N" unless set before start().
  std::string name;
  /// Stop the child when this program exits (read by start()).
  bool daemon = false;

  /// Starts the child. @throws InvalidStateError if started before or closed;
  /// std::system_error if the system refuses a process.
  void start();
  /// Waits for the child to end. @throws InvalidStateError if it was never started.
  void join();
  /// Waits at most `timeout`; false if it still runs.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return join_for(detail::clamp_timeout(timeout));
  }
  bool is_alive() const;
  /// SIGTERM / SIGKILL to a child still running; nothing if it ended.
  void terminate();
  void kill();
  /// Releases the child's resources. @throws ValueError if it still runs.
  void close();
  /// The child's pid; 0 before start().
  pid_t pid() const;
  std::optional<int> exitcode() const;

  struct State;

 private:
  struct Unstarted {};
  explicit Process(Unstarted);
  void set_call(const detail::FunctionEntry& e, const detail::Buffer& args);
  bool join_for(std::chrono::nanoseconds timeout);
  State& state() const;
  std::shared_ptr<State> state_;
};

/// This process: "MainProcess" in the program, the Process's name in a child.
ProcessInfo current_process();
/// The process that started this one as a Process; empty in the main program.
std::optional<ProcessInfo> parent_process();
/// The children started by this process that are still running (reaps those that ended).
std::vector<ProcessInfo> active_children();
/// All CPUs of the machine (Python's multiprocessing.cpu_count); see process_cpu_count()
/// for those this process may use.
std::size_t cpu_count() noexcept;

}  // namespace parex
