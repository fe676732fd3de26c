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
// Proxies (ListProxy, DictProxy, SetProxy, ValueProxy, ArrayProxy, NamespaceProxy: in
// proxies.hpp, with how they iterate and print; Proxy<C> here) are
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
// Queue, JoinableQueue, Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier are not
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
#include <parex/detail/mp/proxy_base.hpp>
#include <parex/detail/mp/segment.hpp>
#include <parex/detail/wire/type_tag.hpp>
#include <parex/mp/condition.hpp>
#include <parex/mp/lock.hpp>
#include <parex/mp/pool.hpp>
#include <parex/mp/proxies.hpp>
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
  /// main) and waits until it listens (Python's multiprocessing.Manager()).
  /// @throws std::system_error, ConnectionError.
  explicit Manager(ManagerOptions options = {});
  /// A Manager whose server start() starts (Python's SyncManager(), then start()).
  struct Deferred {};
  Manager(ManagerOptions options, Deferred);
  /// Starts the server of a Manager made with Deferred; with an initializer, the server
  /// runs it (a registered function, as Initializer in ProcessPoolOptions) before it
  /// listens. @throws InvalidStateError if started already (or connected); what the
  /// initializer throws, as its own type (as a pool call's error), with no server left;
  /// std::system_error, ConnectionError as the constructor.
  void start(Initializer initializer = {});
  template <class R, class... P, class... A>
  void start(R (*initializer)(P...), A&&... args) {
    start(Initializer(initializer, std::forward<A>(args)...));
  }
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
  /// A dict of the pairs of a range (a std::map, a vector of pairs, ...).
  template <class K, class V, std::ranges::input_range R>
  DictProxy<K, V> dict(R&& pairs) {
    auto d = dict<K, V>();
    d.update(std::forward<R>(pairs));
    return d;
  }
  template <class K, class V>
  DictProxy<K, V> dict(std::initializer_list<std::pair<const K, V>> pairs) {
    auto d = dict<K, V>();
    d.update(pairs);
    return d;
  }
  /// Python's set() (3.14): SetProxy.
  template <class T>
  SetProxy<T> set() {
    const auto tag = detail::proxy_tag<SetProxy<T>>();
    return SetProxy<T>(link(), create("set", tag), tag);
  }
  template <class T, std::ranges::input_range R>
  SetProxy<T> set(R&& values) {
    auto s = set<T>();
    s.update(std::forward<R>(values));
    return s;
  }
  template <class T>
  SetProxy<T> set(std::initializer_list<T> values) {
    return set<T>(std::vector<T>(values));
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
  parex::BoundedSemaphore BoundedSemaphore(unsigned value = 1) { return held(parex::BoundedSemaphore(value)); }
  parex::Event Event() { return held(parex::Event()); }
  parex::Condition Condition() { return held(parex::Condition()); }
  /// Python's threading.Barrier(parties, action, timeout) (condition.hpp): wait()
  /// returns the arrival index; abort, reset, broken, n_waiting, parties; action is a
  /// registered function, run by the last to arrive.
  parex::Barrier Barrier(unsigned parties) { return held(parex::Barrier(parties)); }
  parex::Barrier Barrier(unsigned parties, void (*action)()) { return held(parex::Barrier(parties, action)); }
  template <class Rep, class Period>
  parex::Barrier Barrier(unsigned parties, void (*action)(), std::chrono::duration<Rep, Period> timeout) {
    return held(parex::Barrier(parties, action, timeout));
  }
  /// Python's manager.Pool(processes, initializer, maxtasksperchild): parex's own Pool
  /// (pool.hpp), run by this process, not a proxy to a pool in the server (see NOTES:
  /// a Pool here is already a face over worker processes; a server-side one would add
  /// a round trip per call and cannot run this process's callbacks). It lives until its
  /// destructor, not until the Manager's shutdown, and does not travel to other processes.
  parex::Pool Pool(std::size_t processes = 0, Initializer initializer = {},
                   std::optional<std::size_t> maxtasksperchild = std::nullopt) {
    return parex::Pool(processes, std::move(initializer), maxtasksperchild);
  }

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

/// Python's multiprocessing.managers.SyncManager: a Manager not started until start().
class SyncManager : public Manager {
 public:
  explicit SyncManager(ManagerOptions options = {}) : Manager(std::move(options), Deferred{}) {}
};

template <class K, class V>
template <std::ranges::input_range R>
DictProxy<K, V> DictProxy<K, V>::fromkeys(Manager& m, R&& keys, const V& value) {
  auto d = m.dict<K, V>();
  std::vector<std::pair<K, V>> pairs;
  for (auto&& k : keys) pairs.emplace_back(k, value);
  d.update(pairs);
  return d;
}

}  // namespace parex
