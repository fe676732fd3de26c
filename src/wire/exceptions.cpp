// Exceptions across processes.
//
// The worker identifies the *exact* dynamic type of what it caught
// (abi::__cxa_current_exception_type) and sends its mangled name, what() and, for a few
// std types, extra fields (an error code, paths). The parent rebuilds that type if it is
// registered here - every std:: exception and parex's own are, users add theirs with
// PAREX_REGISTER_EXCEPTION - and otherwise raises RemoteError(type, what). Matching the
// exact type, not the first base that a catch ladder would hit, is what makes
// "unregistered derived type -> RemoteError" predictable.
#include <parex/detail/wire/records.hpp>
#include <parex/registry.hpp>

#include <algorithm>
#include <any>
#include <cstdio>
#include <cstdlib>
#include <cxxabi.h>
#include <filesystem>
#include <functional>
#include <future>
#include <ios>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <system_error>
#include <typeinfo>
#include <unordered_map>
#include <variant>
#include <vector>

namespace parex::detail {

std::string demangle(const char* mangled) {
  int status = 0;
  char* s = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = status == 0 && s ? s : mangled;
  std::free(s);
  return out;
}

namespace {

void put_string(Writer& w, const std::string& s) { fast_encode<std::string>(w, s); }
std::string get_string(Reader& r) { return fast_decode<std::string>(r); }

// ---- std::error_code fields --------------------------------------------------------------
const std::error_category& category_named(const std::string& name) {
  if (name == std::system_category().name()) return std::system_category();
  if (name == std::iostream_category().name()) return std::iostream_category();
  if (name == std::future_category().name()) return std::future_category();
  return std::generic_category();
}
void put_code(Writer& w, const std::error_code& ec) {
  w.put_raw<std::int32_t>(ec.value());
  put_string(w, ec.category().name());
}
std::error_code get_code(Reader& r) {
  const auto v = r.get_raw<std::int32_t>();
  return {v, category_named(get_string(r))};
}
// system_error(ec, arg).what() is "arg: <message>": recover arg so the rebuilt what() matches.
std::string strip_suffix(const std::string& what, const std::string& suffix) {
  if (what.size() >= suffix.size() && what.compare(what.size() - suffix.size(), suffix.size(), suffix) == 0)
    return what.substr(0, what.size() - suffix.size());
  return what;
}

template <class T>
ExceptionEntry from_what() {
  return {&typeid(T), [](const std::string& what, Reader&) { return std::make_exception_ptr(T(what)); }, nullptr};
}
template <class T>
ExceptionEntry default_constructed() {
  return {&typeid(T), [](const std::string&, Reader&) { return std::make_exception_ptr(T()); }, nullptr};
}

std::vector<ExceptionEntry> builtin_entries() {
  std::vector<ExceptionEntry> v{
      default_constructed<std::exception>(), from_what<std::logic_error>(), from_what<std::invalid_argument>(),
      from_what<std::domain_error>(), from_what<std::length_error>(), from_what<std::out_of_range>(),
      from_what<std::runtime_error>(), from_what<std::range_error>(), from_what<std::overflow_error>(),
      from_what<std::underflow_error>(), default_constructed<std::bad_alloc>(),
      default_constructed<std::bad_array_new_length>(), default_constructed<std::bad_cast>(),
      default_constructed<std::bad_any_cast>(), default_constructed<std::bad_typeid>(),
      default_constructed<std::bad_exception>(), default_constructed<std::bad_function_call>(),
      default_constructed<std::bad_optional_access>(), default_constructed<std::bad_variant_access>(),
      default_constructed<std::bad_weak_ptr>(),
      // parex's own, for user code that uses executors inside a worker
      from_what<Error>(), from_what<CancelledError>(), from_what<TimeoutError>(), from_what<InvalidStateError>(),
      from_what<BrokenExecutor>(), from_what<BrokenThreadPool>(), from_what<BrokenProcessPool>(),
      from_what<UnregisteredFunction>(), from_what<ProtocolError>(), from_what<NotSerializable>(),
      from_what<ValueError>(), from_what<SharedObjectError>(),
      from_what<Full>(), from_what<Empty>(), from_what<EOFError>(), from_what<BrokenBarrierError>(),
      from_what<KeyError>(), from_what<IndexError>(), from_what<AttributeError>(), from_what<ConnectionError>(),
      from_what<AuthenticationError>(), from_what<BrokenPipeError>(), from_what<ConsumerDiedError>(), from_what<ShutDown>(), from_what<BufferTooShort>()};

  v.push_back({&typeid(std::system_error),
               [](const std::string& what, Reader& r) {
                 const auto ec = get_code(r);
                 if (what == ec.message()) return std::make_exception_ptr(std::system_error(ec));
                 return std::make_exception_ptr(std::system_error(ec, strip_suffix(what, ": " + ec.message())));
               },
               [](Writer& w, const std::exception& e) { put_code(w, static_cast<const std::system_error&>(e).code()); }});
  // OSError's subclasses: their errno is their type's; what() is "arg: <message>".
  v.push_back({&typeid(FileExistsError),
               [](const std::string& what, Reader&) {
                 const std::string suffix = ": " + std::make_error_code(std::errc::file_exists).message();
                 return std::make_exception_ptr(FileExistsError(strip_suffix(what, suffix)));
               },
               nullptr});
  v.push_back({&typeid(FileNotFoundError),
               [](const std::string& what, Reader&) {
                 const std::string suffix = ": " + std::make_error_code(std::errc::no_such_file_or_directory).message();
                 return std::make_exception_ptr(FileNotFoundError(strip_suffix(what, suffix)));
               },
               nullptr});
  v.push_back({&typeid(std::ios_base::failure),
               [](const std::string& what, Reader& r) {
                 const auto ec = get_code(r);
                 return std::make_exception_ptr(std::ios_base::failure(strip_suffix(what, ": " + ec.message()), ec));
               },
               [](Writer& w, const std::exception& e) {
                 put_code(w, static_cast<const std::ios_base::failure&>(e).code());
               }});
  v.push_back({&typeid(std::future_error),
               [](const std::string&, Reader& r) {
                 return std::make_exception_ptr(std::future_error(static_cast<std::future_errc>(r.get_raw<std::int32_t>())));
               },
               [](Writer& w, const std::exception& e) {
                 w.put_raw<std::int32_t>(static_cast<const std::future_error&>(e).code().value());
               }});
  v.push_back({&typeid(std::regex_error),
               [](const std::string&, Reader& r) {
                 return std::make_exception_ptr(
                     std::regex_error(static_cast<std::regex_constants::error_type>(r.get_raw<std::int32_t>())));
               },
               [](Writer& w, const std::exception& e) {
                 w.put_raw<std::int32_t>(static_cast<std::int32_t>(static_cast<const std::regex_error&>(e).code()));
               }});
  v.push_back({&typeid(std::filesystem::filesystem_error),
               [](const std::string& what, Reader& r) {
                 const auto ec = get_code(r);
                 std::filesystem::path p1 = get_string(r), p2 = get_string(r);
                 // libstdc++ words it "filesystem error: <arg>: <message> [p1] [p2]"
                 std::string arg = what;
                 if (arg.rfind("filesystem error: ", 0) == 0) arg.erase(0, 18);
                 if (auto at = arg.find(": " + ec.message()); at != std::string::npos) arg.erase(at);
                 return std::make_exception_ptr(std::filesystem::filesystem_error(arg, p1, p2, ec));
               },
               [](Writer& w, const std::exception& e) {
                 const auto& f = static_cast<const std::filesystem::filesystem_error&>(e);
                 put_code(w, f.code());
                 put_string(w, f.path1().string());
                 put_string(w, f.path2().string());
               }});
  v.push_back({&typeid(RemoteError),
               [](const std::string&, Reader& r) {
                 std::string type = get_string(r);
                 return std::make_exception_ptr(RemoteError(std::move(type), get_string(r)));
               },
               [](Writer& w, const std::exception& e) {
                 const auto& x = static_cast<const RemoteError&>(e);
                 put_string(w, x.type());
                 put_string(w, x.remote_what());
               }});
  v.push_back({&typeid(WorkerCrashed),
               [](const std::string& what, Reader& r) {
                 const auto pid = r.get_raw<std::int32_t>();
                 const auto sig = r.get_raw<std::int32_t>();
                 const auto code = r.get_raw<std::int32_t>();
                 return std::make_exception_ptr(WorkerCrashed(what, pid, sig, code, get_string(r)));
               },
               [](Writer& w, const std::exception& e) {
                 const auto& x = static_cast<const WorkerCrashed&>(e);
                 w.put_raw<std::int32_t>(x.pid());
                 w.put_raw<std::int32_t>(x.signal());
                 w.put_raw<std::int32_t>(x.exit_code());
                 put_string(w, x.function());
               }});
  return v;
}

struct ExceptionTable {
  std::mutex mutex;
  std::unordered_map<std::string, ExceptionEntry> by_name;  // mangled name -> entry
  ExceptionTable() {
    for (auto& e : builtin_entries()) by_name.emplace(e.type->name(), e);
  }
  std::optional<ExceptionEntry> find(const std::string& mangled) {
    std::lock_guard lock(mutex);
    auto it = by_name.find(mangled);
    if (it == by_name.end()) return std::nullopt;
    return it->second;
  }
};

ExceptionTable& table() {
  static ExceptionTable t;
  return t;
}

}  // namespace

void register_exception(const ExceptionEntry& e) noexcept {
  try {
    auto& t = table();
    std::lock_guard lock(t.mutex);
    t.by_name.insert_or_assign(e.type->name(), e);
  } catch (...) {
    std::fputs("parex: out of memory while registering an exception type\n", stderr);
    std::abort();
  }
}

std::vector<std::string> registered_exception_names() {
  auto& t = table();
  std::lock_guard lock(t.mutex);
  std::vector<std::string> names;
  for (auto& [name, e] : t.by_name) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

void encode_exception(Writer& w, const std::exception_ptr& e) {
  std::string mangled = "unknown", what;
  Buffer extra;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    if (const std::type_info* ti = abi::__cxa_current_exception_type()) mangled = ti->name();
    what = x.what();
    if (auto entry = table().find(mangled); entry && entry->save) entry->save(extra, x);
  } catch (const char* s) {
    mangled = typeid(const char*).name();
    what = s ? s : "";
  } catch (const std::string& s) {
    mangled = typeid(std::string).name();
    what = s;
  } catch (...) {
    if (const std::type_info* ti = abi::__cxa_current_exception_type()) mangled = ti->name();
    what = "(an exception that is not a std::exception)";
  }
  put_string(w, mangled);
  put_string(w, what);
  w.put_varint(extra.size());
  w.put(extra.data(), extra.size());
}

std::exception_ptr decode_exception(Reader& r) {
  const std::string mangled = get_string(r);
  const std::string what = get_string(r);
  Reader extra(r.take(r.get_varint()));
  if (auto entry = table().find(mangled)) {
    try {
      return entry->make(what, extra);
    } catch (...) {  // corrupt extra fields: fall back to the name and the text
    }
  }
  return std::make_exception_ptr(RemoteError(demangle(mangled.c_str()), what));
}

std::string describe_exception(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    const std::type_info* ti = abi::__cxa_current_exception_type();
    return (ti ? demangle(ti->name()) : std::string("std::exception")) + ": " + x.what();
  } catch (...) {
    const std::type_info* ti = abi::__cxa_current_exception_type();
    return ti ? demangle(ti->name()) : std::string("unknown exception");
  }
}

void put_error_outcome(Writer& w, Stage stage, const std::exception_ptr& e) noexcept {
  const std::size_t mark = w.size();
  try {
    w.put_byte(static_cast<std::uint8_t>(OutcomeStatus::error));
    put_length_prefixed(w, [&](Writer& b) {
      b.put_byte(static_cast<std::uint8_t>(stage));
      encode_exception(b, e);
    });
  } catch (...) {
    // Out of memory while describing an error: fall back to a fixed, tiny outcome.
    w.truncate(mark);
    try {
      w.put_byte(static_cast<std::uint8_t>(OutcomeStatus::error));
      put_length_prefixed(w, [&](Writer& b) {
        b.put_byte(static_cast<std::uint8_t>(stage));
        encode_exception(b, std::make_exception_ptr(std::bad_alloc()));
      });
    } catch (...) {
      std::fputs("parex worker: cannot encode an error outcome\n", stderr);
      std::abort();
    }
  }
}

}  // namespace parex::detail
