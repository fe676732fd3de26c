// SharedMemory (see include/parex/mp/shared_memory.hpp).
// Layout: [control, 64 bytes: tag, unlinked flag][the user's bytes].
#include <parex/mp/shared_memory.hpp>

#include <parex/errors.hpp>

#include <atomic>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <new>
#include <string>
#include <unistd.h>

namespace parex {

namespace {
constexpr std::size_t control_bytes = 64;
constexpr std::uint32_t shm_tag = 0x53484d31;  // "SHM1"
struct Control {
  std::uint32_t tag;
  std::atomic<std::uint32_t> unlinked;
};

Control& control(const detail::Segment& s) { return *reinterpret_cast<Control*>(s.data()); }

void check_tag(const detail::Segment& s) {
  if (s.size() < control_bytes || control(s).tag != shm_tag)
    throw SharedObjectError("this handle or name does not refer to a SharedMemory");
}
}  // namespace

std::size_t SharedMemory::positive_size(long long size) {
  if (size <= 0) throw ValueError("SharedMemory: the size must be positive, not " + std::to_string(size));
  return static_cast<std::size_t>(size);
}

SharedMemory::SharedMemory(std::size_t size) : size_(size) {
  if (size == 0) throw ValueError("SharedMemory: the size must be positive, not 0");
  segment_ = detail::Segment::create(detail::segment_bytes(control_bytes, size, 1, "shared-memory"), "shared-memory");
  new (segment_->data()) Control{shm_tag, {0}};
}

SharedMemory::SharedMemory(std::string_view name) {
  // Python's ValueError cases: nothing a name could be. A well-formed name of nothing
  // reachable is SharedObjectError below (Python: FileNotFoundError).
  if (name.empty()) throw ValueError("SharedMemory: an empty name");
  if (name.find('\0') != std::string_view::npos) throw ValueError("SharedMemory: a name with an embedded NUL");
  // "parex_<pid>_<fd>_<nonce hex>_<bytes>"
  detail::SegmentRef ref;
  unsigned long long nonce = 0, bytes = 0;
  long long pid = 0;
  int fd = -1, used = 0;
  const std::string n(name);
  if (std::sscanf(n.c_str(), "parex_%lld_%d_%llx_%llu%n", &pid, &fd, &nonce, &bytes, &used) != 4 ||
      static_cast<std::size_t>(used) != n.size())
    throw SharedObjectError("not a SharedMemory name: \"" + n + "\"");
  ref.pid = pid;
  ref.fd = fd;
  ref.nonce = nonce;
  ref.bytes = bytes;
  segment_ = detail::Segment::attach(ref, /*received=*/false);
  check_tag(*segment_);
  if (control(*segment_).unlinked.load(std::memory_order_acquire) != 0)
    throw SharedObjectError("SharedMemory \"" + n + "\" was unlinked");
  size_ = segment_->size() - control_bytes;
}

std::string SharedMemory::name() const {
  if (!segment_) throw SharedObjectError("this SharedMemory was closed");
  char buf[96];
  // The name names this process's fd: a handle that was decoded here has its own.
  std::snprintf(buf, sizeof buf, "parex_%lld_%d_%" PRIx64 "_%zu", static_cast<long long>(::getpid()), segment_->fd(),
                segment_->nonce(), segment_->size());
  return buf;
}

std::span<std::byte> SharedMemory::buf() const {
  if (!segment_) return {};
  return {segment_->data() + control_bytes, size_};
}

void SharedMemory::close() noexcept {
  segment_.reset();
  size_ = 0;
}

void SharedMemory::unlink() noexcept {
  if (segment_) control(*segment_).unlinked.store(1, std::memory_order_release);
}

void SharedMemory::encode_to(detail::Writer& w) const {
  if (!segment_) throw SharedObjectError("cannot send a closed SharedMemory");
  detail::encode_handle(w, segment_, 0);
}

SharedMemory SharedMemory::decode_from(detail::Reader& r) {
  std::uint64_t offset = 0;
  SharedMemory m;
  m.segment_ = detail::decode_handle(r, offset, control_bytes);
  check_tag(*m.segment_);
  m.size_ = m.segment_->size() - control_bytes;
  return m;
}

}  // namespace parex
