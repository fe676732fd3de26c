// parex/detail/remote/remote_call.hpp - calls that run in another process, parent side.
//
// A RemoteCall is the future's state plus the call's encoded items (one for submit, a
// chunk for map), built in the submitting thread: encoding errors surface from submit,
// at once, and never reach the pool. The pool's reactor thread then owns the call: it
// frames the items, feeds outcomes back in runs (take_outcomes, on_error) and calls
// finish() after the last one, which completes the future and may free the call.
#pragma once

#include <parex/detail/executor/callable.hpp>
#include <parex/detail/future/state.hpp>
#include <parex/detail/executor/task.hpp>
#include <parex/detail/wire/records.hpp>
#include <parex/registry.hpp>
#include <parex/serialize.hpp>

#include <chrono>
#include <exception>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace parex::detail {

/// The memory of call objects (SingleCall, ChunkCall), kept for reuse instead of going
/// back to the kernel after each burst of calls: why and how in src/remote/call_blocks.cpp.
namespace call_blocks {
void* allocate(std::size_t bytes);
void release(void* p, std::size_t bytes) noexcept;
}  // namespace call_blocks

/// A backend whose loop a thread waiting for a call may run itself (StateBase::drive).
class CallDriver {
 public:
  virtual bool drive(const StateBase& waited, const Clock::time_point* deadline) noexcept = 0;

 protected:
  ~CallDriver() = default;
};

class RemoteCall {
 public:
  RemoteCall* next = nullptr;           // intrusive queue link
  CallDriver* driver = nullptr;         // set by a backend before the call is handed over
  const FunctionEntry* fn = nullptr;
  std::uint32_t count = 0;              // items
  std::uint32_t done = 0;               // items with an outcome; reactor thread only
  std::uint32_t resume_item = 0;        // the item that starts at resume_offset
  std::size_t resume_offset = 0;        // computed only when a call is re-sent after a crash
  Buffer args;                          // count x (varint length, encoded arguments)
  std::chrono::nanoseconds timeout{0};  // each item's deadline from its start (0: none)
  const void* owner = nullptr;          // the pool that holds it (set by the pool)
  bool interrupted = false;             // reactor thread only: Future::interrupt reached it
  bool expired = false;                 // MPI progress thread only: expire() completed its future
  bool internal = false;                // the backend's own call (an MPI initializer): not in stats
  // Set by the dispatching thread when the call is sent to a worker (remote/batching.hpp):
  std::uint64_t first_item = 0;         // the worker's number of its first item sent
  double charge_ns = 0;                 // the estimated work the worker's load was charged
  std::uint32_t errors = 0;             // items that failed (on_error): the pool's statistics

  virtual StateBase& state() noexcept = 0;
  /// Reads the outcomes of items done .. done+n-1 from r (n <= count - done): one virtual
  /// call per run of outcomes, a tight loop inside. A result that fails to decode becomes
  /// that item's error. Does not advance `done`. Once the call's last outcome is read, its
  /// arguments are freed before its future completes, so that a caller who submits again
  /// at once can reuse the memory (a 64 MiB argument otherwise costs fresh pages).
  /// @throws ProtocolError if r does not hold n well-formed outcomes; the call is then as
  ///         it was (a crash path may still re-send it).
  virtual void take_outcomes(Reader& r, std::uint32_t n) = 0;
  /// Item `done` failed with e.
  virtual void on_error(std::exception_ptr e) noexcept = 0;
  /// Completes the future now: every item without an outcome fails with e (a deadline a
  /// backend cannot enforce by stopping the call). The call stays with the backend: the
  /// outcomes that still arrive are read and dropped, and finish() ends it as usual.
  virtual void expire(std::exception_ptr e) noexcept = 0;
  /// After the last item: completes the future, drops the pool's reference (may free this).
  virtual void finish() noexcept = 0;
  /// Never sent: drops the pool's reference (the future is cancelled or failed already).
  /// Like every way out of a pool, frees the arguments first: they may live in the pool.
  void drop() noexcept {
    args.reset();
    state_release();
  }

  /// Fails every item without an outcome with e, then finishes.
  void fail_rest(const std::exception_ptr& e) noexcept {
    while (done < count) {
      on_error(e);
      ++done;
    }
    finish();
  }

  /// Moves resume_offset to where item `done` starts (before a re-send after a crash).
  void seek_resume() {
    for (; resume_item < done; ++resume_item) {
      Reader rest(args.bytes().subspan(resume_offset));
      read_item(rest);
      resume_offset = static_cast<std::size_t>(rest.position() - args.data());
    }
  }

