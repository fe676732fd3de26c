// src/mp/manager.cpp - the client side of a Manager: the process's links to servers,
// proxies' shared part, and the Manager that starts, names objects on and ends a server.
#include <parex/mp/manager.hpp>

#include "mp/socket_protocol.hpp"
#include "mp/manager_server.hpp"

#include <parex/mp/process.hpp>
#include <parex/registry.hpp>
#include <parex/detail/remote/remote_call.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sys/socket.h>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>
#include <unordered_map>

namespace parex {
namespace detail {

// ---- links ------------------------------------------------------------------------
std::shared_ptr<ManagerLink> ManagerLink::get(const std::string& address, const std::string& authkey) {
  static std::mutex mutex;
  static auto* links = new std::unordered_map<std::string, std::weak_ptr<ManagerLink>>;  // leaked: static destruction
  std::string key = address;
  key.push_back('\0');
  key += authkey;
  std::lock_guard lock(mutex);
  auto& slot = (*links)[key];
  if (auto l = slot.lock()) return l;
  auto l = std::make_shared<ManagerLink>(address, authkey);
  slot = l;
  return l;
}

ManagerLink::ManagerLink(std::string address, std::string authkey) : address_(std::move(address)), authkey_(std::move(authkey)) {}

ManagerLink::~ManagerLink() {
  if (fd_ >= 0) ::close(fd_);
}

void ManagerLink::connect_locked(std::chrono::milliseconds timeout) {
  const auto deadline = deadline_after(timeout);  // one for connect() and handshake
  const int fd = connect_to(SocketAddress::parse(address_), deadline);
  try {
    client_handshake(fd, authkey_, "the manager at " + address_, deadline);
  } catch (...) {
    ::close(fd);
    throw;
  }
  fd_ = fd;
  in_ = std::make_unique<MessageReader>(std::numeric_limits<std::uint32_t>::max());
}

std::vector<std::byte> ManagerLink::request(const Buffer& request) {
  std::lock_guard lock(mutex_);
  if (fd_ >= 0) {  // a server never speaks first: readable now means closed (a server that ended)
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      ::close(fd_);
      fd_ = -1;  // reconnect: a new server may serve this address now
    }
  }
  if (fd_ < 0) connect_locked(manager_handshake_timeout);  // first use, or the last call found the server gone
  auto gone = [&]() -> ConnectionError {
    ::close(fd_);
    fd_ = -1;
    return ConnectionError("the manager at " + address_ + " is gone (the connection closed)");
  };
  if (!send_message(fd_, request.bytes())) throw gone();
  std::span<const std::byte> reply;
  if (in_->next(fd_, reply) != MessageReader::Status::ok) throw gone();
  if (reply.empty()) throw ProtocolError("Manager: an empty reply");
  Reader r(reply);
  if (r.get_byte() != 0) std::rethrow_exception(decode_exception(r));
  return std::vector<std::byte>(reply.begin() + 1, reply.end());
}

void ManagerLink::connect(std::chrono::milliseconds timeout) {
  std::lock_guard lock(mutex_);
  if (fd_ < 0) connect_locked(timeout);
}

// ---- proxies ------------------------------------------------------------------------
ProxyBase::ProxyBase(Reader& r, std::uint64_t tag, const char* what) {
  const std::string address(get_str(r));
  const std::string key(get_str(r));
  id_ = r.get_raw<std::uint64_t>();
  tag_ = r.get_raw<std::uint64_t>();
  r.get_raw<std::uint64_t>();  // reserved
  r.get_raw<std::uint64_t>();
  if (tag_ != tag)
    throw SharedObjectError(std::string("this handle is not a ") + what + " of these types (decoded as the wrong type)");
  link_ = ManagerLink::get(address, key);
}

void ProxyBase::encode_base(Writer& w) const {
  put_str(w, link().address());
  put_str(w, link().authkey());
  w.put_raw(id_);
  w.put_raw(tag_);
  w.put_raw(std::uint64_t{0});  // reserved: keeps every proxy over a handle's minimum size
  w.put_raw(std::uint64_t{0});
}

ManagerLink& ProxyBase::link() const {
  if (!link_) throw InvalidStateError("an empty proxy (default-constructed): it refers to no manager object");
  return *link_;
}

}  // namespace detail

