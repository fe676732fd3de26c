// parex/detail/wire/fast_codec.hpp - parex's own format for arithmetic types, enums,
// std::string and the std containers, pair, tuple, optional, variant, chrono and
// complex types built from them: one memcpy for contiguous trivially copyable data, no
// archive. Every decoder is bounds-checked (a corrupt input throws ProtocolError and
// never allocates more than it could hold). Part of serialize.hpp; stateless, thread-safe.
#pragma once

#include <parex/detail/wire/buffer.hpp>

#include <array>
#include <chrono>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace parex {

/// Specialize to std::true_type (or use PAREX_BITWISE) to send a trivially copyable
/// type as its raw bytes. Only for types without pointers or references inside.
template <class T>
struct is_bitwise : std::false_type {};

namespace detail {

// ---- fast codecs -----------------------------------------------------------------------
// FastCodec<T>::enabled says whether T has one; min_size is the fewest bytes an encoded
// T takes (bounds the element counts a decoder accepts).
template <class T, class = void>
struct FastCodec {
  static constexpr bool enabled = false;
};

template <class T>
inline constexpr bool fast_v = FastCodec<T>::enabled;

template <class T>
inline constexpr bool raw_v =
    std::is_trivially_copyable_v<T> && (std::is_arithmetic_v<T> || std::is_enum_v<T> || std::is_same_v<T, std::byte> ||
                                        is_bitwise<T>::value);

/// Appends n trivially copyable T values stored at `bytes` (any alignment) to a
/// contiguous container, in one pass, without default-constructing them first.
template <class T, class C>
void bulk_append(C& c, const std::byte* bytes, std::size_t n) {
  // This memory is fresh on every call (the user's container, freed after the call), and
  // getting its pages from the kernel is the largest cost left in a large call: ask for
  // huge pages, then fault them all in with one system call. Measured on 64 MiB calls:
  // 31-40 ms warm with both, 40-53 ms with the prefault alone; first calls 63-236 ms
  // against 72-97 ms (THP may compact memory once). parex's own reused buffers get the
  // prefault only: huge pages would just add that first-call cost to them.
  c.reserve(c.size() + n);
  advise_huge(c.data() + c.size(), n * sizeof(T));
  prefault(c.data() + c.size(), n * sizeof(T));
  if constexpr (alignof(T) == 1) {
    const T* p = reinterpret_cast<const T*>(bytes);  // byte-like: any address is aligned
    c.insert(c.end(), p, p + n);
  } else {
    if (reinterpret_cast<std::uintptr_t>(bytes) % alignof(T) == 0) {
      const T* p = reinterpret_cast<const T*>(bytes);
      c.insert(c.end(), p, p + n);
      return;
    }
    constexpr std::size_t chunk = 16384 / sizeof(T) + 1;  // stays in L1/L2
    T bounce[chunk];
    for (std::size_t done = 0; done < n;) {
      const std::size_t k = std::min(chunk, n - done);
      std::memcpy(static_cast<void*>(bounce), bytes + done * sizeof(T), k * sizeof(T));
      c.insert(c.end(), bounce, bounce + k);
      done += k;
    }
  }
}

template <class T>
  requires fast_v<T>
void fast_encode(Writer& w, const T& v) {
  FastCodec<T>::encode(w, v);
}
template <class T>
  requires fast_v<T>
T fast_decode(Reader& r) {
  return FastCodec<T>::decode(r);
}

// Raw bytes: numbers, enums, std::byte, PAREX_BITWISE types.
template <class T>
struct FastCodec<T, std::enable_if_t<raw_v<T>>> {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = sizeof(T);
  static void encode(Writer& w, const T& v) { w.put(&v, sizeof v); }
  static T decode(Reader& r) {
    alignas(T) unsigned char b[sizeof(T)];
    r.get(b, sizeof b);
    T v;
    std::memcpy(static_cast<void*>(&v), b, sizeof v);
    return v;
  }
};

template <class C, class Tr, class A>
struct FastCodec<std::basic_string<C, Tr, A>, std::enable_if_t<raw_v<C>>> {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = 1;
  static void encode(Writer& w, const std::basic_string<C, Tr, A>& s) {
    w.put_varint(s.size());
    w.put(s.data(), s.size() * sizeof(C));
  }
  static std::basic_string<C, Tr, A> decode(Reader& r) {
    const std::size_t n = r.get_count(sizeof(C));
    std::basic_string<C, Tr, A> s;
    bulk_append<C>(s, r.take(n * sizeof(C)).data(), n);
    return s;
  }
};

// Sequences: a count, then the elements; contiguous raw elements in one memcpy.
template <class Seq, class T>
struct SequenceCodec {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = 1;
  static constexpr bool bulk =
      raw_v<T> && std::is_same_v<Seq, std::vector<T, typename Seq::allocator_type>> && !std::is_same_v<T, bool> &&
      std::is_default_constructible_v<T>;
  static void encode(Writer& w, const Seq& s) {
    w.put_varint(s.size());
    if constexpr (bulk) {
      w.put(s.data(), s.size() * sizeof(T));
    } else {
      for (const auto& x : s) fast_encode<T>(w, static_cast<const T&>(x));
    }
  }
  static Seq decode(Reader& r) {
    const std::size_t n = r.get_count(FastCodec<T>::min_size);
    Seq s;
    if constexpr (bulk) {
      s.reserve(n);
      bulk_append<T>(s, r.take(n * sizeof(T)).data(), n);  // one copy, no zero-fill first
    } else {
      if constexpr (requires { s.reserve(n); }) s.reserve(n);
      for (std::size_t i = 0; i < n; ++i) s.push_back(fast_decode<T>(r));
    }
    return s;
  }
};
template <class T, class A>
struct FastCodec<std::vector<T, A>, std::enable_if_t<fast_v<T>>> : SequenceCodec<std::vector<T, A>, T> {};
template <class T, class A>
struct FastCodec<std::deque<T, A>, std::enable_if_t<fast_v<T>>> : SequenceCodec<std::deque<T, A>, T> {};
template <class T, class A>
struct FastCodec<std::list<T, A>, std::enable_if_t<fast_v<T>>> : SequenceCodec<std::list<T, A>, T> {};

template <class T, std::size_t N>
struct FastCodec<std::array<T, N>, std::enable_if_t<fast_v<T> && std::is_default_constructible_v<T>>> {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = N * FastCodec<T>::min_size;
  static void encode(Writer& w, const std::array<T, N>& a) {
    if constexpr (raw_v<T>) w.put(a.data(), sizeof a);
    else
      for (const auto& x : a) fast_encode<T>(w, x);
  }
  static std::array<T, N> decode(Reader& r) {
    std::array<T, N> a{};
    if constexpr (raw_v<T>) r.get(a.data(), sizeof a);
    else
      for (auto& x : a) x = fast_decode<T>(r);
    return a;
  }
};

// Associative containers: a count, then keys (and values).
template <class M, class K, class V>
struct MapCodec {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = 1;
  static void encode(Writer& w, const M& m) {
    w.put_varint(m.size());
    for (const auto& [k, v] : m) {
      fast_encode<K>(w, k);
      fast_encode<V>(w, v);
    }
  }
  static M decode(Reader& r) {
    const std::size_t n = r.get_count(FastCodec<K>::min_size + FastCodec<V>::min_size);
    M m;
    if constexpr (requires { m.reserve(n); }) m.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      K k = fast_decode<K>(r);
      m.emplace_hint(m.end(), std::move(k), fast_decode<V>(r));
    }
    return m;
  }
};
template <class S, class K>
struct SetCodec {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = 1;
  static void encode(Writer& w, const S& s) {
    w.put_varint(s.size());
    for (const auto& k : s) fast_encode<K>(w, k);
  }
  static S decode(Reader& r) {
    const std::size_t n = r.get_count(FastCodec<K>::min_size);
    S s;
    if constexpr (requires { s.reserve(n); }) s.reserve(n);
    for (std::size_t i = 0; i < n; ++i) s.emplace_hint(s.end(), fast_decode<K>(r));
    return s;
  }
};
template <class K, class V, class C, class A>
struct FastCodec<std::map<K, V, C, A>, std::enable_if_t<fast_v<K> && fast_v<V>>> : MapCodec<std::map<K, V, C, A>, K, V> {};
template <class K, class V, class C, class A>
struct FastCodec<std::multimap<K, V, C, A>, std::enable_if_t<fast_v<K> && fast_v<V>>>
    : MapCodec<std::multimap<K, V, C, A>, K, V> {};
