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
#include <type_traits>
#include <typeinfo>
#include <vector>

namespace parex {

/// What current_process(), parent_process() and active_children() tell about a process.
struct ProcessInfo {
  std::string name;
  pid_t pid = 0;
  /// current_process(): whether this process is a daemon child.
  bool daemon = false;
  /// current_process(): this process's authkey (32 random bytes in the main program; a
  /// child inherits its Process's). Empty in the others.
  std::string authkey;
  /// Always empty: the process has not ended (current_process(), active_children()) or
  /// its exit status is not ours to know (parent_process()), as in Python.
  std::optional<int> exitcode;

  /// Whether the process still runs (a zombie has ended).
  bool is_alive() const;
  /// Waits until the process ends (parent_process().join(timeout), as Python's); false
  /// if it still runs when the timeout is over.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) const {
    return join_for(detail::clamp_timeout(timeout));
  }
  void join() const { join_for(detail::no_timeout); }

 private:
  bool join_for(std::chrono::nanoseconds timeout) const;
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
      detail::PinCapture capture(call_pins());  // released when the child ends (see segment.hpp)
      detail::encode_item(b, typename detail::SignatureOf<std::remove_cvref_t<F>>::params{}, std::forward<A>(args)...);
    } catch (...) {
      detail::throw_encode_error(e);
    }
    set_call(e, b);
  }
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  virtual ~Process();

  /// What the child runs, for a subclass (Python's run()): override it, give the class a
  /// serialize() for the members the child needs, and PAREX_REGISTER_PROCESS(Class) it.
  /// The child gets a default-constructed object whose members were decoded.
  virtual void run() {}

  /// "Process-N" unless set before start().
  std::string name;
  /// Stop the child when this program exits (read by start()). By default the creating
  /// process's own flag: a Process made inside a daemon child is a daemon (Python's).
  bool daemon = false;
  /// The child's current_process().authkey (read by start()); by default this process's.
  std::string authkey;

  // After close(), every member below but close() throws ValueError (Python's).

  /// Starts the child. @throws InvalidStateError if started before; ValueError if closed;
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
  /// SIGTERM / SIGKILL / SIGINT (Python 3.14's interrupt()) to a child still running;
  /// nothing if it ended.
  void terminate();
  void kill();
  void interrupt();
  /// Releases the child's resources; closing twice is harmless. @throws ValueError if
  /// it still runs.
  void close();
  /// The child's pid; 0 before start().
  pid_t pid() const;
  std::optional<int> exitcode() const;
  /// A descriptor that polls readable once the child has ended (its pidfd; Python's
  /// sentinel), for connection::wait or poll(2). Owned by this Process: do not close it;
  /// valid until close() or destruction. @throws ValueError if not started or closed.
  int sentinel() const;

  struct State;

 protected:
  /// For subclasses (see run()).
  Process() : Process(Unstarted{}) {}

 private:
  struct Unstarted {};
  explicit Process(Unstarted);
  void set_call(const detail::FunctionEntry& e, const detail::Buffer& args);
  std::vector<std::weak_ptr<detail::Segment>>& call_pins();
  bool join_for(std::chrono::nanoseconds timeout);
  State& state() const;
  std::shared_ptr<State> state_;
};

namespace detail {
/// How start() sends a Process subclass: PAREX_REGISTER_PROCESS fills it in.
struct ProcessClass {
  void (*encode)(const Process& self, Buffer& out);
  const FunctionEntry& (*entry)();
};
void register_process_class(const std::type_info& type, ProcessClass c) noexcept;
const ProcessClass* find_process_class(const std::type_info& type) noexcept;

/// The registered function behind PAREX_REGISTER_PROCESS(T): runs a decoded T.
template <class T>
struct RunProcess {
  void operator()(T process) const { process.run(); }
};

template <class T>
struct ProcessClassRegistration {
  ProcessClassRegistration() {
    static_assert(std::is_base_of_v<Process, T>, "PAREX_REGISTER_PROCESS: T must derive from parex::Process");
    static_assert(Serializable<T>, "PAREX_REGISTER_PROCESS: give T a serialize(Archive&, unsigned) member for the "
                                   "members its child needs (an empty one if none)");
    register_process_class(typeid(T), {[](const Process& self, Buffer& out) {
                                         encode_item(out, TypeList<T>{}, static_cast<const T&>(self));
                                       },
                                       []() -> const FunctionEntry& { return lookup_function(RunProcess<T>{}); }});
  }
};
}  // namespace detail

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

/// Registers a Process subclass T so that start() can run it in a child: T's members travel
/// by its serialize(), and the child calls run(). Use at namespace scope, in T's namespace.
#define PAREX_REGISTER_PROCESS(T)                                                                             \
  PAREX_REGISTER_AS("parex.Process:" #T, ::parex::detail::RunProcess<T>{});                                  \
  [[maybe_unused]] static const ::parex::detail::ProcessClassRegistration<T> PAREX_DETAIL_CAT(parex_process_, \
                                                                                              __COUNTER__) {}