// ---- the Manager ----------------------------------------------------------------------
struct Manager::State {
  std::optional<Process> server;
  std::string address, authkey;
  std::string private_dir;  // made for a default address; removed at shutdown
  std::shared_ptr<detail::ManagerLink> link;
  std::mutex mutex;
  std::vector<std::shared_ptr<void>> kept;  // published toolbox objects
  ManagerOptions options;                   // for a deferred start
  bool running = false;
  bool startable = false;                   // made with Deferred, not started yet
};

namespace {
std::string random_key() {
  std::string k(32, '\0');
  detail::random_bytes(reinterpret_cast<std::uint8_t*>(k.data()), k.size());
  return k;
}
}  // namespace

Manager::Manager(ManagerOptions o) : Manager(std::move(o), Deferred{}) { start(); }

Manager::Manager(ManagerOptions o, Deferred) : state_(std::make_unique<State>()) {
  state_->authkey = o.authkey.empty() ? random_key() : o.authkey;
  state_->options = std::move(o);
  state_->startable = true;
}

void Manager::start(Initializer init) {
  if (!state_ || !state_->startable)
    throw InvalidStateError(state_ && state_->link ? "Manager: already started (or a connected Manager)" : "Manager: moved from");
  State& s = *state_;
  const ManagerOptions& o = s.options;
  // The initializer travels as its registered id and encoded arguments (one binary).
  std::uint32_t init_id = 0;
  std::string init_args;
  if (init) {
    const detail::FunctionEntry* e = detail::Registry::global().by_pointer(init.function());
    if (!e) detail::throw_unregistered(init.function(), nullptr);
    init_id = e->id + 1;  // 0: none
    init_args.assign(reinterpret_cast<const char*>(init.encoded_args().data()), init.encoded_args().size());
  }
  s.startable = false;
  try {
    auto [mine, theirs] = Pipe(false);
    // An empty address: the server makes a private directory for its socket itself, so
    // that the directory exists only while a process that will remove it does.
    s.server.emplace(detail::manager_serve, o.address, s.authkey, std::uint64_t(o.max_connections),
                     std::uint64_t(o.max_message_bytes), init_id, init_args, theirs);
    s.server->name = "parex-manager";
    s.server->daemon = true;  // ends with this program, also when this program is killed
    s.server->start();
    theirs.close();
    if (!mine.poll(o.start_timeout))
      throw ConnectionError(init ? "the Manager's server did not start in time (its initializer ran past start_timeout)"
                                 : "the Manager's server did not start in time");
    std::string got;
    try {
      got = mine.recv<std::string>();
    } catch (const EOFError&) {
      throw ConnectionError("the Manager's server ended before it listened (is parex::init first in main?)");
    }
    if (!got.empty() && got[0] == '!') throw ConnectionError("the Manager's server could not listen: " + got.substr(1));
    if (!got.empty() && got[0] == '?') {  // the initializer threw: its exception, encoded
      detail::Reader r(std::span<const std::byte>(reinterpret_cast<const std::byte*>(got.data()) + 1, got.size() - 1));
      std::rethrow_exception(detail::decode_exception(r));
    }
    s.address = got;
    if (o.address.empty()) s.private_dir = std::filesystem::path(got).parent_path().string();
  } catch (...) {  // the first error is the one the caller sees
    try {
      if (s.server && s.server->pid() != 0) {
        s.server->kill();
        s.server->join();
      }
    } catch (...) {
    }
    s.server.reset();
    s.startable = true;  // a later start() may try again
    std::error_code ec;  // a server killed before it could remove them
    if (!s.private_dir.empty()) std::filesystem::remove_all(s.private_dir, ec);
    throw;
  }
  s.running = true;
  s.link = detail::ManagerLink::get(s.address, s.authkey);
}

Manager::Manager(Connected) {}

