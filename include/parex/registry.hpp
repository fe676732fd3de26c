// parex/registry.hpp - functions and exception types known by name to every process.
//
// The process backend never ships code: a call travels as a registered function's id plus
// its encoded arguments, and the worker (the same program, re-executed) looks the id up in
// its own registry. Ids are indices into the names sorted, so both sides agree; the
// handshake compares a digest of (name, signature) pairs, so a different binary fails up
// front. Registration happens during static initialisation (PAREX_REGISTER at namespace
// scope); lookups are lock-free reads of an immutable snapshot built on first use.
//
// @code
//   int square(int x) { return x * x; }
//   PAREX_REGISTER(square);                                    // name "square"
//   double scale(double x, double k) { return x * k; }
//   int scale(int x, int k) { return x * k; }
//   PAREX_REGISTER_AS("scale_d", static_cast<double (*)(double, double)>(scale));  // overloads
//   const auto twice = [](int x) { return 2 * x; };
//   PAREX_REGISTER_AS("twice", twice);                         // captureless lambdas, stateless functors
//   struct QuotaExceeded : std::runtime_error { using std::runtime_error::runtime_error; };
//   PAREX_REGISTER_EXCEPTION(QuotaExceeded);                   // crosses processes with its type
// @endcode
#pragma once

#include <parex/detail/wire/buffer.hpp>
#include <parex/detail/executor/callable.hpp>
#include <parex/detail/wire/frame.hpp>
#include <parex/detail/wire/records.hpp>
#include <parex/serialize.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace parex::detail {

struct FunctionEntry;
/// Runs one item in a worker: decodes the arguments from `args`, calls, appends the
/// outcome (status, length, bytes) to `out`. Never throws: every failure is an outcome.
using InvokeFn = void (*)(const FunctionEntry& self, Reader& args, Writer& out) noexcept;

struct FunctionEntry {
  std::string name;
  std::string signature;                        // mangled R(P...), for the digest
  const void* target = nullptr;                 // the function, or the registered object
  const std::type_info* object_type = nullptr;  // function objects: their type
  InvokeFn invoke = nullptr;
  const char* file = "";
  int line = 0;
  std::uint32_t id = 0;  // assigned when the registry is frozen
};

/// The process-wide registry of functions. Thread-safe.
class Registry {
 public:
  static Registry& global() noexcept;
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  ~Registry();

  /// Records an entry (static initialisation). Never throws; problems surface in freeze().
  /// After freeze(), a registration cannot reach running workers: it is refused with a
  /// message on stderr.
  void add(FunctionEntry e) noexcept;
  /// Sorts names, assigns ids, builds the lookup tables, once (lookups call it too).
  /// @throws parex::Error naming both registrations if one name is registered for two functions.
  void freeze();

  const FunctionEntry* by_pointer(const void* fn);
  const FunctionEntry* by_type(const std::type_info& t);
  const FunctionEntry* by_id(std::uint32_t id);
  /// The number of registered functions (ids are 0 .. size() - 1).
  std::size_t size();
  std::uint64_t digest();
  /// "a, b, c": registered names nearest to `name` (all if name is empty), at most n.
  std::string nearest(std::string_view name, std::size_t n = 5);

 private:
  struct Snapshot;
  const Snapshot& snapshot();
  std::atomic<const Snapshot*> snapshot_{nullptr};  // built once, then read without locks
  std::mutex mutex_;                                // guards adding and building
  std::deque<FunctionEntry> entries_;               // stable addresses; guarded by mutex_
};

// ---- exceptions ----------------------------------------------------------------------

struct ExceptionEntry {
  const std::type_info* type;
  /// Rebuilds the exception from its what() (and extra fields, if save wrote any).
  std::exception_ptr (*make)(const std::string& what, Reader& extra);
  /// Writes extra fields (a std::system_error's code, ...); may be null.
  void (*save)(Writer& w, const std::exception& e);
};
void register_exception(const ExceptionEntry& e) noexcept;
/// Mangled names of every registered exception type, sorted (part of the digest).
std::vector<std::string> registered_exception_names();

/// Encodes an exception: its type's mangled name, what(), and extra fields.
void encode_exception(Writer& w, const std::exception_ptr& e);
/// Rebuilds it: as its own type if registered on this side, else as RemoteError.
std::exception_ptr decode_exception(Reader& r);

// ---- invokers ------------------------------------------------------------------------

template <class P>
using param_t = std::remove_cvref_t<P>;

template <class Target, class R, class... P>
void invoke_item(const FunctionEntry& self, Reader& args, Writer& out) noexcept {
  // 1. decode the arguments
  std::optional<std::tuple<param_t<P>...>> decoded;
  try {
    decoded.emplace(std::tuple<param_t<P>...>{decode<param_t<P>>(args)...});  // braces: left to right
    if (!args.empty()) throw ProtocolError("trailing bytes after the arguments");
  } catch (...) {
    put_error_outcome(out, Stage::decode_args, std::current_exception());
    return;
  }
  // 2. run
  auto call = [&]() -> decltype(auto) {
    if constexpr (std::is_pointer_v<Target>) {
      return std::apply(reinterpret_cast<Target>(const_cast<void*>(self.target)), std::move(*decoded));
    } else {
      Target f = *static_cast<const Target*>(self.target);  // stateless: a free copy
      return std::apply(f, std::move(*decoded));
    }
  };
  using Result = std::remove_cvref_t<R>;
  std::optional<std::conditional_t<std::is_void_v<Result>, char, Result>> result;
  try {
    if constexpr (std::is_void_v<Result>) {
      call();
      result.emplace('\0');
    } else {
      result.emplace(call());
    }
  } catch (...) {
    put_error_outcome(out, Stage::run, std::current_exception());
    return;
  }
  // 3. encode the result (rolled back to an error outcome if encoding throws)
  const std::size_t mark = out.size();
  try {
    if constexpr (std::is_void_v<Result>) {
      put_ok_outcome(out, [](Writer&) {}, 0);  // no body
    } else {
      put_ok_outcome(out, [&](Writer& w) { encode<Result>(w, *result); }, size_hint(*result),
                     fixed_encoded_size<Result>());
    }
  } catch (...) {
    out.truncate(mark);
    put_error_outcome(out, Stage::encode_result, std::current_exception());
  }
}

