// src/mp/manager_server.cpp - the Manager's server process: the registry of user types it
// can make, its object table, and one thread per connection. The server never decodes a
// user's item: lists, dicts and values hold encoded bytes (see manager_link.hpp).
//
// Robustness: a request that fails (bad index, missing key, garbage arguments, a user
// method that throws) fails alone, with its exception sent back; a connection that
// breaks the framing, sends too much or stalls its handshake (10 s) is closed; beyond
// max_connections, new connections are closed at accept. Nothing a client sends ends
// the server, apart from the shutdown request of an authenticated client.
#include "mp/manager_server.hpp"

#include "mp/socket_protocol.hpp"

#include <parex/registry.hpp>
#include <parex/errors.hpp>

#include <atomic>
#include <csignal>
#include <list>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>

namespace parex::detail {

namespace {
struct ManagedType {
  void* (*create)();
  void (*destroy)(void*);
  std::unordered_map<std::string, ManagedMethod> methods;
};
std::unordered_map<std::string, ManagedType>& managed_types() {
  static auto* t = new std::unordered_map<std::string, ManagedType>;
  return *t;
}
}  // namespace

bool register_managed_type(const char* type, void* (*create)(), void (*destroy)(void*),
                           std::initializer_list<ManagedMethodEntry> methods) noexcept {
  auto& t = managed_types()[type];
  t.create = create;
  t.destroy = destroy;
  for (const auto& m : methods) t.methods[m.name] = m.fn;
  return true;
}

namespace {
using Bytes = std::string;
Bytes bytes_of(std::span<const std::byte> b) { return Bytes(reinterpret_cast<const char*>(b.data()), b.size()); }
std::span<const std::byte> span_of(const Bytes& b) { return {reinterpret_cast<const std::byte*>(b.data()), b.size()}; }

struct Object {
  enum Kind { list, array, dict, value, ns, custom } kind;
  std::uint64_t tag;
  std::mutex mutex;
  std::vector<Bytes> items;                                             // list, array
  std::list<std::pair<Bytes, Bytes>> pairs;                             // dict, in insertion order
  std::unordered_map<Bytes, std::list<std::pair<Bytes, Bytes>>::iterator> index;
  Bytes one;                                                            // value
  std::map<std::string, std::pair<std::uint64_t, Bytes>> attrs;         // namespace
  const ManagedType* type = nullptr;                                    // custom
  void* object = nullptr;
  Object(Kind k, std::uint64_t t) : kind(k), tag(t) {}
  ~Object() {
    if (object) type->destroy(object);
  }
};

std::size_t at_index(std::int64_t i, std::size_t n, const char* what) {
  if (i < 0) i += static_cast<std::int64_t>(n);
  if (i < 0 || static_cast<std::uint64_t>(i) >= n) throw IndexError(std::string(what) + " index out of range");
  return static_cast<std::size_t>(i);
}
void put_blobs(Writer& w, const std::vector<Bytes>& v) {
  w.put_varint(v.size());
  for (const auto& b : v) put_blob(w, span_of(b));
}
std::size_t find_item(const Object& o, const Bytes& b) {
  for (std::size_t i = 0; i < o.items.size(); ++i)
    if (o.items[i] == b) return i;
  return o.items.size();
}

void call_list(Object& o, std::string_view m, Reader& a, Writer& out) {
  auto& v = o.items;
  const bool fixed = o.kind == Object::array;
  if (m == "get") {
    put_blob(out, span_of(v[at_index(get_item<std::int64_t>(a), v.size(), "list")]));
  } else if (m == "set") {
    const std::size_t i = at_index(get_item<std::int64_t>(a), v.size(), "list assignment");
    v[i] = bytes_of(get_blob(a));
  } else if (m == "size") {
    put_item<std::uint64_t>(out, v.size());
  } else if (m == "to_vector") {
    put_blobs(out, v);
  } else if (fixed) {
    throw ValueError("an Array has a fixed size: no '" + std::string(m) + "'");
  } else if (m == "append") {
    v.push_back(bytes_of(get_blob(a)));
  } else if (m == "extend") {
    const std::size_t n = a.get_count(1);
    std::vector<Bytes> add;
    add.reserve(n);
    for (std::size_t i = 0; i < n; ++i) add.push_back(bytes_of(get_blob(a)));  // all or nothing
    v.insert(v.end(), std::make_move_iterator(add.begin()), std::make_move_iterator(add.end()));
  } else if (m == "insert") {
    std::int64_t i = get_item<std::int64_t>(a);
    const auto n = static_cast<std::int64_t>(v.size());
    if (i < 0) i = std::max<std::int64_t>(0, i + n);
    v.insert(v.begin() + std::min(i, n), bytes_of(get_blob(a)));
  } else if (m == "pop") {
    if (v.empty()) throw IndexError("pop from empty list");
    const std::size_t i = at_index(get_item<std::int64_t>(a), v.size(), "pop");
    put_blob(out, span_of(v[i]));
    v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
  } else if (m == "remove" || m == "index") {
    const std::size_t i = find_item(o, bytes_of(get_blob(a)));
    if (i == v.size()) throw ValueError(std::string("list.") + std::string(m) + "(x): x not in list");
    if (m == "remove") v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
    else put_item<std::uint64_t>(out, i);
  } else if (m == "count") {
    const Bytes b = bytes_of(get_blob(a));
    put_item<std::uint64_t>(out, static_cast<std::uint64_t>(std::count(v.begin(), v.end(), b)));
  } else if (m == "clear") {
    v.clear();
  } else {
    throw ValueError("a list has no method '" + std::string(m) + "'");
  }
}

void dict_set(Object& o, Bytes k, Bytes v) {
  auto it = o.index.find(k);
  if (it != o.index.end()) {
    it->second->second = std::move(v);
    return;
  }
  o.pairs.emplace_back(k, std::move(v));
  o.index.emplace(std::move(k), std::prev(o.pairs.end()));
}

void call_dict(Object& o, std::string_view m, Reader& a, Writer& out) {
  auto found = [&](const Bytes& k) -> std::list<std::pair<Bytes, Bytes>>::iterator {
    auto it = o.index.find(k);
    return it == o.index.end() ? o.pairs.end() : it->second;
  };
  auto missing = [] { return KeyError("the key is not in the manager dict"); };
  if (m == "get") {
    auto it = found(bytes_of(get_blob(a)));
    out.put_varint(it == o.pairs.end() ? 0 : 1);
    if (it != o.pairs.end()) put_blob(out, span_of(it->second));
  } else if (m == "at") {
    auto it = found(bytes_of(get_blob(a)));
    if (it == o.pairs.end()) throw missing();
    put_blob(out, span_of(it->second));
  } else if (m == "set") {
    Bytes k = bytes_of(get_blob(a));
    dict_set(o, std::move(k), bytes_of(get_blob(a)));
  } else if (m == "contains") {
    put_item<bool>(out, found(bytes_of(get_blob(a))) != o.pairs.end());
  } else if (m == "pop") {
    const Bytes k = bytes_of(get_blob(a));
    auto it = found(k);
    if (it == o.pairs.end()) throw missing();
    put_blob(out, span_of(it->second));
    o.index.erase(k);
    o.pairs.erase(it);
  } else if (m == "setdefault") {
    Bytes k = bytes_of(get_blob(a));
    Bytes v = bytes_of(get_blob(a));
    auto it = found(k);
    if (it == o.pairs.end()) {
      put_blob(out, span_of(v));
      dict_set(o, std::move(k), std::move(v));
    } else {
      put_blob(out, span_of(it->second));
    }
  } else if (m == "update") {
    const std::size_t n = a.get_count(2);
    std::vector<std::pair<Bytes, Bytes>> add;
    for (std::size_t i = 0; i < n; ++i) {
      Bytes k = bytes_of(get_blob(a));
      add.emplace_back(std::move(k), bytes_of(get_blob(a)));
    }
    for (auto& [k, v] : add) dict_set(o, std::move(k), std::move(v));
  } else if (m == "keys" || m == "values" || m == "items") {
    out.put_varint(o.pairs.size());
    for (const auto& [k, v] : o.pairs) {
      if (m != "values") put_blob(out, span_of(k));
      if (m != "keys") put_blob(out, span_of(v));
    }
  } else if (m == "size") {
    put_item<std::uint64_t>(out, o.pairs.size());
  } else if (m == "clear") {
    o.pairs.clear();
    o.index.clear();
  } else {
    throw ValueError("a dict has no method '" + std::string(m) + "'");
  }
}

void call_namespace(Object& o, std::string_view m, Reader& a, Writer& out) {
  const std::string name = get_item<std::string>(a);
  auto it = o.attrs.find(name);
  auto missing = [&] { return AttributeError("the Namespace has no attribute '" + name + "'"); };
  if (m == "set") {
    const auto tag = get_item<std::uint64_t>(a);
    o.attrs[name] = {tag, bytes_of(get_blob(a))};
  } else if (m == "get") {
    if (it == o.attrs.end()) throw missing();
    if (get_item<std::uint64_t>(a) != it->second.first)
      throw SharedObjectError("the Namespace attribute '" + name + "' was set with another type");
    put_blob(out, span_of(it->second.second));
  } else if (m == "has") {
    put_item<bool>(out, it != o.attrs.end());
  } else if (m == "del") {
    if (it == o.attrs.end()) throw missing();
    o.attrs.erase(it);
  } else {
    throw ValueError("a Namespace has no method '" + std::string(m) + "'");
  }
}

class Server {
 public:
  Server(std::string key, std::size_t max_connections, std::size_t max_bytes)
      : key_(std::move(key)), max_connections_(max_connections), max_bytes_(max_bytes) {
    // Ids start at a random point: a proxy of an earlier server at the same address
    // finds no object here (SharedObjectError), never another one's.
    random_bytes(reinterpret_cast<std::uint8_t*>(&last_id_), sizeof last_id_);
    last_id_ >>= 2;
  }