Manager Manager::connect(const std::string& address, const std::string& authkey, std::chrono::milliseconds timeout) {
  Manager m{Connected{}};
  m.state_ = std::make_unique<State>();
  m.state_->address = address;
  m.state_->authkey = authkey;
  m.state_->link = detail::ManagerLink::get(address, authkey);
  m.state_->link->connect(timeout);
  try {  // a lookup that fails with KeyError proves the key now, not at first use
    m.lookup_bytes("", 0, "");
  } catch (const KeyError&) {
  }
  return m;
}

Manager::Manager(Manager&&) noexcept = default;
Manager& Manager::operator=(Manager&& o) noexcept {
  if (this != &o) {
    shutdown();
    state_ = std::move(o.state_);
  }
  return *this;
}
Manager::~Manager() { shutdown(); }

void Manager::shutdown() noexcept {
  if (!state_ || !state_->running) return;
  State& s = *state_;
  s.running = false;
  try {  // on a connection of its own: the shared one may be busy with another thread's call
    detail::Buffer b;
    b.put_byte(static_cast<std::uint8_t>(detail::ManagerOp::shutdown));
    detail::ManagerLink(s.address, s.authkey).request(b);
  } catch (...) {  // already gone: the join below finds it
  }
  try {
    if (!s.server->join(std::chrono::seconds(5))) {
      s.server->terminate();
      if (!s.server->join(std::chrono::seconds(2))) s.server->kill();
    }
    s.server->join();
  } catch (...) {
  }
  std::error_code ec;
  if (!s.private_dir.empty()) {
    std::filesystem::remove_all(s.private_dir, ec);
  } else if (s.address.empty() || s.address[0] == '/' || s.address[0] == '.') {
    struct stat st{};
    if (::lstat(s.address.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(s.address.c_str());
  }
  std::lock_guard lock(s.mutex);
  s.kept.clear();
}

const std::string& Manager::address() const noexcept { return state_->address; }
const std::string& Manager::authkey() const noexcept { return state_->authkey; }
pid_t Manager::pid() const noexcept { return state_->server ? state_->server->pid() : 0; }

std::shared_ptr<detail::ManagerLink> Manager::link() {
  if (state_ && state_->startable) throw InvalidStateError("Manager: not started (call start())");
  if (!state_ || !state_->link) throw InvalidStateError("Manager: moved from");
  return state_->link;
}

std::uint64_t Manager::create(std::string_view kind, std::uint64_t tag, const detail::Buffer* init) {
  detail::Buffer b;
  detail::put_create_header(b, kind, tag);
  if (init) b.put(init->data(), init->size());
  const auto reply = link()->request(b);
  detail::Reader r(reply);
  return r.get_raw<std::uint64_t>();
}

void Manager::hold_bytes(const detail::Buffer& handle) {
  detail::Buffer b;
  b.put_byte(static_cast<std::uint8_t>(detail::ManagerOp::hold));
  detail::put_blob(b, handle.bytes());
  link()->request(b);
}

void Manager::publish_bytes(const std::string& name, std::uint64_t tag, std::string_view type,
                            const detail::Buffer& value, std::shared_ptr<void> keep) {
  detail::Buffer b;
  b.put_byte(static_cast<std::uint8_t>(detail::ManagerOp::publish));
  detail::put_str(b, name);
  b.put_raw(tag);
  detail::put_str(b, type);
  detail::put_blob(b, value.bytes());
  link()->request(b);
  if (keep) {
    std::lock_guard lock(state_->mutex);
    state_->kept.push_back(std::move(keep));
  }
}

std::vector<std::byte> Manager::lookup_bytes(const std::string& name, std::uint64_t tag, std::string_view type) {
  detail::Buffer b;
  b.put_byte(static_cast<std::uint8_t>(detail::ManagerOp::lookup));
  detail::put_str(b, name);
  b.put_raw(tag);
  detail::put_str(b, type);
  auto reply = link()->request(b);
  detail::Reader r(reply);
  const auto blob = detail::get_blob(r);
  return std::vector<std::byte>(blob.begin(), blob.end());
}

}  // namespace parex
