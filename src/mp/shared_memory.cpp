// SharedMemory (see include/parex/mp/shared_memory.hpp).
// Anonymous layout: [control, 64 bytes: tag, unlinked flag][the user's bytes].
// Named layout: the file's bytes, nothing of ours (Python's programs attach to the same).
// A handle on the wire: an anonymous block's segment handle (its first field, a pid, is
// positive), or -1, the size, 16 zero bytes (FastCodec's min_size for handles is 32
// bytes), then the name.
#include <parex/mp/shared_memory.hpp>

#include "mp/shm_tracker.hpp"

#include <parex/errors.hpp>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <new>
#include <ostream>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

namespace parex {

namespace detail {
/// A named block mapped here: unmapped with its last handle.
struct NamedBlock {
  void* base = nullptr;
  std::size_t bytes = 0;
  ~NamedBlock() {
    if (base) ::munmap(base, bytes);
  }
};
}  // namespace detail

namespace {
constexpr std::size_t control_bytes = 64;
constexpr std::uint32_t shm_tag = 0x53484d31;  // "SHM1"
constexpr std::int64_t named_marker = -1;
struct Control {
  std::uint32_t tag;
  std::atomic<std::uint32_t> unlinked;
};

Control& control(const detail::Segment& s) { return *reinterpret_cast<Control*>(s.data()); }

void check_tag(const detail::Segment& s) {
  if (s.size() < control_bytes || control(s).tag != shm_tag)
    throw SharedObjectError("this handle or name does not refer to a SharedMemory");
}

void check_name(std::string_view name) {
  // Python's ValueError cases: nothing a name could be.
  if (name.empty()) throw ValueError("SharedMemory: an empty name");
  if (name.find('\0') != std::string_view::npos) throw ValueError("SharedMemory: a name with an embedded NUL");
}

std::string shm_path(const std::string& name) { return "/" + name; }

[[noreturn]] void throw_errno(int e, const std::string& what, const std::string& name) {
  const std::string w = what + " '" + name + "'";
  if (e == ENOENT) throw FileNotFoundError(w);
  if (e == EEXIST) throw FileExistsError(w);
  throw std::system_error(e, std::generic_category(), w);
}

// Anonymous names: "parex_<pid>_<fd>_<nonce hex>_<bytes>". True if `n` is one.
bool parse_anonymous(const std::string& n, detail::SegmentRef& ref) {
  unsigned long long nonce = 0, bytes = 0;
  long long pid = 0;
  int fd = -1, used = 0;
  if (std::sscanf(n.c_str(), "parex_%lld_%d_%llx_%llu%n", &pid, &fd, &nonce, &bytes, &used) != 4 ||
      static_cast<std::size_t>(used) != n.size() || pid <= 0 || fd < 0)
    return false;
  ref.pid = pid;
  ref.fd = fd;
  ref.nonce = nonce;
  ref.bytes = bytes;
  return true;
}
}  // namespace

std::size_t SharedMemory::positive_size(long long size) {
  if (size <= 0) throw ValueError("SharedMemory: the size must be positive, not " + std::to_string(size));
  return static_cast<std::size_t>(size);
}

std::size_t SharedMemory::non_negative(long long size) {
  if (size < 0) throw ValueError("SharedMemory: the size must be a positive integer, not " + std::to_string(size));
  return static_cast<std::size_t>(size);
}

SharedMemory::SharedMemory(std::size_t size) : size_(size) {
  if (size == 0) throw ValueError("SharedMemory: the size must be positive, not 0");
  segment_ = detail::Segment::create(detail::segment_bytes(control_bytes, size, 1, "shared-memory"), "shared-memory");
  new (segment_->data()) Control{shm_tag, {0}};
}

SharedMemory::SharedMemory(std::nullopt_t, bool create, std::size_t size) {
  if (!create) throw ValueError("SharedMemory: the name can only be left out to create a block");
  *this = SharedMemory(size);
}

SharedMemory::SharedMemory(std::string_view name) {
  check_name(name);
  const std::string n(name);
  detail::SegmentRef ref;
  if (parse_anonymous(n, ref)) {
    try {
      segment_ = detail::Segment::attach(ref, /*received=*/false);
      check_tag(*segment_);
    } catch (const SharedObjectError& e) {
      segment_.reset();
      // A user may have picked a name of this shape: it may be a named block after all.
      struct stat st {};
      if (::stat(("/dev/shm/" + n).c_str(), &st) != 0) throw FileNotFoundError("SharedMemory '" + n + "': " + e.what());
    }
    if (segment_) {
      if (control(*segment_).unlinked.load(std::memory_order_acquire) != 0)
        throw FileNotFoundError("SharedMemory '" + n + "' was unlinked");
      size_ = segment_->size() - control_bytes;
      anon_name_ = n;
      return;
    }
  }
  attach_named(n);
}

SharedMemory::SharedMemory(std::string_view name, bool create, std::size_t size, bool track) {
  if (!create) {
    *this = SharedMemory(name);
    return;
  }
  check_name(name);
  if (size == 0) throw ValueError("SharedMemory: the size must be a positive number different from zero");
  const std::string n(name);
  if (n.find('\n') != std::string::npos) throw ValueError("SharedMemory: a name with a newline");
  if (size > static_cast<std::size_t>(std::numeric_limits<off_t>::max()))
    throw std::system_error(ENOMEM, std::generic_category(), "SharedMemory: a size past off_t for '" + n + "'");
  const int fd = ::shm_open(shm_path(n).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) throw_errno(errno, "SharedMemory: cannot create", n);
  const auto fail = [&](const char* what) {
    const int e = errno;
    ::close(fd);
    ::shm_unlink(shm_path(n).c_str());
    throw std::system_error(e, std::generic_category(), std::string("SharedMemory: cannot ") + what + " '" + n + "'");
  };
  struct stat st {};
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) fail("size");
  if (::fstat(fd, &st) != 0) fail("stat");
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) fail("map");
  ::close(fd);  // the mapping keeps the memory; no fd per handle
  named_ = std::make_shared<detail::NamedBlock>();
  named_->base = base;
  named_->bytes = size;
  user_name_ = n;
  size_ = size;
  if (track) detail::track_shm(n, st.st_ino, /*warn=*/true);
}

