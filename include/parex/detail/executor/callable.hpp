// parex/detail/executor/callable.hpp - compile-time facts about callables: their signature when
// they have exactly one (function pointers, captureless lambdas, function objects with a
// single non-template operator()), and the result of invoking them. Header-only, no state.
#pragma once

#include <cstddef>
#include <functional>
#include <tuple>
#include <type_traits>

namespace parex::detail {

template <class... T>
struct TypeList {
  static constexpr std::size_t size = sizeof...(T);
};

/// The one signature of F, if it has one: result and params (as written). has_signature is false for generic lambdas and overloaded operator().
template <class F, class = void>
struct Signature {
  static constexpr bool has_signature = false;
};

template <class R, class... P>
struct Signature<R (*)(P...)> {
  static constexpr bool has_signature = true;
  using result = R;
  using params = TypeList<P...>;
};
template <class R, class... P>
struct Signature<R (*)(P...) noexcept> : Signature<R (*)(P...)> {};
template <class R, class... P>
struct Signature<R(P...)> : Signature<R (*)(P...)> {};
template <class R, class... P>
struct Signature<R(P...) noexcept> : Signature<R (*)(P...)> {};

template <class M>
struct MemberCallSignature {
  static constexpr bool has_signature = false;
};
#define PAREX_DETAIL_MEMBER_SIG(QUALS)                        \
  template <class C, class R, class... P>                     \
  struct MemberCallSignature<R (C::*)(P...) QUALS> {          \
    static constexpr bool has_signature = true;               \
    using result = R;                                         \
    using params = TypeList<P...>;                            \
  };
PAREX_DETAIL_MEMBER_SIG()
PAREX_DETAIL_MEMBER_SIG(const)
PAREX_DETAIL_MEMBER_SIG(noexcept)
PAREX_DETAIL_MEMBER_SIG(const noexcept)
PAREX_DETAIL_MEMBER_SIG(&)
PAREX_DETAIL_MEMBER_SIG(const&)
PAREX_DETAIL_MEMBER_SIG(& noexcept)
PAREX_DETAIL_MEMBER_SIG(const& noexcept)
#undef PAREX_DETAIL_MEMBER_SIG

template <class F>
struct Signature<F, std::void_t<decltype(&F::operator())>> : MemberCallSignature<decltype(&F::operator())> {};

template <class F>
using SignatureOf = Signature<std::remove_cvref_t<F>>;

/// What a future of calling a stored (decayed) F with stored (decayed) arguments holds:
/// tasks keep their own copies and invoke them as rvalues, exactly once; a returned
/// reference is stored as a value (a future must not dangle).
template <class F, class... A>
using call_result_t = std::remove_cvref_t<std::invoke_result_t<std::decay_t<F>&&, std::decay_t<A>&&...>>;

}  // namespace parex::detail
