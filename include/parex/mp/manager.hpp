// parex/mp/manager.hpp - Python's multiprocessing.Manager: objects kept in a server
// process, reached through proxies.
//
//   int main(int argc, char** argv) {
//     parex::init(argc, argv);                    // the server is this program re-executed
//     parex::Manager m;                           // starts it; ~Manager ends it
//     auto words = m.dict<std::string, int>();
//     auto seen = m.list<int>();
//     parex::Process p(count_words, words, seen);  // proxies travel like any handle
//     ...
//   }
//
// Proxies (ListProxy, DictProxy, ValueProxy, ArrayProxy, NamespaceProxy, Proxy<C>) are
// handles: copies, and copies passed to a Process, a pool call, through a Queue or
// published by name, reach the same server object. Each proxy call is one request,
// atomic on the server. The server stores items as encoded bytes (parex's codec), so
// index/count/remove and dict keys compare encodings: equal values of one type always
// encode equally (floating point: 0.0 and -0.0 differ, as do NaNs with other bits).
//
// Errors, on the caller's side: an index out of range is IndexError, a missing key
// KeyError, a missing Namespace attribute AttributeError, a proxy decoded as another
// type (or element type), or a lookup<T> of a value published as another type,
// SharedObjectError; a user method's exception its own type (as a pool call's), a dead
// or unreachable server ConnectionError (at once, never a hang), a wrong authkey
// AuthenticationError, and something at the address that accepts but does not complete
// the handshake within manager_handshake_timeout (10 s; connect's own timeout) TimeoutError.
// A client's bad request fails that request only.
//
// Queue, JoinableQueue, Lock, RLock, Semaphore, Event, Condition and Barrier are not
// proxied: the factories return the toolbox's own shared-memory objects, which every
// process reaches directly (no server round trip per call: far faster than Python's
// proxies, and they keep working if the server ends). They travel and publish the same.
// The server holds each one's memory, as it holds its proxied objects: a handle reaches
// it while the server runs, after every other process has dropped it (a temporary
// appended to a manager list works); once the server has ended, while a process that
// holds it runs, as any toolbox object. (The server must be able to open this process's
// memory: same user; a server of another user makes these factories throw SharedObjectError.)
//
// Separate programs: Manager(ManagerOptions{.address = "/run/me/app.sock", .authkey =
// "..."}) serves at a Unix socket path (owner-only) or at "127.0.0.1:PORT" (PORT 0: any
// free one; address() tells it); publish(name, object) names an object, and another
// program does Manager::connect(address, authkey).lookup<T>(name). The handshake is a
// challenge-response over HMAC-SHA256 of the key, both ways; the key never crosses.
// A proxy carries its server's address and key: hand it only to processes you trust with
// the key (as in Python, where children inherit the authkey).
//
// Objects live until the server ends (no distributed reference counting). One connection
// per process and server is shared by that process's proxies; calls on it are serialized.
//
// Under faults: connections that never authenticate cannot lock clients with the key out
// (a full server drops the oldest of them for a new connection: max_connections); a
// server whose owner is killed, or exits without ~Manager, ends and removes its socket
// and the private directory of a default address (only a SIGKILL of the server itself
// leaves them, and the owner's shutdown() then removes them).
#pragma once

#include <parex/detail/mp/manager_link.hpp>
#include <parex/detail/mp/segment.hpp>
#include <parex/detail/wire/type_tag.hpp>
#include <parex/mp/condition.hpp>
#include <parex/mp/lock.hpp>
#include <parex/mp/queues.hpp>
#include <parex/mp/sharedctypes.hpp>
#include <parex/mp/synchronize.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace parex {

namespace detail {
/// What every proxy is: a link, an object id and the type tag the object was made with.
class ProxyBase {
 public:
  using parex_shared_handle = void;
  std::uint64_t id() const noexcept { return id_; }
  const std::string& address() const { return link().address(); }