template <class K, class V, class H, class E, class A>
struct FastCodec<std::unordered_map<K, V, H, E, A>, std::enable_if_t<fast_v<K> && fast_v<V>>>
    : MapCodec<std::unordered_map<K, V, H, E, A>, K, V> {};
template <class K, class C, class A>
struct FastCodec<std::set<K, C, A>, std::enable_if_t<fast_v<K>>> : SetCodec<std::set<K, C, A>, K> {};
template <class K, class C, class A>
struct FastCodec<std::multiset<K, C, A>, std::enable_if_t<fast_v<K>>> : SetCodec<std::multiset<K, C, A>, K> {};
template <class K, class H, class E, class A>
struct FastCodec<std::unordered_set<K, H, E, A>, std::enable_if_t<fast_v<K>>> : SetCodec<std::unordered_set<K, H, E, A>, K> {};

template <class... T>
struct FastCodec<std::tuple<T...>, std::enable_if_t<(fast_v<T> && ...)>> {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = (std::size_t{0} + ... + FastCodec<T>::min_size);
  static void encode(Writer& w, const std::tuple<T...>& t) {
    std::apply([&](const auto&... x) { (fast_encode<std::remove_cvref_t<decltype(x)>>(w, x), ...); }, t);
  }
  static std::tuple<T...> decode(Reader& r) { return std::tuple<T...>{fast_decode<T>(r)...}; }  // braces: left to right
};
template <class A, class B>
struct FastCodec<std::pair<A, B>, std::enable_if_t<fast_v<A> && fast_v<B>>> {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = FastCodec<A>::min_size + FastCodec<B>::min_size;
  static void encode(Writer& w, const std::pair<A, B>& p) {
    fast_encode<A>(w, p.first);
    fast_encode<B>(w, p.second);
  }
  static std::pair<A, B> decode(Reader& r) { return std::pair<A, B>{fast_decode<A>(r), fast_decode<B>(r)}; }
};
template <class T>
struct FastCodec<std::optional<T>, std::enable_if_t<fast_v<T>>> {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = 1;
  static void encode(Writer& w, const std::optional<T>& o) {
    w.put_byte(o.has_value());
    if (o) fast_encode<T>(w, *o);
  }
  static std::optional<T> decode(Reader& r) {
    switch (r.get_byte()) {
      case 0: return std::nullopt;
      case 1: return fast_decode<T>(r);
      default: throw ProtocolError("malformed optional");
    }
  }
};
template <>
struct FastCodec<std::monostate> {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = 0;
  static void encode(Writer&, std::monostate) {}
  static std::monostate decode(Reader&) { return {}; }
};
template <class... T>
struct FastCodec<std::variant<T...>, std::enable_if_t<(fast_v<T> && ...)>> {
  using V = std::variant<T...>;
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = 1;
  static void encode(Writer& w, const V& v) {
    if (v.valueless_by_exception()) throw NotSerializable("cannot encode a valueless std::variant");
    w.put_varint(v.index());
    std::visit([&](const auto& x) { fast_encode<std::remove_cvref_t<decltype(x)>>(w, x); }, v);
  }
  static V decode(Reader& r) {
    const std::uint64_t i = r.get_varint();
    if (i >= sizeof...(T)) throw ProtocolError("std::variant index out of range");
    return decode_at(r, static_cast<std::size_t>(i), std::index_sequence_for<T...>{});
  }

