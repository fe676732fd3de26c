// parex/serialize.hpp - what can cross a process boundary, and how it is encoded.
//
// Three kinds of codec, chosen at compile time per type:
//   fast   (detail/wire/fast_codec.hpp) arithmetic types, enums, std::string, and std containers / pair / tuple /
//          optional / variant / chrono types built from them: parex's own format, with
//          one memcpy for contiguous trivially copyable data (~10 ns per int, no archive).
//          PAREX_BITWISE(T) opts a trivially copyable struct into the same memcpy path.
//   boost  types with Boost.Serialization support (a serialize member, or a free
//          serialize found by argument-dependent lookup), and std containers of them:
//          one boost::archive::binary_oarchive per value. A fresh archive costs
//          ~650-850 ns here (no_header | no_codecvt over our own streambuf), so this
//          path is for rich user types, not for the millions-of-tiny-calls hot path.
//   none   everything else: Serializable<T> is false and sending it is a compile error.
// Every decoder is bounds-checked: corrupt input throws ProtocolError, never reads out of
// bounds, never allocates more than the input could hold. Stateless; thread-safe.
#pragma once

#include <parex/detail/wire/buffer.hpp>
#include <parex/detail/wire/fast_codec.hpp>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/array.hpp>
#include <boost/serialization/deque.hpp>
#include <boost/serialization/list.hpp>
#include <boost/serialization/map.hpp>
#include <boost/serialization/set.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/unordered_map.hpp>
#include <boost/serialization/unordered_set.hpp>
#include <boost/serialization/utility.hpp>
#include <boost/serialization/vector.hpp>

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
#include <streambuf>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

/// The fix for a type that is not serializable, in every message about it (a string
/// literal, so that static_assert can use it).
#define PAREX_DETAIL_SERIALIZABLE_FIX                                                                     \
  "a parameter type is not serializable: give it a serialize(Archive&, unsigned) member (Boost.Serialization), " \
  "mark a trivially copyable struct with PAREX_BITWISE, or use std types"

namespace parex {

namespace detail {

enum class CodecKind { none, fast, boost };

// ---- Boost.Serialization support, as parex can see it --------------------------------
// A member named serialize, of any access (friend boost::serialization::access is the
// usual idiom): looking it up through a class that also inherits a serialize from a
// probe base is ambiguous exactly when T has one.
struct SerializeProbeBase {
  void serialize();
};
template <class T>
struct SerializeProbe : T, SerializeProbeBase {};
template <class T>
concept HasMemberSerialize =
    std::is_class_v<T> &&
    ((!std::is_final_v<T> && !requires { &SerializeProbe<T>::serialize; }) ||
     requires(T& t, boost::archive::binary_oarchive& ar) { t.serialize(ar, 0u); });
template <class T>
concept HasFreeSerialize = requires(T& t, boost::archive::binary_oarchive& ar) { serialize(ar, t, 0u); };

// std containers that Boost 1.81 itself serializes (headers included above).
template <class T>
struct BoostStdContainer : std::false_type {};
template <class T, class A>
struct BoostStdContainer<std::vector<T, A>> : std::true_type { using elements = std::tuple<T>; };
template <class T, class A>
struct BoostStdContainer<std::deque<T, A>> : std::true_type { using elements = std::tuple<T>; };
template <class T, class A>
struct BoostStdContainer<std::list<T, A>> : std::true_type { using elements = std::tuple<T>; };
template <class T, std::size_t N>
struct BoostStdContainer<std::array<T, N>> : std::true_type { using elements = std::tuple<T>; };
template <class K, class V, class C, class A>
struct BoostStdContainer<std::map<K, V, C, A>> : std::true_type { using elements = std::tuple<K, V>; };
template <class K, class V, class C, class A>
struct BoostStdContainer<std::multimap<K, V, C, A>> : std::true_type { using elements = std::tuple<K, V>; };
template <class K, class V, class H, class E, class A>
struct BoostStdContainer<std::unordered_map<K, V, H, E, A>> : std::true_type { using elements = std::tuple<K, V>; };
template <class K, class C, class A>
struct BoostStdContainer<std::set<K, C, A>> : std::true_type { using elements = std::tuple<K>; };
template <class K, class H, class E, class A>
struct BoostStdContainer<std::unordered_set<K, H, E, A>> : std::true_type { using elements = std::tuple<K>; };
template <class A, class B>
struct BoostStdContainer<std::pair<A, B>> : std::true_type { using elements = std::tuple<A, B>; };

template <class T>
constexpr CodecKind auto_kind();

template <class Tuple>
struct AllEncodable;
template <class... T>
struct AllEncodable<std::tuple<T...>> : std::bool_constant<((auto_kind<T>() != CodecKind::none) && ...)> {};

}  // namespace detail

/// True for every type the process backend can send. Specialize to std::true_type for a
/// type that Boost.Serialization handles but parex cannot see (a serialize() defined in
/// namespace boost::serialization, BOOST_SERIALIZATION_SPLIT_FREE).
template <class T>
struct is_serializable : std::bool_constant<detail::auto_kind<T>() != detail::CodecKind::none> {};

template <class T>
concept Serializable = is_serializable<std::remove_cv_t<T>>::value;

namespace detail {

template <class T>
constexpr CodecKind auto_kind() {
  using U = std::remove_cv_t<T>;
  if constexpr (fast_v<U>) return CodecKind::fast;
  else if constexpr (HasMemberSerialize<U> || HasFreeSerialize<U>) return CodecKind::boost;
  else if constexpr (BoostStdContainer<U>::value) {
    if constexpr (AllEncodable<typename BoostStdContainer<U>::elements>::value) return CodecKind::boost;
    else return CodecKind::none;
  } else return CodecKind::none;
}

template <class T>
constexpr CodecKind codec_kind() {
  using U = std::remove_cv_t<T>;
  constexpr CodecKind k = auto_kind<U>();
  if constexpr (k == CodecKind::none && is_serializable<U>::value) return CodecKind::boost;  // user opt-in
  else return k;
}

// Streambufs that let a Boost archive write into a Writer and read from a span.
class WriterStreambuf final : public std::streambuf {
 public:
  explicit WriterStreambuf(Writer& w) : w_(w) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  int_type overflow(int_type c) override;