// ---- registration ----------------------------------------------------------------------

template <class T>
struct TypeTag {};
/// What PAREX_REGISTER_AS declares for a function object's type, found by
/// argument-dependent lookup: lets ProcessPoolExecutor::submit check registration at
/// compile time.
struct RegisteredMark {};

template <class T>
concept RegisteredObjectType = requires { parex_registered(TypeTag<T>{}); };

template <class R, class... P>
constexpr void check_registrable() {
  static_assert((Serializable<param_t<P>> && ...),
                "PAREX_REGISTER: " PAREX_DETAIL_SERIALIZABLE_FIX);
  static_assert(std::is_void_v<R> || Serializable<std::remove_cvref_t<R>>,
                "PAREX_REGISTER: the return type is not serializable (see parex::Serializable).");
  static_assert(((!std::is_pointer_v<param_t<P>>) && ...),
                "PAREX_REGISTER: pointer parameters cannot cross processes; take values.");
}

template <class Target, class R, class... P>
FunctionEntry make_entry(const char* name, const void* target, const std::type_info* object_type, const char* file,
                         int line, TypeList<P...>) {
  check_registrable<R, P...>();
  FunctionEntry e;
  e.name = name;
  e.signature = typeid(R(param_t<P>...)).name();
  e.target = target;
  e.object_type = object_type;
  e.invoke = &invoke_item<Target, R, P...>;
  e.file = file;
  e.line = line;
  return e;
}

/// The static object PAREX_REGISTER creates.
struct Registration {
  template <class R, class... P>
  Registration(const char* name, R (*fn)(P...), const char* file, int line) {
    Registry::global().add(
        make_entry<R (*)(P...), R>(name, reinterpret_cast<const void*>(fn), nullptr, file, line, TypeList<P...>{}));
  }
  template <class R, class... P>
  Registration(const char* name, R (*fn)(P...) noexcept, const char* file, int line)
      : Registration(name, reinterpret_cast<R (*)(P...)>(fn), file, line) {}

  template <class F>
    requires std::is_class_v<F>
  Registration(const char* name, const F& object, const char* file, int line) {
    static_assert(std::is_empty_v<F>,
                  "PAREX_REGISTER_AS: a function object with state (a lambda with captures, a functor with data "
                  "members) cannot be shipped by name; make it stateless and pass the state as arguments.");
    static_assert(SignatureOf<F>::has_signature,
                  "PAREX_REGISTER_AS: the function object needs exactly one non-template operator() "
                  "(generic lambdas and overloaded call operators have no single signature).");
    using Sig = SignatureOf<F>;
    const F* copy = new F(object);  // lives for the whole program, as the registry does
    Registry::global().add(make_entry<F, typename Sig::result>(name, copy, &typeid(F), file, line,
                                                               typename Sig::params{}));
  }
};

/// Registers an exception type T (constructible from its what() string).
template <class T>
struct ExceptionRegistration {
  ExceptionRegistration() {
    static_assert(std::is_base_of_v<std::exception, T>, "PAREX_REGISTER_EXCEPTION: T must derive from std::exception");
    static_assert(std::is_constructible_v<T, const std::string&>,
                  "PAREX_REGISTER_EXCEPTION: T must be constructible from its what() string");
    register_exception({&typeid(T), [](const std::string& what, Reader&) { return std::make_exception_ptr(T(what)); },
                        nullptr});
  }
};

}  // namespace parex::detail

#define PAREX_DETAIL_CAT2(a, b) a##b
#define PAREX_DETAIL_CAT(a, b) PAREX_DETAIL_CAT2(a, b)

/// Registers fn under its spelled name (namespace included if you spell it).
/// Use at namespace scope, after fn's definition.
#define PAREX_REGISTER(fn) PAREX_REGISTER_AS(#fn, fn)

/// Registers fn (a function, a cast to pick an overload, a captureless lambda or a stateless
/// function object) under `name`. For a function object, use it in the namespace of its type.
#define PAREX_REGISTER_AS(name, fn)                                                                            \
  [[maybe_unused]] static const ::parex::detail::Registration PAREX_DETAIL_CAT(parex_registration_,            \
                                                                               __COUNTER__){name, fn, __FILE__, \
                                                                                            __LINE__};          \
  ::parex::detail::RegisteredMark parex_registered(::parex::detail::TypeTag<std::remove_cvref_t<decltype(fn)>>)

/// Lets exceptions of type T cross processes as T (T must be constructible from its
/// what() string). Unregistered types arrive as parex::RemoteError. Namespace scope.
#define PAREX_REGISTER_EXCEPTION(T)                                                                              \
  [[maybe_unused]] static const ::parex::detail::ExceptionRegistration<T> PAREX_DETAIL_CAT(parex_exception_, \
                                                                                           __COUNTER__) {}
