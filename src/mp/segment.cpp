// Shared segments and the handles that name them (see include/parex/detail/mp/segment.hpp).
//
// Layout: [Header, 64 bytes][payload]. The header is written once by the creator, except
// in_flight: handles sent and not yet attached (saturating at 0: a call re-sent after a
// worker crash is decoded twice), and home: the process that keeps the segment for good
// (make_home; a Manager's server), which every handle names once it is set, so a handle
// outlives the process that sent it. A handle sent through the home pins nothing.
#include <parex/detail/mp/segment.hpp>

#include "mp/pins.hpp"
#include "process/memfd.hpp"

#include <parex/errors.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fcntl.h>
#include <mutex>
#include <random>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <system_error>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace parex::detail {

struct Segment::Header {
  std::uint64_t magic;
  std::uint64_t nonce;
  std::uint64_t bytes;
  std::atomic<std::uint32_t> in_flight;
  std::atomic<std::uint64_t> home;  // pid << 32 | fd of the process that keeps it; 0: none
};
static_assert(sizeof(Segment::Header) <= 64);

namespace {
constexpr std::uint64_t segment_magic = 0x31'67'65'73'78'65'72'70ULL;  // "parexseg1", version 1
constexpr std::size_t header_bytes = 64;

// Every segment mapped in this process, by nonce: a handle decoded here finds the mapping
// this process already has. Leaked on purpose: segments may die during static destruction.
struct Local {
  std::mutex mutex;
  std::unordered_map<std::uint64_t, std::weak_ptr<Segment>> mapped;
  std::unordered_map<const Segment*, std::shared_ptr<Segment>> pinned;  // sent, not yet attached

