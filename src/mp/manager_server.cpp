// src/mp/manager_server.cpp - the Manager's server process: its object table (the objects
// themselves: manager_objects.hpp), its names, and one thread per connection.
//
// Robustness: a request that fails (bad index, missing key, garbage arguments, a user
// method that throws) fails alone, with its exception sent back; a connection that
// breaks the framing, sends too much or stalls its handshake (10 s) is closed; beyond
// max_connections, new connections are closed at accept. Nothing a client sends ends
// the server, apart from the shutdown request of an authenticated client.
#include "mp/manager_server.hpp"

#include "mp/manager_objects.hpp"
#include "mp/manager_protocol.hpp"

#include <parex/registry.hpp>
#include <parex/errors.hpp>

#include <atomic>
#include <csignal>
#include <mutex>
#include <shared_mutex>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>

namespace parex::detail {

namespace {
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
    if (server_handshake(fd, key_)) {
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
        case ManagerOp::publish: return publish(r);
        case ManagerOp::lookup: return lookup(r, out);
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
    call_object(*o, method, r, out);
  }

  void create(Reader& r, Buffer& out) {
    const std::string_view kind = get_str(r);
    const auto tag = r.get_raw<std::uint64_t>();
    std::shared_ptr<Object> o = make_object(kind, tag, r);
    std::unique_lock lock(objects_mutex_);
    const std::uint64_t id = ++last_id_;
    objects_.emplace(id, std::move(o));
    out.put_raw(id);
  }

  // Published values carry their type (type_tag.hpp): a lookup as another type fails here,
  // naming both, instead of decoding one type's bytes as another's.
  void publish(Reader& r) {
    std::string name(get_str(r));
    Published p;
    p.tag = r.get_raw<std::uint64_t>();
    p.type = std::string(get_str(r));
    p.bytes = bytes_of(get_blob(r));
    std::lock_guard lock(names_mutex_);
    names_[std::move(name)] = std::move(p);
  }
  void lookup(Reader& r, Buffer& out) {
    const std::string name(get_str(r));
    const auto tag = r.get_raw<std::uint64_t>();
    const std::string_view type = get_str(r);
    std::lock_guard lock(names_mutex_);
    auto it = names_.find(name);
    if (it == names_.end()) throw KeyError("nothing is published as '" + name + "' on this manager");
    if (it->second.tag != tag)
      throw SharedObjectError("'" + name + "' was published as " + it->second.type + ", not looked up as " +
                              std::string(type));
    put_blob(out, span_of(it->second.bytes));
  }

  struct Published {
    std::uint64_t tag = 0;
    std::string type;
    Bytes bytes;
  };

  std::string key_;
  std::size_t max_connections_, max_bytes_;
  std::atomic<std::size_t> connections_{0};
  std::shared_mutex objects_mutex_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Object>> objects_;
  std::uint64_t last_id_ = 0;
  std::mutex names_mutex_;
  std::unordered_map<std::string, Published> names_;
};
}  // namespace

void manager_serve(std::string address, std::string authkey, std::uint64_t max_connections,
                   std::uint64_t max_message_bytes, Connection ready) {
  std::signal(SIGINT, SIG_IGN);  // Ctrl-C is for the owner, which then shuts the server down
  std::signal(SIGPIPE, SIG_IGN);
  ManagerAddress a;
  int listener = -1;
  try {
    a = ManagerAddress::parse(address);
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
