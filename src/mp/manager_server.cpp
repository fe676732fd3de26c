// src/mp/manager_server.cpp - the Manager's server process: it accepts connections,
// admits them, serves each on a thread of its own, keeps the objects (manager_objects.hpp),
// names and shared memory its clients give it, and removes its socket however it ends.
//
// Admission (max_connections): a connection holds a slot from accept until its thread
// ends. When every slot is taken, a new connection takes the slot of the oldest one that
// has not completed its handshake (that one is shut down at once), so connections that
// never authenticate, however many and however often renewed (any local user can open
// them over TCP), cannot keep out a client that knows the key: only max_connections
// authenticated clients fill the server, and only then is a new connection closed at
// accept. A client is pushed out during its own handshake only if max_connections newer
// connections arrive within it (a live client completes it in well under a millisecond).
// A connection that has not completed its handshake after manager_handshake_timeout is
// dropped as well.
//
// Robustness: a request that fails (bad index, missing key, garbage arguments, a user
// method that throws) fails alone, with its exception sent back; a connection that breaks
// the framing or sends too much is closed. Nothing a client sends ends the server, apart
// from the shutdown request of an authenticated client.
//
// Leaving nothing behind: the server removes its socket, and the private directory it made
// for a default address, at every end it can see: the shutdown request, SIGTERM (its
// owner's normal exit, Manager::shutdown's fallback), its owner's death however it died
// (the daemonic child's parent watch, on_parent_death), a broken listener. Only a SIGKILL
// of the server itself leaves them; then its owner's Manager::shutdown removes them.
#include "mp/manager_server.hpp"

#include "mp/child.hpp"
#include "mp/manager_objects.hpp"
#include "mp/socket_protocol.hpp"

#include <parex/detail/mp/segment.hpp>
#include <parex/errors.hpp>
#include <parex/registry.hpp>
#include <parex/detail/wire/records.hpp>

#include <algorithm>
#include <atomic>
#include <climits>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <list>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>

namespace parex::detail {

namespace {
// ---- what the server leaves on disk, removed however it ends -------------------------
// Fixed buffers, written before the first handler that reads them is installed: the
// removal runs in a signal handler (async-signal-safe calls only) or on the parent
// watch's thread.
struct Leftovers {
  char socket[sizeof(sockaddr_un{}.sun_path)] = {};  // "" for TCP
  dev_t dev = 0;                                     // the socket we bound, not a later one there
  ino_t ino = 0;
  char dir[PATH_MAX] = {};  // the private directory of a default address, or ""
  std::atomic<bool> socket_set{false}, dir_set{false};
};
Leftovers leftovers;

void remove_leftovers() noexcept {
  if (leftovers.socket_set.load()) {
    struct stat st {};
    if (::lstat(leftovers.socket, &st) == 0 && st.st_dev == leftovers.dev && st.st_ino == leftovers.ino)
      ::unlink(leftovers.socket);
  }
  if (leftovers.dir_set.load()) ::rmdir(leftovers.dir);  // empty once the socket is gone
}

void on_terminate(int sig) noexcept {
  remove_leftovers();
  ::signal(sig, SIG_DFL);  // then end as the signal asked: the owner sees a SIGTERM
  ::raise(sig);
}

// A private directory (0700) for a default address, made here rather than by the owner,
// so that it exists only while something will remove it.
std::string make_private_dir() {
  const std::string tmpl = (std::filesystem::temp_directory_path() / "parex-manager-XXXXXX").string();
  if (tmpl.size() >= sizeof leftovers.dir) throw std::system_error(ENAMETOOLONG, std::generic_category(), "Manager: temp dir");
  std::memcpy(leftovers.dir, tmpl.c_str(), tmpl.size() + 1);
  if (!::mkdtemp(leftovers.dir)) throw std::system_error(errno, std::generic_category(), "Manager: mkdtemp");
  leftovers.dir_set.store(true);
  return leftovers.dir;
}

void remember_socket(const SocketAddress& a) {
  struct stat st {};
  if (a.tcp || a.path.size() >= sizeof leftovers.socket || ::lstat(a.path.c_str(), &st) != 0) return;
  std::memcpy(leftovers.socket, a.path.c_str(), a.path.size() + 1);
  leftovers.dev = st.st_dev;
  leftovers.ino = st.st_ino;
  leftovers.socket_set.store(true);
}

// Every shared object the server keeps costs it an fd, beside one per connection.
void raise_server_fd_limit() noexcept {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

class Server;
std::atomic<Server*> the_server{nullptr};  // for the parent-death hook

class Server {
 public:
  Server(std::string key, std::size_t max_connections, std::size_t max_bytes)
      : key_(std::move(key)), max_connections_(max_connections), max_bytes_(max_bytes) {
    // Ids start at a random point: a proxy of an earlier server at the same address
    // finds no object here (SharedObjectError), never another one's.
    random_bytes(reinterpret_cast<std::uint8_t*>(&last_id_), sizeof last_id_);
    last_id_ >>= 2;
  }

  [[noreturn]] void serve(int listener) {
    for (;;) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        // accept(2): Linux passes pending network errors of the new connection through
        // accept; they are that connection's, not the listener's. Retry them.
        if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN || errno == ENETDOWN || errno == EPROTO ||
            errno == ENOPROTOOPT || errno == EHOSTDOWN || errno == ENONET || errno == EHOSTUNREACH ||
            errno == EOPNOTSUPP || errno == ENETUNREACH || errno == EPERM)
          continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {  // wait for fds to free
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          continue;
        }
        end(1);  // the listening socket broke: detached threads use *this, never return
      }
      const auto slot = admit(fd);
      if (!slot) {
        ::close(fd);
        continue;
      }
      try {
        std::thread([this, s = *slot] { connection(s); }).detach();
      } catch (...) {  // no thread: this client is refused, the others go on
        leave(*slot);
      }
    }
  }