 private:
  template <std::size_t... I>
  static V decode_at(Reader& r, std::size_t i, std::index_sequence<I...>) {
    using Fn = V (*)(Reader&);
    static constexpr Fn table[] = {+[](Reader& rr) {
      return V(std::in_place_index<I>, fast_decode<std::variant_alternative_t<I, V>>(rr));
    }...};
    return table[i](r);
  }
};
template <class R, class P>
struct FastCodec<std::chrono::duration<R, P>, std::enable_if_t<raw_v<R>>> {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = sizeof(R);
  static void encode(Writer& w, const std::chrono::duration<R, P>& d) { fast_encode<R>(w, d.count()); }
  static std::chrono::duration<R, P> decode(Reader& r) { return std::chrono::duration<R, P>(fast_decode<R>(r)); }
};
template <class C, class D>
struct FastCodec<std::chrono::time_point<C, D>, std::enable_if_t<fast_v<D>>> {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = FastCodec<D>::min_size;
  static void encode(Writer& w, const std::chrono::time_point<C, D>& t) { fast_encode<D>(w, t.time_since_epoch()); }
  static std::chrono::time_point<C, D> decode(Reader& r) { return std::chrono::time_point<C, D>(fast_decode<D>(r)); }
};
template <class T>
struct FastCodec<std::complex<T>, std::enable_if_t<raw_v<T>>> {
  static constexpr bool enabled = true;
  static constexpr std::size_t min_size = 2 * sizeof(T);
  static void encode(Writer& w, const std::complex<T>& c) {
    fast_encode<T>(w, c.real());
    fast_encode<T>(w, c.imag());
  }
  static std::complex<T> decode(Reader& r) {
    const T re = fast_decode<T>(r);
    return {re, fast_decode<T>(r)};
  }
};

}  // namespace detail
}  // namespace parex