  void serve(int listener) {
    for (;;) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {  // wait for fds to free
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          continue;
        }
        std::_Exit(1);  // the listening socket broke: detached threads use *this, never return
      }
      if (connections_.fetch_add(1) >= max_connections_) {
        connections_.fetch_sub(1);
        ::close(fd);
        continue;
      }
      try {
        std::thread([this, fd] { connection(fd); }).detach();
      } catch (...) {  // no thread: this client is refused, the others go on
        connections_.fetch_sub(1);
        ::close(fd);
      }
    }
  }

 private:
  void connection(int fd) noexcept {
    try {
      serve_connection(fd);
    } catch (...) {  // out of memory, say: this connection ends, the server goes on
    }
    ::close(fd);
    connections_.fetch_sub(1);
  }

  void serve_connection(int fd) {
    if (server_handshake(fd, key_, std::chrono::steady_clock::now() + server_handshake_limit) == Handshake::accepted) {
      MessageReader reader(max_bytes_);
      Buffer out;
      std::span<const std::byte> msg;
      while (reader.next(fd, msg) == MessageReader::Status::ok) {
        out.clear();
        bool stop = false;
        handle(msg, out, stop);
        if (out.size() > max_message) {  // a reply the framing cannot carry: say so instead
          out.clear();
          out.put_byte(1);
          encode_exception(out, std::make_exception_ptr(ValueError("Manager: the reply is over 4 GiB")));
        }
        if (!send_message(fd, out.bytes())) break;
        if (stop) {
          ::shutdown(fd, SHUT_RDWR);
          std::_Exit(0);  // the owner asked: connection threads end with the process
        }
      }
    }
  }