 protected:
  ProxyBase() = default;
  ProxyBase(std::shared_ptr<ManagerLink> link, std::uint64_t id, std::uint64_t tag)
      : link_(std::move(link)), id_(id), tag_(tag) {}
  ProxyBase(Reader& r, std::uint64_t tag, const char* what);

  /// One call: header, then the arguments as items; returns the reply.
  template <class... A>
  std::vector<std::byte> call(std::string_view method, const A&... args) const {
    Buffer b;
    put_call_header(b, id_, tag_, method);
    (put_item<A>(b, args), ...);
    return link().request(b);
  }
  template <class R, class... A>
  R call_for(std::string_view method, const A&... args) const {
    const auto reply = call(method, args...);
    Reader r(reply);
    return get_item<R>(r);
  }
  /// A call whose arguments are a count and that many items (extend), or that many
  /// key and value items (update: Pairs = true).
  template <bool Pairs = false, class Items>
  void call_items(std::string_view method, const Items& items) const {
    Buffer b;
    put_call_header(b, id_, tag_, method);
    b.put_varint(std::ranges::size(items));
    for (const auto& x : items) {
      if constexpr (Pairs) {
        put_item(b, x.first);
        put_item(b, x.second);
      } else {
        put_item(b, x);
      }
    }
    link().request(b);
  }
  /// A reply of a count and that many items, or (pairs) key and value items.
  template <class T, bool Pairs = false, class... A>
  std::vector<T> call_many(std::string_view method, const A&... args) const {
    const auto reply = call(method, args...);
    Reader r(reply);
    const std::size_t n = r.get_count(1);
    std::vector<T> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      if constexpr (Pairs) {
        auto k = get_item<typename T::first_type>(r);
        out.emplace_back(std::move(k), get_item<typename T::second_type>(r));
      } else {
        out.push_back(get_item<T>(r));
      }
    }
    return out;
  }
  void encode_base(Writer& w) const;
  ManagerLink& link() const;

 private:
  std::shared_ptr<ManagerLink> link_;
  std::uint64_t id_ = 0, tag_ = 0;
};
template <class P>
std::uint64_t proxy_tag() noexcept {
  return type_tag<P>();
}
}  // namespace detail