  // Drops pins whose receivers have attached. Caller holds mutex. The segments are
  // returned, to be released after the lock is dropped (their destructors take it).
  std::vector<std::shared_ptr<Segment>> sweep();
};
Local& local() {
  static Local* l = new Local;
  return *l;
}

Segment::Header& header_of(const Segment& s) { return *reinterpret_cast<Segment::Header*>(s.data() - header_bytes); }

std::vector<std::shared_ptr<Segment>> Local::sweep() {
  std::vector<std::shared_ptr<Segment>> done;
  for (auto it = pinned.begin(); it != pinned.end();) {
    if (header_of(*it->second).in_flight.load(std::memory_order_acquire) != 0) {
      ++it;
      continue;
    }
    done.push_back(std::move(it->second));
    it = pinned.erase(it);
  }
  return done;
}

std::uint64_t fresh_nonce() {
  std::uint64_t n = 0;
  if (::getrandom(&n, sizeof n, 0) != sizeof n) n = std::random_device{}() ^ (std::uint64_t(std::random_device{}()) << 32);
  return n ? n : 1;
}

// Every shared object costs an fd in each process that uses it: a program with a few
// thousand Locks would meet the default soft limit (1024) long before the hard one.
void raise_fd_limit() noexcept {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

constexpr std::uint64_t home_of(std::int64_t pid, int fd) noexcept {
  return (static_cast<std::uint64_t>(pid) << 32) | static_cast<std::uint32_t>(fd);
}
// The home of a segment, or 0 if none or if that process has ended (a server that was
// killed: handles fall back to naming their sender, as before a home was set). Its fd is
// looked for, not its pid: a zombie's pid answers kill(pid, 0), its fds are gone.
std::uint64_t live_home(Segment::Header& h) noexcept {
  std::uint64_t home = h.home.load(std::memory_order_acquire);
  if (home == 0) return 0;
  const auto pid = static_cast<pid_t>(home >> 32);
  if (pid == ::getpid()) return home;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/fd/%u", static_cast<int>(pid), static_cast<unsigned>(home & 0xffffffffu));
  if (::access(path, F_OK) == 0) return home;
  h.home.compare_exchange_strong(home, 0, std::memory_order_acq_rel);
  return 0;
}
void drop_pin(Segment::Header& h) noexcept {
  std::uint32_t v = h.in_flight.load(std::memory_order_relaxed);
  while (v != 0 && !h.in_flight.compare_exchange_weak(v, v - 1, std::memory_order_acq_rel)) {
  }
}
// A receipt unpins a send, except a handle that named the home: its send pinned nothing.
// True if it was a pinned send's.
bool unpin_one(Segment::Header& h, const SegmentRef& ref) noexcept {
  const std::uint64_t home = h.home.load(std::memory_order_acquire);
  if (home != 0 && home == home_of(ref.pid, ref.fd)) return false;
  drop_pin(h);
  return true;
}

// The pins this thread's sends are captured into (PinCapture), if any.
thread_local std::vector<std::weak_ptr<Segment>>* capture = nullptr;

// A Process child's receipts (pins.hpp): where they go, and the next free slot.
struct Receipts {
  std::atomic<int> fd{-1};
  off_t at = 0;
  std::uint64_t slots = 0;
  std::atomic<std::uint64_t> next{0};
};
Receipts& receipts() {
  static Receipts* r = new Receipts;
  return *r;
}
void write_receipt(std::uint64_t nonce) noexcept {
  Receipts& r = receipts();
  const int fd = r.fd.load(std::memory_order_acquire);
  if (fd < 0) return;
  const std::uint64_t i = r.next.fetch_add(1, std::memory_order_relaxed);
  if (i >= r.slots) return;
  // A failure leaves the slot empty: the parent then drops the pin itself, at worst a
  // second time (in_flight saturates at 0).
  [[maybe_unused]] const ssize_t n = ::pwrite(fd, &nonce, sizeof nonce, r.at + static_cast<off_t>(i * sizeof nonce));
}
}  // namespace

PinCapture::PinCapture(std::vector<std::weak_ptr<Segment>>& into) noexcept : previous_(capture) { capture = &into; }
PinCapture::~PinCapture() { capture = previous_; }

void record_receipts_in(int fd, off_t at, std::uint64_t slots) noexcept {
  Receipts& r = receipts();
  r.at = at;
  r.slots = slots;
  r.fd.store(fd, std::memory_order_release);
}

void release_pins(std::vector<std::weak_ptr<Segment>>& pins, std::span<const std::uint64_t> received) noexcept {
  std::vector<std::uint64_t> left(received.begin(), received.end());
  for (const auto& weak : pins) {
    const std::shared_ptr<Segment> s = weak.lock();
    if (!s) continue;  // its pin went already: nothing else held it
    auto it = std::find(left.begin(), left.end(), s->nonce());
    if (it != left.end()) {
      left.erase(it);  // the child attached it: its pin went then
      continue;
    }
    drop_pin(header_of(*s));
  }
  std::vector<std::shared_ptr<Segment>> released;  // destroyed after the lock
  {
    Local& l = local();
    std::lock_guard lock(l.mutex);
    released = l.sweep();
  }
  pins.clear();
}

Segment::Segment(int fd, void* base, std::size_t mapped, std::size_t bytes) noexcept
    : fd_(fd), base_(base), mapped_(mapped), bytes_(bytes), data_(static_cast<std::byte*>(base) + header_bytes) {}

Segment::~Segment() {
  {
    Local& l = local();
    std::lock_guard lock(l.mutex);
    if (auto it = l.mapped.find(header_of(*this).nonce); it != l.mapped.end() && it->second.expired())
      l.mapped.erase(it);
  }
  // A lock inside is held here: leave the pages mapped (see hold()). The fd may go.
  if (held_.load(std::memory_order_relaxed) == 0) ::munmap(base_, mapped_);
  ::close(fd_);
}

std::uint64_t Segment::nonce() const noexcept { return header_of(*this).nonce; }

namespace {
[[noreturn]] void throw_too_big(const std::string& what, const char* kind) {
  throw std::system_error(std::make_error_code(std::errc::not_enough_memory),
                          "cannot create shared memory for a parex-" + std::string(kind) + " of " + what +
                              " (at most " + std::to_string(Segment::max_bytes) + ")");
}
}  // namespace

std::size_t segment_bytes(std::size_t head, std::size_t count, std::size_t each, const char* kind) {
  std::size_t body = 0, total = 0;
  if (__builtin_mul_overflow(count, each, &body) || __builtin_add_overflow(head, body, &total) ||
      total > Segment::max_bytes)
    throw_too_big(std::to_string(count) + " x " + std::to_string(each) + " bytes", kind);
  return total;
}

std::shared_ptr<Segment> Segment::create(std::size_t bytes, const char* kind) {
  static std::once_flag raised;
  std::call_once(raised, raise_fd_limit);
  // Past this, header_bytes + bytes wraps (or is no off_t): a small mapping for a big size.
  if (bytes > max_bytes) throw_too_big(std::to_string(bytes) + " bytes", kind);
  const std::string name = std::string("parex-") + kind;
  const int fd = sealable_memfd(name.c_str());
  if (fd < 0) {
    const int e = errno;
    throw std::system_error(e, std::generic_category(), "cannot create shared memory for a " + name);
  }
  const std::size_t mapped = header_bytes + (bytes ? bytes : 1);
  // Fixed size, sealed: every process that reaches it can open it read-write through
  // /proc, and one ftruncate would make the others' next touch of it a SIGBUS (memfd.hpp).
  if (::ftruncate(fd, static_cast<off_t>(mapped)) != 0 || !seal_memfd(fd, true)) {
    const int e = errno;
    ::close(fd);
    throw std::system_error(e, std::generic_category(), "cannot size shared memory for a " + name);
  }
  void* base = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    const int e = errno;
    ::close(fd);
    throw std::system_error(e, std::generic_category(), "cannot map shared memory for a " + name);
  }
  auto* h = new (base) Header{segment_magic, fresh_nonce(), bytes, {0}, {0}};
  std::shared_ptr<Segment> s(new Segment(fd, base, mapped, bytes));
  std::vector<std::shared_ptr<Segment>> released;
  {
    Local& l = local();
    std::lock_guard lock(l.mutex);
    l.mapped[h->nonce] = s;
    released = l.sweep();
  }
  return s;
}