void SharedMemory::attach_named(const std::string& n) {
  const int fd = ::shm_open(shm_path(n).c_str(), O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) throw FileNotFoundError("SharedMemory: no block named '" + n + "'");
    throw_errno(e, "SharedMemory: cannot open", n);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw_errno(e, "SharedMemory: cannot stat", n);
  }
  if (st.st_size <= 0) {
    ::close(fd);
    throw ValueError("SharedMemory '" + n + "' is empty (its creator has not sized it yet)");
  }
  const auto bytes = static_cast<std::size_t>(st.st_size);
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int e = errno;
  ::close(fd);
  if (base == MAP_FAILED) throw_errno(e, "SharedMemory: cannot map", n);
  named_ = std::make_shared<detail::NamedBlock>();
  named_->base = base;
  named_->bytes = bytes;
  user_name_ = n;
  size_ = bytes;
}

std::string SharedMemory::name() const {
  if (!user_name_.empty()) return user_name_;
  if (!segment_) {
    if (!anon_name_.empty()) return anon_name_;
    throw SharedObjectError("this SharedMemory was closed");
  }
  char buf[96];
  // The name names this process's fd: a handle that was decoded here has its own.
  std::snprintf(buf, sizeof buf, "parex_%lld_%d_%" PRIx64 "_%zu", static_cast<long long>(::getpid()), segment_->fd(),
                segment_->nonce(), segment_->size());
  return buf;
}

std::span<std::byte> SharedMemory::buf() const {
  if (segment_) return {segment_->data() + control_bytes, size_};
  if (named_) return {static_cast<std::byte*>(named_->base), size_};
  return {};
}

void SharedMemory::close() noexcept {
  if (segment_ && anon_name_.empty()) {
    try {
      anon_name_ = name();
    } catch (...) {
    }
  }
  segment_.reset();
  named_.reset();
}

void SharedMemory::unlink() {
  if (!user_name_.empty()) {
    const int rc = ::shm_unlink(shm_path(user_name_).c_str());
    const int err = errno;
    // Gone (unlinked by another process) or unlinked now: either way no longer ours to clean.
    if (rc == 0 || err == ENOENT) detail::untrack_shm(user_name_);
    if (rc != 0) throw_errno(err, "SharedMemory: cannot unlink", user_name_);
    return;
  }
  std::shared_ptr<detail::Segment> s = segment_;
  if (!s && !anon_name_.empty()) {
    // Closed here: reach it by name if some process still holds it (else no name reaches it).
    detail::SegmentRef ref;
    if (!parse_anonymous(anon_name_, ref)) return;
    try {
      s = detail::Segment::attach(ref, /*received=*/false);
      check_tag(*s);
    } catch (const SharedObjectError&) {
      return;
    }
  }
  if (!s) return;
  if (control(*s).unlinked.exchange(1, std::memory_order_acq_rel) != 0)
    throw FileNotFoundError("SharedMemory '" + name() + "' was already unlinked");
}

void SharedMemory::encode_to(detail::Writer& w) const {
  if (segment_) {
    detail::encode_handle(w, segment_, 0);
    return;
  }
  if (!named_) throw SharedObjectError("cannot send a closed SharedMemory");
  w.put_raw(named_marker);
  w.put_raw<std::uint64_t>(size_);
  w.put_raw<std::uint64_t>(0);
  w.put_raw<std::uint64_t>(0);
  detail::fast_encode<std::string>(w, user_name_);
}

SharedMemory SharedMemory::decode_from(detail::Reader& r) {
  detail::Reader peek = r;
  if (peek.get_raw<std::int64_t>() == named_marker) {
    r.get_raw<std::int64_t>();
    r.get_raw<std::uint64_t>();
    r.get_raw<std::uint64_t>();
    r.get_raw<std::uint64_t>();
    const auto name = detail::fast_decode<std::string>(r);
    SharedMemory m;
    check_name(name);
    m.attach_named(name);  // Python's unpickling: an attach by name
    return m;
  }
  std::uint64_t offset = 0;
  SharedMemory m;
  m.segment_ = detail::decode_handle(r, offset, control_bytes);
  check_tag(*m.segment_);
  if (control(*m.segment_).unlinked.load(std::memory_order_acquire) != 0)
    throw FileNotFoundError("a handle of a SharedMemory that was unlinked since it was sent");
  m.size_ = m.segment_->size() - control_bytes;
  return m;
}

std::ostream& operator<<(std::ostream& os, const SharedMemory& m) {
  std::string n;
  try {
    n = m.name();
  } catch (...) {
    n = "<closed>";
  }
  return os << "SharedMemory('" << n << "', size=" << m.size() << ")";
}

}  // namespace parex