 private:
  Writer& w_;
};
class SpanStreambuf final : public std::streambuf {
 public:
  explicit SpanStreambuf(std::span<const std::byte> b);
};

inline constexpr unsigned boost_archive_flags = boost::archive::no_header | boost::archive::no_codecvt;

/// Encodes v (T decayed) in the codec its type selects.
template <class T>
void encode(Writer& w, const T& v) {
  constexpr CodecKind kind = codec_kind<T>();
  static_assert(kind != CodecKind::none, "parex: this type cannot be serialized (see parex::Serializable)");
  if constexpr (kind == CodecKind::fast) {
    fast_encode<T>(w, v);
  } else {
    // [u64 length][archive bytes]: the length lets a reader skip a value it failed on.
    const std::size_t at = w.size();
    w.put_raw<std::uint64_t>(0);
    {
      WriterStreambuf sb(w);
      boost::archive::binary_oarchive ar(sb, boost_archive_flags);
      ar << v;
    }
    const std::uint64_t n = w.size() - at - sizeof(std::uint64_t);
    std::memcpy(w.data() + at, &n, sizeof n);
  }
}

/// Decodes a T encoded by encode<T>.
template <class T>
T decode(Reader& r) {
  constexpr CodecKind kind = codec_kind<T>();
  static_assert(kind != CodecKind::none, "parex: this type cannot be serialized (see parex::Serializable)");
  if constexpr (kind == CodecKind::fast) {
    return fast_decode<T>(r);
  } else {
    static_assert(std::is_default_constructible_v<T>, "parex: Boost.Serialization loads into a default-constructed value");
    const auto n = r.get_raw<std::uint64_t>();
    SpanStreambuf sb(r.take(n));
    boost::archive::binary_iarchive ar(sb, boost_archive_flags);
    T v;
    ar >> v;
    return v;
  }
}

/// A cheap estimate of encoded size for the types whose payload can be large (strings and
/// vectors of raw values); 0 when unknown. Lets an encoder reserve a length prefix of the
/// right width instead of shifting a large body afterwards.
template <class T>
std::size_t size_hint(const T& v) noexcept {
  if constexpr (requires { v.size(); v.data(); }) {
    using E = std::remove_cvref_t<decltype(*v.data())>;
    if constexpr (raw_v<E>) return v.size() * sizeof(E) + 10;
  }
  return 0;
}

/// Bytes an encoded T always takes, if fixed (lets hot paths skip length bookkeeping).
template <class T>
constexpr std::size_t fixed_encoded_size() {
  if constexpr (codec_kind<T>() == CodecKind::fast && raw_v<std::remove_cv_t<T>>) return sizeof(T);
  else return 0;
}

}  // namespace detail
}  // namespace parex

/// Sends T as its raw bytes (T must be trivially copyable, with no pointers inside).
/// Use at global scope.
#define PAREX_BITWISE(T)                                                              \
  static_assert(std::is_trivially_copyable_v<T>, "PAREX_BITWISE needs a trivially copyable type"); \
  template <>                                                                         \
  struct parex::is_bitwise<T> : std::true_type {}