void Segment::make_home() noexcept { header_of(*this).home.store(home_of(::getpid(), fd_), std::memory_order_release); }

void Segment::leave_home() noexcept {
  std::uint64_t mine = home_of(::getpid(), fd_);
  header_of(*this).home.compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
}

SegmentRef Segment::send(const std::shared_ptr<Segment>& self) {
  Header& h = header_of(*self);
  if (const std::uint64_t home = live_home(h))
    return {static_cast<std::int64_t>(home >> 32), static_cast<std::int32_t>(home & 0xffffffffu), h.nonce, h.bytes};
  h.in_flight.fetch_add(1, std::memory_order_acq_rel);
  std::vector<std::shared_ptr<Segment>> released;
  {
    Local& l = local();
    std::lock_guard lock(l.mutex);
    l.pinned.emplace(self.get(), self);
    released = l.sweep();
  }
  if (capture) capture->push_back(self);
  return {static_cast<std::int64_t>(::getpid()), self->fd_, h.nonce, h.bytes};
}

std::shared_ptr<Segment> Segment::attach(const SegmentRef& ref, bool received) {
  Local& l = local();
  {
    std::vector<std::shared_ptr<Segment>> released;  // destroyed after the lock
    std::lock_guard lock(l.mutex);
    if (auto it = l.mapped.find(ref.nonce); it != l.mapped.end())
      if (auto s = it->second.lock()) {
        if (s->size() != ref.bytes) throw SharedObjectError("a shared-object handle with a wrong size");
        if (received) {
          if (unpin_one(header_of(*s), ref)) write_receipt(ref.nonce);
          released = l.sweep();  // sent and received in this process: unpin at once
        }
        return s;
      }
  }
  const std::string path = "/proc/" + std::to_string(ref.pid) + "/fd/" + std::to_string(ref.fd);
  const auto gone = [&](const std::string& why) {
    return SharedObjectError("cannot reach the shared object of process " + std::to_string(ref.pid) + ": " + why +
                             " (a handle reaches its object while a process that holds it lives; see "
                             "parex/detail/mp/segment.hpp)");
  };
  // No segment is that big (create refuses it), and header_bytes + bytes would wrap.
  if (ref.bytes > max_bytes) throw gone("a handle with an impossible size");
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    throw gone("open " + path + ": " + std::strerror(e));
  }
  struct stat st {};
  const std::size_t mapped = header_bytes + (ref.bytes ? ref.bytes : 1);
  // Only a sealed file is mapped: one its holder could shrink would fault under us.
  if (::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) < mapped || !cannot_shrink(fd)) {
    ::close(fd);
    throw gone("its fd is not that object any more");
  }
  void* base = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    const int e = errno;
    ::close(fd);
    throw gone(std::string("mmap: ") + std::strerror(e));
  }
  auto* h = static_cast<Header*>(base);
  if (h->magic != segment_magic || h->nonce != ref.nonce || h->bytes != ref.bytes) {
    ::munmap(base, mapped);
    ::close(fd);
    throw gone("its fd is not that object any more");
  }
  std::shared_ptr<Segment> s(new Segment(fd, base, mapped, ref.bytes));
  if (received && unpin_one(*h, ref)) write_receipt(ref.nonce);
  std::shared_ptr<Segment> other;  // released after the lock: its destructor takes it
  {
    std::lock_guard lock(l.mutex);
    // Another thread may have attached the same segment meanwhile: keep one mapping.
    if (auto it = l.mapped.find(ref.nonce); it != l.mapped.end()) other = it->second.lock();
    if (!other) l.mapped[ref.nonce] = s;
  }
  if (other) std::swap(other, s);  // ours unmaps when `other` goes, after the lock
  return s;
}

void encode_handle(Writer& w, const std::shared_ptr<Segment>& s, std::uint64_t offset) {
  const SegmentRef ref = Segment::send(s);
  w.put_raw(ref.pid);
  w.put_raw(ref.fd);
  w.put_raw(ref.nonce);
  w.put_raw(ref.bytes);
  w.put_raw(offset);
}

std::shared_ptr<Segment> decode_handle(Reader& r, std::uint64_t& offset, std::uint64_t need) {
  SegmentRef ref;
  ref.pid = r.get_raw<std::int64_t>();
  ref.fd = r.get_raw<std::int32_t>();
  ref.nonce = r.get_raw<std::uint64_t>();
  ref.bytes = r.get_raw<std::uint64_t>();
  offset = r.get_raw<std::uint64_t>();
  if (offset > ref.bytes || need > ref.bytes - offset) throw ProtocolError("a shared-object handle points outside its segment");
  return Segment::attach(ref);
}

}  // namespace parex::detail