#define PAREX_DETAIL_PROXY_CODEC(Name)                                     \
  void encode_to(detail::Writer& w) const { encode_base(w); }              \
  static Name decode_from(detail::Reader& r) { return Name(r); }           \
                                                                           \
 private:                                                                  \
  explicit Name(detail::Reader& r) : ProxyBase(r, detail::proxy_tag<Name>(), #Name) {} \
  using ProxyBase::ProxyBase;                                              \
  friend class Manager;                                                    \
                                                                           \
 public:

/// Python's ListProxy. Indices may be negative (from the end), as in Python.
template <class T>
class ListProxy : public detail::ProxyBase {
 public:
  PAREX_DETAIL_PROXY_CODEC(ListProxy)
  ListProxy() = default;
  void append(const T& v) const { call("append", v); }
  template <std::ranges::input_range R>
  void extend(R&& values) const {
    std::vector<T> v(std::ranges::begin(values), std::ranges::end(values));
    call_items("extend", v);
  }
  void insert(std::ptrdiff_t i, const T& v) const { call("insert", std::int64_t(i), v); }
  T pop(std::ptrdiff_t i = -1) const { return call_for<T>("pop", std::int64_t(i)); }
  /// Removes the first equal item. @throws ValueError if none.
  void remove(const T& v) const { call("remove", v); }
  /// @throws ValueError if no item is equal.
  std::size_t index(const T& v) const { return call_for<std::uint64_t>("index", v); }
  std::size_t count(const T& v) const { return call_for<std::uint64_t>("count", v); }
  T get(std::ptrdiff_t i) const { return call_for<T>("get", std::int64_t(i)); }
  void set(std::ptrdiff_t i, const T& v) const { call("set", std::int64_t(i), v); }
  std::size_t size() const { return call_for<std::uint64_t>("size"); }
  void clear() const { call("clear"); }
  std::vector<T> to_vector() const { return call_many<T>("to_vector"); }
};

/// Python's DictProxy (keys kept in insertion order, as a dict's).
template <class K, class V>
class DictProxy : public detail::ProxyBase {
 public:
  PAREX_DETAIL_PROXY_CODEC(DictProxy)
  DictProxy() = default;
  std::optional<V> get(const K& k) const {
    auto v = call_many<V>("get", k);  // none or one
    if (v.empty()) return std::nullopt;
    return std::move(v.front());
  }
  /// @throws KeyError if absent.
  V at(const K& k) const { return call_for<V>("at", k); }
  void set(const K& k, const V& v) const { call("set", k, v); }
  bool contains(const K& k) const { return call_for<bool>("contains", k); }
  /// Removes and returns. @throws KeyError if absent.
  V pop(const K& k) const { return call_for<V>("pop", k); }
  /// The value at k, first set to v if absent.
  V setdefault(const K& k, const V& v) const { return call_for<V>("setdefault", k, v); }
  template <std::ranges::input_range R>
  void update(R&& pairs) const {
    std::vector<std::pair<K, V>> v;
    for (auto&& [k, x] : pairs) v.emplace_back(k, x);
    call_items<true>("update", v);
  }
  std::vector<K> keys() const { return call_many<K>("keys"); }
  std::vector<V> values() const { return call_many<V>("values"); }
  std::vector<std::pair<K, V>> items() const { return call_many<std::pair<K, V>, true>("items"); }
  std::size_t size() const { return call_for<std::uint64_t>("size"); }
  void clear() const { call("clear"); }
  std::map<K, V> to_map() const {
    auto it = items();
    return std::map<K, V>(std::make_move_iterator(it.begin()), std::make_move_iterator(it.end()));
  }
};

/// Python's manager Value: get() and set(v), each one atomic request.
template <class T>
class ValueProxy : public detail::ProxyBase {
 public:
  PAREX_DETAIL_PROXY_CODEC(ValueProxy)
  ValueProxy() = default;
  T get() const { return call_for<T>("get"); }
  void set(const T& v) const { call("set", v); }
};

/// Python's manager Array: fixed size; get(i), set(i, v), size(), to_vector().
template <class T>
class ArrayProxy : public detail::ProxyBase {
 public:
  PAREX_DETAIL_PROXY_CODEC(ArrayProxy)
  ArrayProxy() = default;
  T get(std::ptrdiff_t i) const { return call_for<T>("get", std::int64_t(i)); }
  void set(std::ptrdiff_t i, const T& v) const { call("set", std::int64_t(i), v); }
  std::size_t size() const { return call_for<std::uint64_t>("size"); }
  std::vector<T> to_vector() const { return call_many<T>("to_vector"); }
};

/// Python's Namespace: named attributes of any serializable type.
class NamespaceProxy : public detail::ProxyBase {
 public:
  PAREX_DETAIL_PROXY_CODEC(NamespaceProxy)
  NamespaceProxy() = default;
  template <class T>
  void set(std::string_view name, const T& v) const {
    call("set", std::string(name), detail::type_tag<T>(), v);
  }
  /// @throws AttributeError if never set; SharedObjectError if set with another type.
  template <class T>
  T get(std::string_view name) const {
    return call_for<T>("get", std::string(name), detail::type_tag<T>());
  }
  bool has(std::string_view name) const { return call_for<bool>("has", std::string(name)); }
  void del(std::string_view name) const { call("del", std::string(name)); }
};

/// A proxy to a user's object (PAREX_MANAGER_REGISTER): call<&C::method>(args...).
template <class C>
class Proxy : public detail::ProxyBase {
 public:
  PAREX_DETAIL_PROXY_CODEC(Proxy)
  Proxy() = default;
  template <auto M, class... A>
  auto call(A&&... args) const {
    using Tr = detail::MemberTraits<decltype(M)>;
    static_assert(std::is_same_v<typename Tr::Class, C>, "Proxy<C>::call<&X::m>: m must be a member of C");
    static_assert(!detail::managed_method_name<M>.empty(),
                  "Proxy<C>::call<&C::m>: list m in PAREX_MANAGER_REGISTER(C, ...)");
    using R = std::decay_t<typename Tr::Result>;
    return [&]<class... P>(std::tuple<P...>*) {
      static_assert(sizeof...(P) == sizeof...(A), "Proxy<C>::call: wrong number of arguments");
      const auto reply = ProxyBase::call(detail::managed_method_name<M>, static_cast<const P&>(P(std::forward<A>(args)))...);
      if constexpr (!std::is_void_v<R>) {
        detail::Reader r(reply);
        return detail::get_item<R>(r);
      }
    }(static_cast<typename Tr::Params*>(nullptr));
  }
};
#undef PAREX_DETAIL_PROXY_CODEC

struct ManagerOptions {
  /// Empty: a fresh Unix socket in a private directory. A path: a Unix socket there (it
  /// must not exist; made owner-only). "127.0.0.1:PORT": TCP on loopback (PORT 0: any).
  std::string address;
  /// Empty: 32 random bytes (authkey() tells them, for processes you hand them to).
  std::string authkey;
  /// Connections served at once. When all are taken, a new one takes the place of the
  /// oldest that has not completed the handshake; only when every one has is it closed.
  std::size_t max_connections = 1024;
  /// A request larger than this closes its connection.
  std::size_t max_message_bytes = std::size_t{1} << 30;
  /// How long a Manager waits for its server to listen.
  std::chrono::milliseconds start_timeout{10'000};
};

class Manager {
 public:
  /// Starts a server process (this program re-executed; parex::init must be first in
  /// main) and waits until it listens. @throws std::system_error, ConnectionError.
  explicit Manager(ManagerOptions options = {});
  /// A manager served by another process (a Manager constructed there with this address
  /// and key): nothing starts; shutdown() and the destructor end nothing.
  /// @throws ConnectionError (nothing listens there), AuthenticationError, TimeoutError
  /// (what listens there did not complete the handshake within `timeout`).
  static Manager connect(const std::string& address, const std::string& authkey,
                         std::chrono::milliseconds timeout = detail::manager_handshake_timeout);
  Manager(Manager&&) noexcept;
  Manager& operator=(Manager&&) noexcept;
  /// shutdown() if this Manager started the server.
  ~Manager();
  /// Ends the server (if this Manager started it) and waits for it; proxies then fail
  /// with ConnectionError. Idempotent.
  void shutdown() noexcept;

  const std::string& address() const noexcept;
  const std::string& authkey() const noexcept;
  /// The server's pid; 0 for a connected Manager.
  pid_t pid() const noexcept;

  template <class T>
  ListProxy<T> list() {
    return ListProxy<T>(link(), create("list", detail::proxy_tag<ListProxy<T>>()), detail::proxy_tag<ListProxy<T>>());
  }
  template <class T, std::ranges::input_range R>
  ListProxy<T> list(R&& values) {
    auto l = list<T>();
    l.extend(std::forward<R>(values));
    return l;
  }
  template <class K, class V>
  DictProxy<K, V> dict() {
    constexpr auto tag = &detail::proxy_tag<DictProxy<K, V>>;
    return DictProxy<K, V>(link(), create("dict", tag()), tag());
  }
  NamespaceProxy Namespace() {
    return NamespaceProxy(link(), create("namespace", detail::proxy_tag<NamespaceProxy>()), detail::proxy_tag<NamespaceProxy>());
  }
  template <class T>
  ValueProxy<T> Value(const T& init) {
    detail::Buffer b;
    detail::put_item<T>(b, init);
    const auto tag = detail::proxy_tag<ValueProxy<T>>();
    return ValueProxy<T>(link(), create("value", tag, &b), tag);
  }
  template <class T>
  ArrayProxy<T> Array(std::size_t n) {
    return Array<T>(std::vector<T>(n));
  }
  template <class T>
  ArrayProxy<T> Array(std::initializer_list<T> values) {
    return Array<T>(std::vector<T>(values));
  }
  template <class T, std::ranges::input_range R>
  ArrayProxy<T> Array(R&& values) {
    std::vector<T> v(std::ranges::begin(values), std::ranges::end(values));  // one pass: input ranges too
    detail::Buffer b;
    b.put_varint(v.size());
    for (const T& x : v) detail::put_item<T>(b, x);
    const auto tag = detail::proxy_tag<ArrayProxy<T>>();
    return ArrayProxy<T>(link(), create("array", tag, &b), tag);
  }
  /// A default-constructed C in the server (C registered with PAREX_MANAGER_REGISTER).
  template <class C>
  Proxy<C> make() {
    static_assert(!detail::managed_type_name<C>.empty(), "Manager::make<C>: register C with PAREX_MANAGER_REGISTER");
    const auto tag = detail::proxy_tag<Proxy<C>>();
    return Proxy<C>(link(), create(detail::managed_type_name<C>, tag), tag);
  }

  // The toolbox's own objects, held by the server until it ends (as Python's manager
  // objects are): a handle to one reaches it after every other handle is gone, e.g. a
  // m.Queue<int>() appended to a manager list as a temporary.
  template <class T>
  parex::Queue<T> Queue(std::size_t maxsize = 0) { return held(parex::Queue<T>(maxsize)); }
  template <class T>
  parex::JoinableQueue<T> JoinableQueue(std::size_t maxsize = 0) { return held(parex::JoinableQueue<T>(maxsize)); }
  parex::Lock Lock() { return held(parex::Lock()); }
  parex::RLock RLock() { return held(parex::RLock()); }
  parex::Semaphore Semaphore(unsigned value = 1) { return held(parex::Semaphore(value)); }
  parex::Event Event() { return held(parex::Event()); }
  parex::Condition Condition() { return held(parex::Condition()); }
  parex::Barrier Barrier(unsigned parties) { return held(parex::Barrier(parties)); }

  /// Names an object for lookup by any client of this server: a proxy, a toolbox object
  /// (kept alive by this Manager while it lives) or any serializable value.
  template <class T>
  void publish(const std::string& name, const T& object) {
    detail::Buffer b;
    detail::encode<T>(b, object);
    std::shared_ptr<void> keep;
    if constexpr (detail::SharedHandle<T> && !std::is_base_of_v<detail::ProxyBase, T>) keep = std::make_shared<T>(object);
    publish_bytes(name, detail::type_tag<T>(), detail::type_name<T>(), b, std::move(keep));
  }
  /// The object published under name, as T. @throws KeyError if nothing is;
  /// SharedObjectError (naming both types) if it was published as another type.
  template <class T>
  T lookup(const std::string& name) {
    const auto bytes = lookup_bytes(name, detail::type_tag<T>(), detail::type_name<T>());
    detail::Reader r(bytes);
    return detail::decode<T>(r);
  }

  struct State;

 private:
  struct Connected {};
  explicit Manager(Connected);
  std::shared_ptr<detail::ManagerLink> link();
  std::uint64_t create(std::string_view kind, std::uint64_t tag, const detail::Buffer* init = nullptr);
  /// The server keeps the object's shared memory: every toolbox handle's encoding starts
  /// with its segment's (encode_handle), which is what the server reads.
  template <class H>
  H held(H object) {
    detail::Buffer b;
    object.encode_to(b);
    hold_bytes(b);
    return object;
  }
  void hold_bytes(const detail::Buffer& handle);
  void publish_bytes(const std::string& name, std::uint64_t tag, std::string_view type, const detail::Buffer& value,
                     std::shared_ptr<void> keep);
  std::vector<std::byte> lookup_bytes(const std::string& name, std::uint64_t tag, std::string_view type);
  std::unique_ptr<State> state_;
};

}  // namespace parex