  void handle(std::span<const std::byte> msg, Buffer& out, bool& stop) {
    try {
      out.put_byte(0);
      Reader r(msg);
      switch (static_cast<ManagerOp>(r.get_byte())) {
        case ManagerOp::call: return call(r, out);
        case ManagerOp::create: return create(r, out);
        case ManagerOp::publish: {
          const std::string name(get_str(r));
          Bytes value = bytes_of(get_blob(r));
          std::lock_guard lock(names_mutex_);
          names_[name] = std::move(value);
          return;
        }
        case ManagerOp::lookup: {
          const std::string name(get_str(r));
          std::lock_guard lock(names_mutex_);
          auto it = names_.find(name);
          if (it == names_.end()) throw KeyError("nothing is published as '" + name + "' on this manager");
          put_blob(out, span_of(it->second));
          return;
        }
        case ManagerOp::shutdown: stop = true; return;
      }
      throw ProtocolError("Manager: unknown request");
    } catch (...) {
      out.clear();
      out.put_byte(1);
      try {
        encode_exception(out, std::current_exception());
      } catch (...) {
        out.clear();
        out.put_byte(1);
        encode_exception(out, std::make_exception_ptr(Error("Manager: the server could not encode an error")));
      }
    }
  }

  void call(Reader& r, Buffer& out) {
    const auto id = r.get_raw<std::uint64_t>();
    const auto tag = r.get_raw<std::uint64_t>();
    const std::string_view method = get_str(r);
    std::shared_ptr<Object> o;
    {
      std::shared_lock lock(objects_mutex_);
      auto it = objects_.find(id);
      if (it != objects_.end()) o = it->second;
    }
    if (!o) throw SharedObjectError("the manager has no object " + std::to_string(id));
    if (o->tag != tag) throw SharedObjectError("the manager's object " + std::to_string(id) + " is of another type");
    std::lock_guard lock(o->mutex);
    switch (o->kind) {
      case Object::list:
      case Object::array: return call_list(*o, method, r, out);
      case Object::dict: return call_dict(*o, method, r, out);
      case Object::ns: return call_namespace(*o, method, r, out);
      case Object::value:
        if (method == "get") return put_blob(out, span_of(o->one));
        if (method == "set") return void(o->one = bytes_of(get_blob(r)));
        throw ValueError("a Value has no method '" + std::string(method) + "'");
      case Object::custom: {
        auto m = o->type->methods.find(std::string(method));
        if (m == o->type->methods.end())
          throw UnregisteredFunction("'" + std::string(method) + "' is not registered with PAREX_MANAGER_REGISTER");
        return m->second(o->object, r, out);
      }
    }
  }