  /// Ends the process, leaving nothing behind; the held segments' handles name their
  /// senders again (a handle sent later must not name a process that is gone).
  [[noreturn]] void end(int code) noexcept {
    remove_leftovers();
    {
      std::lock_guard lock(held_mutex_);
      for (auto& s : held_) s->leave_home();
    }
    std::_Exit(code);  // connection threads end with the process
  }

 private:
  struct Slot {
    int fd;
    bool authenticated = false;
    bool evicted = false;
  };
  using SlotRef = std::list<Slot>::iterator;

  // See "Admission" at the top. Returns no slot when every slot holds an authenticated client.
  std::optional<SlotRef> admit(int fd) {
    std::lock_guard lock(slots_mutex_);
    if (slots_.size() - evicted_ >= max_connections_) {
      auto oldest = std::find_if(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.authenticated && !s.evicted; });
      if (oldest == slots_.end()) return std::nullopt;
      oldest->evicted = true;  // its thread sees the socket shut, and leaves
      ++evicted_;
      ::shutdown(oldest->fd, SHUT_RDWR);
    }
    try {
      return slots_.insert(slots_.end(), Slot{fd});
    } catch (...) {  // out of memory: this one is refused
      return std::nullopt;
    }
  }
  // The fd is closed only once its slot is gone: admit() never shuts a reused fd number.
  void leave(SlotRef s) noexcept {
    const int fd = s->fd;
    {
      std::lock_guard lock(slots_mutex_);
      if (s->evicted) --evicted_;
      slots_.erase(s);
    }
    ::close(fd);
  }

  void connection(SlotRef slot) noexcept {
    const int fd = slot->fd;
    try {
      if (server_handshake(fd, key_, std::chrono::steady_clock::now() + manager_handshake_timeout) == Handshake::accepted) {
        {
          std::lock_guard lock(slots_mutex_);
          slot->authenticated = true;
        }
        serve_requests(fd);
      }
    } catch (...) {  // out of memory, say: this connection ends, the server goes on
    }
    leave(slot);
  }

  void serve_requests(int fd) {
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
        end(0);  // the owner asked
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
        case ManagerOp::hold: return hold(r);
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

  // A toolbox object a Manager made: this process keeps its shared memory until it ends,
  // and handles to it name this process from now on (Segment::make_home).
  void hold(Reader& r) {
    Reader handle(get_blob(r));
    std::uint64_t offset = 0;
    std::shared_ptr<Segment> s = decode_handle(handle, offset, 0);
    std::lock_guard lock(held_mutex_);
    held_.push_back(s);
    s->make_home();
  }

  struct Published {
    std::uint64_t tag = 0;
    std::string type;
    Bytes bytes;
  };

  const std::string key_;
  const std::size_t max_connections_, max_bytes_;
  std::mutex slots_mutex_;
  std::list<Slot> slots_;        // every connection, oldest first; slots_mutex_
  std::size_t evicted_ = 0;      // slots shut by admit(), their threads not yet gone; slots_mutex_
  std::shared_mutex objects_mutex_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Object>> objects_;
  std::uint64_t last_id_ = 0;
  std::mutex names_mutex_;
  std::unordered_map<std::string, Published> names_;
  std::mutex held_mutex_;
  std::vector<std::shared_ptr<Segment>> held_;  // toolbox objects its clients' Managers made
};