 protected:
  ~RemoteCall() = default;
  virtual void state_release() noexcept = 0;
};

/// Future::interrupt of a call that has left the submitting thread: asks the pool that
/// holds it to stop it (process_pool/interrupts.cpp). False if no pool can (done, or a
/// backend that cannot stop calls).
bool request_interrupt(RemoteCall& call) noexcept;
/// Another remote backend's answer to request_interrupt for the calls it owns (the MPI
/// library sets it when it loads): the process pool asks it about calls it does not own.
using InterruptHook = bool (*)(RemoteCall& call) noexcept;
void set_interrupt_hook(InterruptHook hook) noexcept;

[[noreturn]] void throw_unregistered(const void* fn, const std::type_info* object_type);
// Decodes an error outcome's body into an exception, wrapping codec-stage failures as
// NotSerializable (with the original nested) and naming the function.
std::exception_ptr decode_error_outcome(Reader& r, const FunctionEntry& fn);
// A failure to decode a result in the parent, as NotSerializable naming the function.
std::exception_ptr result_decode_error(const FunctionEntry& fn, std::exception_ptr cause);

template <class R>
class SingleCall final : public State<R>, public RemoteCall {
 public:
  explicit SingleCall(const FunctionEntry& f) {
    fn = &f;
    count = 1;
    this->retain_producer();
  }
  static void* operator new(std::size_t n) { return call_blocks::allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { call_blocks::release(p, n); }
  // An over-aligned result type: the heap's aligned blocks, not the cache.
  static void* operator new(std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
  static void operator delete(void* p, std::size_t n, std::align_val_t a) noexcept { ::operator delete(p, n, a); }
  StateBase& state() noexcept override { return *this; }
  bool drive(const Clock::time_point* deadline) const noexcept override {
    return driver && driver->drive(*this, deadline);
  }
  bool interrupt() noexcept override { return this->cancel() || (!StateBase::done() && request_interrupt(*this)); }
  void take_outcomes(Reader& r, std::uint32_t) override {
    OutcomeView o = read_outcome(r);
    args.reset();
    if (o.status != OutcomeStatus::ok) return on_error(decode_error_outcome(o.body, *fn));
    if (!this->sole_claim()) return;  // expired before (the backend's loop is the only completer)
    try {
      if constexpr (std::is_void_v<R>) this->emplace_claimed();
      else this->emplace_claimed(decode<R>(o.body));
    } catch (...) {
      ++errors;
      this->finish_with_error(result_decode_error(*fn, std::current_exception()));
    }
  }
  void on_error(std::exception_ptr e) noexcept override {
    ++errors;
    args.reset();
    if (this->try_claim()) this->finish_with_error(std::move(e));
  }
  void expire(std::exception_ptr e) noexcept override {
    expired = true;
    if (this->try_claim()) this->finish_with_error(std::move(e));
  }
  void finish() noexcept override { this->release_producer(); }

 private:
  void state_release() noexcept override { this->release_producer(); }
};

template <class R>
class ChunkCall final : public State<ChunkResult<R>>, public RemoteCall {
 public:
  explicit ChunkCall(const FunctionEntry& f, std::uint32_t n) {
    fn = &f;
    count = n;
    results_.reserve(n);
    this->retain_producer();
  }
  /// Before sending: item i of the chunk (counting every item) failed to encode with e.
  /// It is not sent (count drops) and gets e at its own position among the results.
  void leave_out(std::uint32_t i, std::exception_ptr e) {
    left_out_.emplace_back(i, std::move(e));
    --count;
  }
  static void* operator new(std::size_t n) { return call_blocks::allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { call_blocks::release(p, n); }
  // An over-aligned result type: the heap's aligned blocks, not the cache.
  static void* operator new(std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
  static void operator delete(void* p, std::size_t n, std::align_val_t a) noexcept { ::operator delete(p, n, a); }
  StateBase& state() noexcept override { return *this; }
  bool drive(const Clock::time_point* deadline) const noexcept override {
    return driver && driver->drive(*this, deadline);
  }
  bool interrupt() noexcept override { return this->cancel() || (!StateBase::done() && request_interrupt(*this)); }
  void take_outcomes(Reader& r, std::uint32_t n) override {
    const std::size_t before = results_.size();
    const std::size_t holes_before = next_left_out_;
    try {
      for (std::uint32_t i = 0; i < n; ++i) {
        OutcomeView o = read_outcome(r);
        if (o.status != OutcomeStatus::ok) {
          on_error(decode_error_outcome(o.body, *fn));
          continue;
        }
        try {
          fill_left_out();
          results_.emplace_back(std::in_place_index<0>, decode<R>(o.body));
        } catch (...) {
          on_error(result_decode_error(*fn, std::current_exception()));
        }
      }
    } catch (...) {  // a corrupt frame: leave the call as it was
      results_.erase(results_.begin() + static_cast<std::ptrdiff_t>(before), results_.end());
      next_left_out_ = holes_before;
      throw;
    }
  }
  void on_error(std::exception_ptr e) noexcept override {
    ++errors;
    try {
      fill_left_out();
      results_.emplace_back(std::in_place_index<1>, std::move(e));
    } catch (...) {  // out of memory: the whole chunk fails with it
      failed_ = std::current_exception();
    }
  }
  void expire(std::exception_ptr e) noexcept override {
    expired = true;
    if (!this->try_claim()) return;
    try {
      for (std::uint32_t i = done; i < count; ++i) {
        fill_left_out();
        results_.emplace_back(std::in_place_index<1>, e);
      }
      fill_left_out();
    } catch (...) {
      failed_ = std::current_exception();
    }
    if (failed_) this->finish_with_error(failed_);
    else this->emplace_claimed(std::move(results_));
    results_.clear();  // the outcomes still to come land here, unused
    next_left_out_ = left_out_.size();
  }
  void finish() noexcept override {
    args.reset();
    if (this->try_claim()) {
      try {
        fill_left_out();
      } catch (...) {
        failed_ = std::current_exception();
      }
      if (failed_) this->finish_with_error(failed_);
      else this->emplace_claimed(std::move(results_));
    }
    this->release_producer();
  }

 private:
  void state_release() noexcept override { this->release_producer(); }
  // Puts the left-out items whose turn has come into the results: called before each
  // outcome is appended, and once more at the end for those after the last sent item.
  void fill_left_out() {
    while (next_left_out_ < left_out_.size() && left_out_[next_left_out_].first == results_.size()) {
      results_.emplace_back(std::in_place_index<1>, left_out_[next_left_out_].second);
      ++next_left_out_;
    }
  }
  ChunkResult<R> results_;
  std::exception_ptr failed_;
  std::vector<std::pair<std::uint32_t, std::exception_ptr>> left_out_;  // (item, error), by item
  std::size_t next_left_out_ = 0;
};

// ---- what can be sent, and why not -------------------------------------------------------

template <class F, class Params, class... A>
struct RemotableArgs;
template <class F, class... P, class... A>
struct RemotableArgs<F, TypeList<P...>, A...> {
  static constexpr bool arity = sizeof...(P) == sizeof...(A);
  static constexpr bool convertible = [] {
    if constexpr (sizeof...(P) == sizeof...(A)) return (std::is_constructible_v<param_t<P>, A&&> && ...);
    else return false;
  }();
  static constexpr bool serializable = (Serializable<param_t<P>> && ...);
};

/// Whether fn(args...) can be shipped to a worker, and if not, the fix (a message for
/// static_assert and for the NotSerializable that Executor& submit throws).
template <class F, class... A>
struct Remotable {
  using Fn = std::remove_cvref_t<F>;
  using Sig = SignatureOf<Fn>;
  static constexpr bool is_object = std::is_class_v<Fn>;
  static constexpr bool has_signature = Sig::has_signature;
  static constexpr bool stateless = !is_object || std::is_empty_v<Fn>;
  static constexpr bool shape_ok = std::is_function_v<std::remove_pointer_t<Fn>> || is_object;
  static constexpr auto args_check() {
    if constexpr (has_signature) return RemotableArgs<Fn, typename Sig::params, A...>{};
    else return RemotableArgs<Fn, TypeList<>>{};
  }
  using Args = decltype(args_check());
  static constexpr bool result_ok = [] {
    if constexpr (has_signature) {
      using R = std::remove_cvref_t<typename Sig::result>;
      return std::is_void_v<R> || Serializable<R>;
    } else {
      return false;
    }
  }();
  static constexpr const char* why() {
    if (!shape_ok) return "only functions and function objects can run in a process pool (not std::function or member pointers)";
    if (!stateless)
      return "a lambda with captures or a function object with state cannot run in another process: register a "
             "function with PAREX_REGISTER and pass the captured values as arguments";
    if (!has_signature)
      return "a generic lambda or an overloaded operator() has no single signature to decode arguments with: give "
             "it concrete parameter types";
    if (!Args::arity) return "the number of arguments does not match the function's parameters";
    if (!Args::convertible) return "an argument is not convertible to the function's parameter type";
    if (!Args::serializable)
      return PAREX_DETAIL_SERIALIZABLE_FIX;
    if (!result_ok) return "the return type is not serializable (see parex::Serializable)";
    return "";
  }
  static constexpr bool value =
      shape_ok && stateless && has_signature && Args::arity && Args::convertible && Args::serializable && result_ok;
};

/// The compile-time checks of a remote executor's submit and map (`who` names it in the
/// messages): one definition for every backend that ships calls to other processes.
#define PAREX_DETAIL_CHECK_REMOTE(who, F, ...)                                                                       \
  do {                                                                                                               \
    using C = ::parex::detail::Remotable<F, ##__VA_ARGS__>;                                                          \
    static_assert(C::shape_ok, who ": only functions and function objects can run in another process (not "        \
                                   "std::function or member pointers)");                                             \
    static_assert(C::stateless, who ": a lambda with captures or a function object with state cannot run in "       \
                                    "another process: register a function with PAREX_REGISTER and pass the "         \
                                    "captured values as arguments");                                                 \
    static_assert(C::has_signature, who ": a generic lambda or an overloaded operator() has no single signature: "  \
                                        "give it concrete parameter types");                                         \
    static_assert(C::Args::arity, who ": the number of arguments does not match the function's parameters");        \
    static_assert(C::Args::convertible, who ": an argument is not convertible to its parameter type");              \
    static_assert(C::Args::serializable, who ": " PAREX_DETAIL_SERIALIZABLE_FIX);                                    \
    static_assert(C::result_ok, who ": the return type is not serializable (see parex::Serializable)");             \
    if constexpr (C::is_object && C::value)                                                                          \
      static_assert(::parex::detail::RegisteredObjectType<std::remove_cvref_t<F>>,                                   \
                    who ": this function object is not registered: add PAREX_REGISTER_AS(\"name\", obj) at "        \
                        "namespace scope, in the namespace where its type (the lambda) is defined");                 \
  } while (false)

template <class F>
const FunctionEntry& lookup_function(const F& fn) {
  using Fn = std::remove_cvref_t<F>;
  const FunctionEntry* e = nullptr;
  if constexpr (std::is_class_v<Fn>) {
    e = Registry::global().by_type(typeid(Fn));
    if (!e) throw_unregistered(nullptr, &typeid(Fn));
  } else {
    const void* p = reinterpret_cast<const void*>(static_cast<std::add_pointer_t<std::remove_pointer_t<Fn>>>(fn));
    e = Registry::global().by_pointer(p);
    if (!e) throw_unregistered(p, nullptr);
  }
  return *e;
}

// Encodes one item: the arguments converted to the parameter types, length-prefixed.
template <class... P, class... A>
void encode_item(Writer& w, TypeList<P...>, A&&... args) {
  auto one = [&w]<class Param, class Arg>(Arg&& a) {
    using D = param_t<Param>;
    if constexpr (std::is_same_v<std::remove_cvref_t<Arg>, D>) encode<D>(w, a);
    else encode<D>(w, D(std::forward<Arg>(a)));
  };
  constexpr std::size_t fixed = (std::size_t{0} + ... + fixed_encoded_size<param_t<P>>());
  if constexpr (((fixed_encoded_size<param_t<P>>() != 0) && ...) && fixed < 0x80) {
    w.put_byte(static_cast<std::uint8_t>(fixed));
    (one.template operator()<P>(std::forward<A>(args)), ...);
  } else {
    const std::size_t hint = (std::size_t{0} + ... + size_hint(args));
    put_length_prefixed(w, [&](Writer&) { (one.template operator()<P>(std::forward<A>(args)), ...); }, hint);
  }
}

/// Inside a catch block: throws NotSerializable naming fn, the current exception nested.
[[noreturn]] void throw_encode_error(const FunctionEntry& fn);
/// The same error as an exception_ptr (a map item that failed to encode).
std::exception_ptr encode_error(const FunctionEntry& fn) noexcept;

}  // namespace parex::detail
