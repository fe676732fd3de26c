// parex/detail/remote/initializer.hpp - parex::Initializer: a registered function and
// its encoded arguments, run once in each worker of a remote executor before its first
// call (ProcessPoolOptions::initializer, MpiOptions::initializer).
#pragma once

#include <parex/detail/remote/remote_call.hpp>

#include <cstddef>
#include <utility>
#include <vector>

namespace parex {

/// A registered function and its arguments, run once in every worker before any call.
class Initializer {
 public:
  Initializer() = default;
  template <class R, class... P, class... A>
  Initializer(R (*fn)(P...), A&&... args) : fn_(reinterpret_cast<const void*>(fn)) {
    using Check = detail::Remotable<R (*)(P...), A...>;
    static_assert(Check::value, "parex::Initializer: the initializer must be a registered function whose arguments "
                                "are serializable (see ProcessPoolExecutor::submit)");
    detail::Buffer b;
    detail::encode_item(b, detail::TypeList<P...>{}, std::forward<A>(args)...);
    args_.assign(b.data(), b.data() + b.size());
  }
  explicit operator bool() const noexcept { return fn_ != nullptr; }
  const void* function() const noexcept { return fn_; }
  const std::vector<std::byte>& encoded_args() const noexcept { return args_; }

 private:
  const void* fn_ = nullptr;
  std::vector<std::byte> args_;
};

}  // namespace parex
