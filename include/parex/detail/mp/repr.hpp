// parex/detail/mp/repr.hpp - py_repr(os, v): v written as Python's repr() writes the
// value it stands for, for the Manager proxies' operator<< (Namespace(name='Bob'),
// [1, 2], {'a': 1}, {1, 2}). Strings are quoted and escaped as Python quotes them,
// bool is True/False, floating point is Python's shortest round-trip form (1.0, 1e+16,
// nan), an optional without a value None, pairs and tuples (a, b), maps {k: v}, sets
// {a, b} (set() when empty), other ranges [a, b]. A type with an operator<< of its own
// is written with it (before the range forms: a proxy prints itself); any other as <its type name object>. Pure functions, no state.
#pragma once

#include <parex/detail/wire/type_tag.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <ostream>
#include <ranges>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace parex::detail {

/// s as Python's repr(str) writes it: single quotes unless s holds ' and no ".
inline void py_repr_string(std::ostream& os, std::string_view s) {
  const char q = (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) ? '"' : '\'';
  os << q;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == q || c == '\\') {
      os << '\\' << c;
    } else if (c == '\n') {
      os << "\\n";
    } else if (c == '\r') {
      os << "\\r";
    } else if (c == '\t') {
      os << "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char hex[] = "0123456789abcdef";
      os << "\\x" << hex[u >> 4] << hex[u & 15];
    } else {
      os << c;  // printable ASCII, and UTF-8 bytes as they are
    }
  }
  os << q;
}

/// v as Python's repr(float): the shortest digits that read back as v, in fixed notation
/// for exponents -4 ..< 16 (with ".0" when whole), else d.ddde+XX.
template <class F>
void py_repr_float(std::ostream& os, F v) {
  if (std::isnan(v)) return void(os << "nan");
  if (std::isinf(v)) return void(os << (v < 0 ? "-inf" : "inf"));
  char buf[64];
  const auto end = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific).ptr;
  const std::string_view sci(buf, static_cast<std::size_t>(end - buf));  // -d.ddde+XX
  const auto e = sci.find('e');
  const int exp = std::stoi(std::string(sci.substr(e + 1)));
  if (exp < -4 || exp >= 16) return void(os << sci);
  std::string_view mant = sci.substr(0, e);
  const bool neg = !mant.empty() && mant[0] == '-';
  if (neg) mant.remove_prefix(1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  std::string out = neg ? "-" : "";
  if (exp < 0) {
    out += "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
  } else {
    const auto point = static_cast<std::size_t>(exp) + 1;
    if (digits.size() <= point) {
      out += digits + std::string(point - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, point) + "." + digits.substr(point);
    }
  }
  os << out;
}

template <class T>
void py_repr(std::ostream& os, const T& v);

template <class T>
concept PyStringLike = std::is_convertible_v<const T&, std::string_view>;
template <class T>
concept PyMapLike = std::ranges::input_range<T> && requires { typename T::key_type; typename T::mapped_type; };
template <class T>
concept PySetLike = std::ranges::input_range<T> && requires { typename T::key_type; } && !PyMapLike<T>;
template <class T>
concept PyTupleLike = requires { std::tuple_size<T>::value; } && !std::ranges::range<T>;
template <class T>
concept PyStreamable = requires(std::ostream& os, const T& v) { os << v; };
template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

template <class R>
void py_repr_items(std::ostream& os, const R& r, const char* open, const char* close) {
  os << open;
  bool first = true;
  for (const auto& x : r) {
    if (!first) os << ", ";
    first = false;
    if constexpr (PyMapLike<R>) {
      py_repr(os, x.first);
      os << ": ";
      py_repr(os, x.second);
    } else {
      py_repr(os, x);
    }
  }
  os << close;
}

template <class T>
void py_repr(std::ostream& os, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    os << (v ? "True" : "False");
  } else if constexpr (std::is_same_v<T, char>) {
    py_repr_string(os, std::string_view(&v, 1));
  } else if constexpr (PyStringLike<T>) {
    py_repr_string(os, std::string_view(v));
  } else if constexpr (std::is_integral_v<T>) {
    os << +v;  // signed/unsigned char as numbers
  } else if constexpr (std::is_floating_point_v<T>) {
    py_repr_float(os, v);
  } else if constexpr (std::is_same_v<T, std::nullptr_t> || std::is_same_v<T, std::nullopt_t>) {
    os << "None";
  } else if constexpr (IsOptional<T>::value) {
    if (v) py_repr(os, *v);
    else os << "None";
  } else if constexpr (PyTupleLike<T>) {
    os << '(';
    std::apply([&](const auto&... x) {
      std::size_t i = 0;
      ((os << (i++ ? ", " : ""), py_repr(os, x)), ...);
    }, v);
    os << (std::tuple_size_v<T> == 1 ? ",)" : ")");
  } else if constexpr (PyStreamable<T>) {  // before ranges: a proxy prints itself
    os << v;
  } else if constexpr (PyMapLike<T>) {
    py_repr_items(os, v, "{", "}");
  } else if constexpr (PySetLike<T>) {
    if (std::ranges::empty(v)) os << "set()";
    else py_repr_items(os, v, "{", "}");
  } else if constexpr (std::ranges::input_range<T>) {
    py_repr_items(os, v, "[", "]");
  } else {
    os << '<' << type_name<T>() << " object>";
  }
}

}  // namespace parex::detail
