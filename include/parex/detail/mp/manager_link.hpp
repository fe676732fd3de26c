// parex/detail/mp/manager_link.hpp - what the Manager's proxies (parex/mp/manager.hpp)
// need from the non-template side: the connection to a server (ManagerLink), the request
// layout written once for both sides, and the registry of user types a server serves.
//
// The wire, after the handshake (src/mp/socket_protocol.cpp): every message is a u32
// little-endian length and that many bytes. A request is [u8 op][fields]; a reply is
// [u8 status: 0 ok, 1 error][the result, or the encoded exception]. Items travel as
// blobs (varint length, then the item encoded by parex's codec): the server stores and
// compares bytes and never decodes a user's item, so a list or dict serves any types.
#pragma once

#include <parex/detail/wire/buffer.hpp>
#include <parex/registry.hpp>
#include <parex/serialize.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

namespace parex::detail {

enum class ManagerOp : std::uint8_t { create = 1, call = 2, publish = 3, lookup = 4, shutdown = 5, hold = 6 };

/// How long each side of a Manager connection gives the other to complete the handshake
/// (connect() included, on the client's side). A live peer answers in well under a
/// millisecond; 10 s leaves room for a machine under heavy load (swapping, a server with
/// a thousand connection threads) while bounding what a silent peer costs: a client
/// waiting on something that accepts and never speaks fails with TimeoutError, and a
/// server drops a client that never answers its challenge.
inline constexpr std::chrono::milliseconds manager_handshake_timeout{10'000};

/// Request headers, written by the client and read by the server with these functions.
inline void put_str(Writer& w, std::string_view s) {
  w.put_varint(s.size());
  w.put(s.data(), s.size());
}
inline std::string_view get_str(Reader& r) {
  const auto b = r.take(r.get_varint());
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline void put_blob(Writer& w, std::span<const std::byte> b) {
  w.put_varint(b.size());
  w.put(b.data(), b.size());
}
inline std::span<const std::byte> get_blob(Reader& r) { return r.take(r.get_varint()); }
/// A value as a blob: its encoding, length-prefixed.
template <class T>
void put_item(Writer& w, const T& v) {
  Buffer tmp;
  encode<T>(tmp, v);
  put_blob(w, tmp.bytes());
}
template <class T>
T get_item(Reader& r) {
  Reader item(get_blob(r));
  return decode<T>(item);
}
inline void put_call_header(Writer& w, std::uint64_t id, std::uint64_t tag, std::string_view method) {
  w.put_byte(static_cast<std::uint8_t>(ManagerOp::call));
  w.put_raw(id);
  w.put_raw(tag);
  put_str(w, method);
}
inline void put_create_header(Writer& w, std::string_view kind, std::uint64_t tag) {
  w.put_byte(static_cast<std::uint8_t>(ManagerOp::create));
  put_str(w, kind);
  w.put_raw(tag);
}

/// One authenticated connection to a manager server, shared by every proxy of this
/// process that uses the same address and key. Requests are serialized on it.
class ManagerLink {
 public:
  /// The process's link to `address` (made on first use). @throws ConnectionError,
  /// AuthenticationError.
  static std::shared_ptr<ManagerLink> get(const std::string& address, const std::string& authkey);
  ManagerLink(std::string address, std::string authkey);
  ManagerLink(const ManagerLink&) = delete;
  ManagerLink& operator=(const ManagerLink&) = delete;
  ~ManagerLink();

  /// Sends one request (written into `request`) and returns the reply's result bytes,
  /// connecting first if need be (within manager_handshake_timeout). Rethrows the
  /// server's exception. @throws ConnectionError when the server is gone (at once: a dead
  /// server is never waited for); TimeoutError when connecting timed out.
  std::vector<std::byte> request(const Buffer& request);
  /// Connects now if not connected, giving up after `timeout`.
  /// @throws ConnectionError, AuthenticationError, TimeoutError.
  void connect(std::chrono::milliseconds timeout);

  const std::string& address() const noexcept { return address_; }
  const std::string& authkey() const noexcept { return authkey_; }

 private:
  void connect_locked(std::chrono::milliseconds timeout);
  std::string address_, authkey_;
  std::mutex mutex_;
  int fd_ = -1;
  std::unique_ptr<class MessageReader> in_;  // replies
};

// ---- user types a manager serves (PAREX_MANAGER_REGISTER) ----------------------------
using ManagedMethod = void (*)(void* object, Reader& args, Writer& result);
struct ManagedMethodEntry {
  const char* name;
  ManagedMethod fn;
};
bool register_managed_type(const char* type, void* (*create)(), void (*destroy)(void*),
                           std::initializer_list<ManagedMethodEntry> methods) noexcept;

/// Set by PAREX_MANAGER_REGISTER: the registered names of a type and of its methods.
template <class C>
inline constexpr std::string_view managed_type_name{};
template <auto M>
inline constexpr std::string_view managed_method_name{};

template <class M>
struct MemberTraits;
#define PAREX_DETAIL_MEMBER_TRAITS(qual)                 \
  template <class R, class C, class... P>                \
  struct MemberTraits<R (C::*)(P...) qual> {             \
    using Class = C;                                     \
    using Result = R;                                    \
    using Params = std::tuple<std::decay_t<P>...>;       \
  };
PAREX_DETAIL_MEMBER_TRAITS()
PAREX_DETAIL_MEMBER_TRAITS(const)
PAREX_DETAIL_MEMBER_TRAITS(noexcept)
PAREX_DETAIL_MEMBER_TRAITS(const noexcept)
#undef PAREX_DETAIL_MEMBER_TRAITS

/// The server's side of a method call: decode the parameters, call, encode the result.
template <auto M>
void invoke_managed(void* object, Reader& args, Writer& result) {
  using Tr = MemberTraits<decltype(M)>;
  auto* self = static_cast<typename Tr::Class*>(object);
  [&]<class... P>(std::tuple<P...>*) {
    std::tuple<P...> a{get_item<P>(args)...};  // braces: decoded left to right
    if constexpr (std::is_void_v<typename Tr::Result>) {
      std::apply([&](P&... p) { (self->*M)(std::move(p)...); }, a);
    } else {
      put_item<std::decay_t<typename Tr::Result>>(result, std::apply([&](P&... p) { return (self->*M)(std::move(p)...); }, a));
    }
  }(static_cast<typename Tr::Params*>(nullptr));
}

template <class C>
void* create_managed() {
  return new C();
}
template <class C>
void destroy_managed(void* p) {
  delete static_cast<C*>(p);
}

}  // namespace parex::detail

// FOR_EACH over up to 16 member names.
#define PAREX_DETAIL_FE_1(M, T, x) M(T, x)
#define PAREX_DETAIL_FE_2(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_1(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_3(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_2(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_4(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_3(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_5(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_4(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_6(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_5(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_7(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_6(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_8(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_7(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_9(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_8(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_10(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_9(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_11(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_10(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_12(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_11(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_13(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_12(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_14(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_13(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_15(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_14(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_16(M, T, x, ...) M(T, x) PAREX_DETAIL_FE_15(M, T, __VA_ARGS__)
#define PAREX_DETAIL_FE_PICK(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, NAME, ...) NAME
#define PAREX_DETAIL_FOR_EACH(M, T, ...)                                                                            \
  PAREX_DETAIL_FE_PICK(__VA_ARGS__, PAREX_DETAIL_FE_16, PAREX_DETAIL_FE_15, PAREX_DETAIL_FE_14, PAREX_DETAIL_FE_13, \
                       PAREX_DETAIL_FE_12, PAREX_DETAIL_FE_11, PAREX_DETAIL_FE_10, PAREX_DETAIL_FE_9,               \
                       PAREX_DETAIL_FE_8, PAREX_DETAIL_FE_7, PAREX_DETAIL_FE_6, PAREX_DETAIL_FE_5, PAREX_DETAIL_FE_4, \
                       PAREX_DETAIL_FE_3, PAREX_DETAIL_FE_2, PAREX_DETAIL_FE_1)(M, T, __VA_ARGS__)
#define PAREX_DETAIL_MANAGED_NAME(T, m) \
  template <>                           \
  inline constexpr std::string_view managed_method_name<&T::m> = #T "::" #m;
#define PAREX_DETAIL_MANAGED_ENTRY(T, m) {#T "::" #m, &::parex::detail::invoke_managed<&T::m>},

/// Makes a default-constructible class servable by a Manager (Python's
/// BaseManager.register), with the member functions a proxy may call, by name:
///   PAREX_MANAGER_REGISTER(Counter, add, get);   // at global scope, in Counter's header
///   auto c = manager.make<Counter>();  c.call<&Counter::add>(5);
/// Parameters and results are encoded as pool calls' are; a method must not be overloaded.
/// Every file that calls Proxy<C>::call or Manager::make<C> must see the macro (it names
/// the methods at compile time): put it in the type's header.
#define PAREX_MANAGER_REGISTER(Type, ...)                                                                     \
  namespace parex::detail {                                                                                    \
  template <>                                                                                                  \
  inline constexpr std::string_view managed_type_name<Type> = #Type;                                          \
  PAREX_DETAIL_FOR_EACH(PAREX_DETAIL_MANAGED_NAME, Type, __VA_ARGS__)                                          \
  }                                                                                                            \
  [[maybe_unused]] static const bool PAREX_DETAIL_CAT(parex_managed_, __COUNTER__) =                  \
      ::parex::detail::register_managed_type(#Type, &::parex::detail::create_managed<Type>,                    \
                                             &::parex::detail::destroy_managed<Type>,                          \
                                             {PAREX_DETAIL_FOR_EACH(PAREX_DETAIL_MANAGED_ENTRY, Type, __VA_ARGS__)})
