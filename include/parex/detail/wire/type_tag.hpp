// parex/detail/wire/type_tag.hpp - a type's identity for the wire, computed at compile
// time: type_tag<T>() (a 64-bit hash) to store or send beside bytes that only decode as
// T, and type_name<T>() to name T in the error when the tags differ.
//
//   w.put_raw(type_tag<T>());                         // beside the encoding of a T
//   if (r.get_raw<std::uint64_t>() != type_tag<T>())  // before decoding one as T
//     throw SharedObjectError("... " + std::string(type_name<T>()) + " ...");
//
// Both come from the compiler's spelling of T in __PRETTY_FUNCTION__ (GCC and Clang), so
// they hold within one build of one program, which is all parex ever talks to (a process
// of another build is refused by the registry digest). cv and reference qualifiers are
// ignored, as the codec ignores them. Constant expressions: free at run time, thread-safe.
#pragma once

#include <cstdint>
#include <string_view>
#include <type_traits>

namespace parex::detail {

namespace type_tag_impl {
template <class T>
constexpr std::string_view spelling() noexcept {
  return __PRETTY_FUNCTION__;  // "... spelling() [with T = int]" (GCC), "... [T = int]" (Clang)
}
constexpr std::string_view name_in(std::string_view s) noexcept {
  constexpr std::string_view key = "T = ";
  const auto at = s.find(key);
  if (at == std::string_view::npos) return s;
  s.remove_prefix(at + key.size());
  int depth = 0;  // GCC appends "; other = ..." after T: stop at the first ';' or ']' outside brackets
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '<' || c == '(' || c == '[') ++depth;
    if (c == '>' || c == ')' || (c == ']' && depth > 0)) --depth;
    else if (depth == 0 && (c == ';' || c == ']')) return s.substr(0, i);
  }
  return s;
}
constexpr std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ULL;
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  return h;
}
template <class T>
inline constexpr std::string_view name = name_in(spelling<T>());
template <class T>
inline constexpr std::uint64_t tag = fnv1a(spelling<T>());
}  // namespace type_tag_impl

/// T's 64-bit identity: equal for one type, different (barring a 2^-64 accident) for two.
template <class T>
constexpr std::uint64_t type_tag() noexcept {
  return type_tag_impl::tag<std::remove_cvref_t<T>>;
}
/// T as the compiler spells it ("int", "std::vector<int>"), for messages.
template <class T>
constexpr std::string_view type_name() noexcept {
  return type_tag_impl::name<std::remove_cvref_t<T>>;
}

}  // namespace parex::detail