// The Manager's start(initializer, args...): the initializer's outcome is read as a pool
// worker's is; an error goes back to start() as "?" and the encoded exception.
bool run_initializer(std::uint32_t id, const std::string& args, Connection& ready) {
  std::exception_ptr error;
  try {
    const FunctionEntry* e = Registry::global().by_id(id);
    if (!e) throw ProtocolError("Manager: unknown initializer id");
    Reader item(std::span<const std::byte>(reinterpret_cast<const std::byte*>(args.data()), args.size()));
    Reader a = read_item(item);  // Initializer::encoded_args is one item, as a pool's init frame carries it
    Buffer outcome;
    e->invoke(*e, a, outcome);
    Reader o(outcome.bytes());
    if (const OutcomeView v = read_outcome(o); v.status != OutcomeStatus::ok) {
      Reader body = v.body;
      body.get_byte();  // the stage
      error = decode_exception(body);
    }
  } catch (...) {
    error = std::current_exception();
  }
  if (!error) return true;
  Buffer b;
  b.put_byte('?');
  encode_exception(b, error);
  ready.send(std::string(reinterpret_cast<const char*>(b.data()), b.size()));
  return false;
}

void on_owner_death() noexcept {
  if (Server* s = the_server.load()) s->end(1);  // (from the parent watch's thread)
  remove_leftovers();
}
}  // namespace

void manager_serve(std::string address, std::string authkey, std::uint64_t max_connections,
                   std::uint64_t max_message_bytes, std::uint32_t initializer, std::string initializer_args,
                   Connection ready) {
  std::signal(SIGINT, SIG_IGN);  // Ctrl-C is for the owner, which then shuts the server down
  std::signal(SIGHUP, SIG_IGN);  // as is a hangup: the server ends with its owner
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGTERM, on_terminate);
  on_parent_death(on_owner_death);
  raise_server_fd_limit();
  // Before listening: a server whose initializer failed leaves no socket behind.
  if (initializer != 0 && !run_initializer(initializer - 1, initializer_args, ready)) return;
  SocketAddress a;
  int listener = -1;
  try {
    if (address.empty()) address = make_private_dir() + "/socket";
    a = SocketAddress::parse(address);
    listener = listen_at(a, 128);
    remember_socket(a);
  } catch (const std::exception& e) {
    remove_leftovers();
    ready.send(std::string("!") + e.what());
    return;
  }
  ready.send(a.str());
  ready.close();
  auto* server = new Server(std::move(authkey), max_connections, max_message_bytes);  // ends with the process
  the_server.store(server);
  server->serve(listener);
}

}  // namespace parex::detail

PAREX_REGISTER_AS("parex::manager_serve", parex::detail::manager_serve);
