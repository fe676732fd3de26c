// The Executor's remote path that needs no template (posting a RemoteCall), and the
// error paths of remote calls (remote/remote_call.hpp): an unregistered function named
// with the registered names nearest to it, encoding and decoding failures as
// NotSerializable naming the function and the stage, the original exception nested.
#include <parex/detail/remote/remote_call.hpp>
#include <parex/executor.hpp>
#include <parex/registry.hpp>

#include <dlfcn.h>
#include <string>

namespace parex::detail {

namespace {
// The name of a function from its address, if the dynamic symbol table has it (parex
// links programs with -rdynamic so that it does).
std::string function_name(const void* fn) {
  Dl_info info{};
  if (!fn || !dladdr(fn, &info) || !info.dli_sname || info.dli_saddr != fn) return {};
  std::string s = demangle(info.dli_sname);
  if (auto paren = s.find('('); paren != std::string::npos) s.erase(paren);
  return s;
}

template <class Outer>
std::exception_ptr nest(Outer outer, const std::exception_ptr& inner) {
  try {
    std::rethrow_exception(inner);
  } catch (...) {
    try {
      std::throw_with_nested(std::move(outer));
    } catch (...) {
      return std::current_exception();
    }
  }
}

const char* stage_text(Stage s) {
  switch (s) {
    case Stage::decode_args: return "decoding the arguments";
    case Stage::encode_result: return "encoding the result";
    case Stage::run: break;
  }
  return "running";
}
}  // namespace

[[noreturn]] void throw_unregistered(const void* fn, const std::type_info* object_type) {
  auto& reg = Registry::global();
  std::string name = object_type ? demangle(object_type->name()) : function_name(fn);
  std::string msg;
  if (name.empty()) {
    char addr[32];
    std::snprintf(addr, sizeof addr, "%p", fn);
    msg = std::string("unregistered function at ") + addr +
          ": add PAREX_REGISTER(fn) at namespace scope next to its definition";
  } else if (object_type) {
    msg = "unregistered function object '" + name +
          "': add PAREX_REGISTER_AS(\"name\", obj) at namespace scope, in the namespace of its type";
  } else {
    msg = "unregistered function '" + name + "': add PAREX_REGISTER(" + name + ") at namespace scope";
  }
  throw UnregisteredFunction(msg + "; registered: " + reg.nearest(object_type ? std::string_view{} : name));
}

[[noreturn]] void throw_encode_error(const FunctionEntry& fn) {
  std::throw_with_nested(NotSerializable("encoding the arguments of '" + fn.name +
                                         "' failed: " + describe_exception(std::current_exception())));
}

std::exception_ptr encode_error(const FunctionEntry& fn) noexcept {
  try {
    throw_encode_error(fn);
  } catch (...) {
    return std::current_exception();
  }
}

std::exception_ptr decode_error_outcome(Reader& r, const FunctionEntry& fn) {
  const auto stage = static_cast<Stage>(r.get_byte());
  std::exception_ptr e = decode_exception(r);
  if (stage == Stage::run) return e;
  return nest(NotSerializable(std::string(stage_text(stage)) + " of '" + fn.name + "' in the worker failed: " +
                              describe_exception(e)),
              e);
}

std::exception_ptr result_decode_error(const FunctionEntry& fn, std::exception_ptr cause) {
  return nest(NotSerializable("decoding the result of '" + fn.name + "' failed: " + describe_exception(cause)), cause);
}

}  // namespace parex::detail

namespace parex {

void Executor::post(detail::RemoteCall* call) {
  try {
    dispatch_remote(call);
  } catch (...) {
    call->drop();  // never queued: the future (about to unwind) holds the only other reference
    throw;
  }
}

void Executor::dispatch_remote(detail::RemoteCall*) {
  throw InvalidStateError("this executor runs calls in this process; it has no remote dispatch");
}

}  // namespace parex