  void create(Reader& r, Buffer& out) {
    const std::string kind(get_str(r));
    const auto tag = r.get_raw<std::uint64_t>();
    std::shared_ptr<Object> o;
    if (kind == "list") {
      o = std::make_shared<Object>(Object::list, tag);
    } else if (kind == "dict") {
      o = std::make_shared<Object>(Object::dict, tag);
    } else if (kind == "namespace") {
      o = std::make_shared<Object>(Object::ns, tag);
    } else if (kind == "value") {
      o = std::make_shared<Object>(Object::value, tag);
      o->one = bytes_of(get_blob(r));
    } else if (kind == "array") {
      o = std::make_shared<Object>(Object::array, tag);
      const std::size_t n = r.get_count(1);
      for (std::size_t i = 0; i < n; ++i) o->items.push_back(bytes_of(get_blob(r)));
    } else {
      auto t = managed_types().find(kind);
      if (t == managed_types().end())
        throw UnregisteredFunction("type '" + kind + "' is not registered with PAREX_MANAGER_REGISTER in the manager's program");
      o = std::make_shared<Object>(Object::custom, tag);
      o->type = &t->second;
      o->object = t->second.create();
    }
    std::unique_lock lock(objects_mutex_);
    const std::uint64_t id = ++last_id_;
    objects_.emplace(id, std::move(o));
    out.put_raw(id);
  }

  std::string key_;
  std::size_t max_connections_, max_bytes_;
  std::atomic<std::size_t> connections_{0};
  std::shared_mutex objects_mutex_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Object>> objects_;
  std::uint64_t last_id_ = 0;
  std::mutex names_mutex_;
  std::unordered_map<std::string, Bytes> names_;
};
}  // namespace

void manager_serve(std::string address, std::string authkey, std::uint64_t max_connections,
                   std::uint64_t max_message_bytes, Connection ready) {
  std::signal(SIGINT, SIG_IGN);  // Ctrl-C is for the owner, which then shuts the server down
  std::signal(SIGPIPE, SIG_IGN);
  SocketAddress a;
  int listener = -1;
  try {
    a = SocketAddress::parse(address);
    listener = listen_at(a, 128);
  } catch (const std::exception& e) {
    ready.send(std::string("!") + e.what());
    return;
  }
  ready.send(a.str());
  ready.close();
  Server server(std::move(authkey), max_connections, max_message_bytes);
  server.serve(listener);
}

}  // namespace parex::detail

PAREX_REGISTER_AS("parex::manager_serve", parex::detail::manager_serve);
