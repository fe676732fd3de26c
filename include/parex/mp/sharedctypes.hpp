// parex/mp/sharedctypes.hpp - Value, RawValue, Array, RawArray: plain data in shared
// memory (Python's multiprocessing.Value, RawValue, Array, RawArray).
//
//   parex::Value<int> counter(0);
//   { std::lock_guard g(counter.get_lock()); ++counter.value(); }   // Python: with counter.get_lock(): counter.value += 1
//   parex::Array<double> a{1.0, 2.0, 3.0};     a[1] = 5;   a.to_vector();
//
// Handles: copies, and copies passed to a Process, a pool call or through a Queue, are
// the same memory. T must be trivially copyable (the bytes are shared, not the object).
// Value and Array carry an RLock (get_lock(), recursive as in Python); the Raw kinds have
// none. Python's lock= argument comes last: Value<int>(0, lock) and Array<int>(n, lock)
// share a given Lock or RLock (get_lock() returns it; it travels with the value), and
// Value<int>(0, false) has no lock (Python's lock=False: get_lock() and get_obj() then
// throw AttributeError; RawValue/RawArray are the lock-less types, checked at compile
// time). get_obj() is the unlocked object over the same memory (a RawValue/RawArray).
// Nothing here locks for you: value() and operator[] are plain references.
// What survives a SIGKILL: the memory, for as long as a process holds a handle; the lock
// as lock.hpp says (a holder that died is reported by previous_owner_died()).
// Sizes: Array(0) is an empty array and a negative length is ValueError, as in Python; a
// length whose bytes the system cannot give (its byte count overflows, or mmap refuses)
// is std::system_error with ENOMEM (see segment_bytes in detail/mp/segment.hpp).
#pragma once

#include <parex/detail/mp/segment.hpp>
#include <parex/detail/wire/type_tag.hpp>
#include <parex/errors.hpp>
#include <parex/mp/lock.hpp>

#include <algorithm>
#include <concepts>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <ranges>
#include <span>
#include <type_traits>
#include <typeinfo>
#include <vector>

namespace parex {
namespace detail {

#define PAREX_DETAIL_TRIVIAL_FIX                                                                                   \
  "lives in shared memory as raw bytes, so T must be trivially copyable: use numbers, enums, std::array or a plain " \
  "struct; for strings, vectors and other types use a Queue"

/// Python's lock= argument of Value and Array: true or nullptr (a new RLock, the
/// default), false (no lock), or a Lock or RLock to share.
class LockArg {
 public:
  template <std::same_as<bool> B>
  LockArg(B lock) : mode_(lock ? own : none) {}
  LockArg(std::nullptr_t) : mode_(own) {}
  LockArg(const Lock& l) : mode_(given), lock_(std::make_shared<LockHandle>(l)) {}
  LockArg(const RLock& l) : mode_(given), lock_(std::make_shared<LockHandle>(l)) {}
  enum Mode : std::uint8_t { own = 0, none = 1, given = 2 };
  Mode mode_;
  std::shared_ptr<LockHandle> lock_;
};

/// Layout: [lock cell, 64 bytes (unused by the Raw kinds)][type tag, count: 64 bytes][T x count]
/// On the wire: the segment's handle; Value and Array add their lock mode, and a given
/// lock's own handle.
template <class T, bool Locked>
class SharedData {
 public:
  using parex_shared_handle = void;

  void encode_to(Writer& w) const {
    encode_handle(w, segment_, 0);
    if constexpr (Locked) {
      w.put_byte(mode_);
      if (mode_ == LockArg::given) lock_->encode_to(w);
    }
  }

 protected:
  static constexpr std::size_t meta_offset = lock_cell_bytes;
  static constexpr std::size_t data_offset = lock_cell_bytes + 64;
  static_assert(alignof(T) <= 64, "parex: shared data aligned past 64 bytes is not supported");
  struct Meta {
    std::uint64_t tag;
    std::uint64_t count;
  };

  explicit SharedData(std::size_t count, const char* kind, LockArg lock = true)
      : segment_(Segment::create(segment_bytes(data_offset, count, sizeof(T), kind), kind)) {
    if constexpr (Locked) {
      LockHandle::init_cell(segment_->data(), LockHandle::Kind::recursive);
      mode_ = lock.mode_;
      if (mode_ == LockArg::own) lock_ = std::make_shared<RLock>(segment_, 0);
      if (mode_ == LockArg::given) lock_ = std::move(lock.lock_);
    }
    new (segment_->data() + meta_offset) Meta{type_tag<T>(), count};
    data_ = reinterpret_cast<T*>(segment_->data() + data_offset);
    count_ = count;
  }
  SharedData(Reader& r, const char* name) {
    std::uint64_t offset = 0;
    segment_ = decode_handle(r, offset, data_offset);
    const auto* meta = reinterpret_cast<const Meta*>(segment_->data() + meta_offset);
    if (offset != 0 || meta->tag != type_tag<T>() || meta->count > (segment_->size() - data_offset) / sizeof(T))
      throw SharedObjectError(std::string("this handle does not refer to a ") + name + " of this type");
    data_ = reinterpret_cast<T*>(segment_->data() + data_offset);
    count_ = meta->count;
    if constexpr (Locked) {
      const std::uint8_t mode = r.get_byte();
      if (mode > LockArg::given) throw SharedObjectError(std::string("a ") + name + " handle with a bad lock mode");
      mode_ = static_cast<LockArg::Mode>(mode);
      if (mode_ == LockArg::own) lock_ = std::make_shared<RLock>(segment_, 0);
      if (mode_ == LockArg::given) lock_ = std::make_shared<LockHandle>(LockHandle::decode_either(r));
    }
  }
  // The same memory, seen as the other kind (get_obj()).
  template <class, bool>
  friend class SharedData;
  template <bool L>
  explicit SharedData(const SharedData<T, L>& other) : segment_(other.segment_), data_(other.data_), count_(other.count_) {}

  void check_locked(const char* what) const {
    if (mode_ == LockArg::none)
      throw AttributeError(std::string("this object was made with lock=false: it has no ") + what +
                           " (use RawValue/RawArray for a lock-less type)");
  }

  std::shared_ptr<Segment> segment_;
  T* data_ = nullptr;
  std::size_t count_ = 0;
  LockArg::Mode mode_ = LockArg::none;
  std::shared_ptr<LockHandle> lock_;  // Value and Array: the RLock in the segment, or the lock given

 public:
  /// The lock that guards the data (Value and Array): an RLock of its own, as in Python,
  /// or the Lock/RLock it was given. `std::lock_guard g(v.get_lock());` is Python's
  /// `with v.get_lock():`. @throws AttributeError if made with lock = false.
  LockHandle& get_lock() const
    requires(Locked)
  {
    check_locked("get_lock()");
    return *lock_;
  }
};

template <class T, bool Locked>
class SharedValue : public SharedData<T, Locked> {
  static_assert(std::is_trivially_copyable_v<T>, "parex::Value<T> " PAREX_DETAIL_TRIVIAL_FIX);
  using Base = SharedData<T, Locked>;

 public:
  /// A new value in shared memory, initialized to `init`.
  explicit SharedValue(const T& init = T{}) : Base(1, Locked ? "value" : "rawvalue") {
    std::memcpy(static_cast<void*>(this->data_), &init, sizeof(T));
  }
  /// The same with Python's lock=: true/nullptr (an RLock of its own), false (none), or a
  /// Lock/RLock to share (Value only).
  SharedValue(const T& init, LockArg lock)
    requires(Locked)
      : Base(1, "value", std::move(lock)) {
    std::memcpy(static_cast<void*>(this->data_), &init, sizeof(T));
  }
  /// The value itself, in shared memory (Python's .value). Not locked: see get_lock().
  T& value() const noexcept { return *this->data_; }
  /// The unlocked object over the same memory (Python's get_obj()). @throws AttributeError
  /// if made with lock = false.
  SharedValue<T, false> get_obj() const
    requires(Locked)
  {
    this->check_locked("get_obj()");
    return SharedValue<T, false>(*this);
  }
  static SharedValue decode_from(Reader& r) { return SharedValue(r); }

 private:
  template <class, bool>
  friend class SharedValue;
  template <bool L>
  explicit SharedValue(const SharedValue<T, L>& other) : Base(other) {}
  explicit SharedValue(Reader& r) : Base(r, "Value") {
    if (this->count_ != 1) throw SharedObjectError("this handle does not refer to a Value");
  }
};

template <class T, bool Locked>
class SharedArray : public SharedData<T, Locked> {
  static_assert(std::is_trivially_copyable_v<T>, "parex::Array<T> " PAREX_DETAIL_TRIVIAL_FIX);
  using Base = SharedData<T, Locked>;

 public:
  /// n values of T{} (Python: Array('i', n)).
  explicit SharedArray(std::size_t n) : Base(n, Locked ? "array" : "rawarray") {
    std::uninitialized_fill_n(this->data_, n, T{});
  }
  /// The constructors below with Python's lock= last (Array only): true/nullptr (an RLock
  /// of its own), false (none), or a Lock/RLock to share.
  SharedArray(std::size_t n, LockArg lock)
    requires(Locked)
      : Base(n, "array", std::move(lock)) {
    std::uninitialized_fill_n(this->data_, n, T{});
  }
  template <std::signed_integral I>
  SharedArray(I n, LockArg lock)
    requires(Locked)
      : SharedArray(non_negative(static_cast<long long>(n)), std::move(lock)) {}
  SharedArray(std::initializer_list<T> values, LockArg lock)
    requires(Locked)
      : SharedArray(values.begin(), values.size(), std::move(lock)) {}
  template <std::ranges::input_range R>
    requires(Locked && !std::is_integral_v<std::remove_cvref_t<R>> && !std::is_same_v<std::remove_cvref_t<R>, SharedArray> &&
             std::convertible_to<std::ranges::range_value_t<R>, T>)
  SharedArray(R&& values, LockArg lock) : SharedArray(Copied{}, copy_of(std::forward<R>(values)), std::move(lock)) {}
  /// The unlocked array over the same memory (Python's get_obj()). @throws AttributeError
  /// if made with lock = false.
  SharedArray<T, false> get_obj() const
    requires(Locked)
  {
    this->check_locked("get_obj()");
    return SharedArray<T, false>(*this);
  }
  /// The same from a signed length: @throws ValueError if it is negative (not a huge
  /// size_t after a silent conversion).
  template <std::signed_integral I>
  explicit SharedArray(I n) : SharedArray(non_negative(static_cast<long long>(n))) {}
  /// The given values (Python: Array('i', [1, 2, 3])).
  SharedArray(std::initializer_list<T> values) : SharedArray(values.begin(), values.size()) {}
  /// A copy of a range's values. Never a copy of an Array handle itself: `Array b(a)` with
  /// a non-const `a` is the same array, as copy-initialization is.
  template <std::ranges::input_range R>
    requires(!std::is_integral_v<std::remove_cvref_t<R>> && !std::is_same_v<std::remove_cvref_t<R>, SharedArray> &&
             std::convertible_to<std::ranges::range_value_t<R>, T>)
  explicit SharedArray(R&& values) : SharedArray(Copied{}, copy_of(std::forward<R>(values))) {}

  T& operator[](std::size_t i) const noexcept { return this->data_[i]; }
  /// Bounds-checked: @throws std::out_of_range.
  T& at(std::size_t i) const {
    if (i >= this->count_) throw std::out_of_range("parex::Array index " + std::to_string(i) + " out of range");
    return this->data_[i];
  }
  std::size_t size() const noexcept { return this->count_; }
  T* begin() const noexcept { return this->data_; }
  T* end() const noexcept { return this->data_ + this->count_; }
  std::span<T> span() const noexcept { return {this->data_, this->count_}; }
  std::vector<T> to_vector() const { return {begin(), end()}; }
  static SharedArray decode_from(Reader& r) { return SharedArray(r); }

 private:
  template <class, bool>
  friend class SharedArray;
  template <bool L>
  explicit SharedArray(const SharedArray<T, L>& other) : Base(other) {}
  explicit SharedArray(Reader& r) : Base(r, "Array") {}
  SharedArray(const T* first, std::size_t n, LockArg lock = true) : Base(n, Locked ? "array" : "rawarray", std::move(lock)) {
    if (n) std::memcpy(static_cast<void*>(this->data_), first, n * sizeof(T));
  }
  static std::size_t non_negative(long long n) {
    if (n < 0) throw ValueError("parex::Array: the length must be >= 0, not " + std::to_string(n));
    return static_cast<std::size_t>(n);
  }
  struct Copied {};
  template <class R>
  static std::vector<T> copy_of(R&& values) {
    std::vector<T> v;
    for (auto&& x : values) v.push_back(static_cast<T>(x));
    return v;
  }
  SharedArray(Copied, const std::vector<T>& v, LockArg lock = true) : SharedArray(v.data(), v.size(), std::move(lock)) {}
};

}  // namespace detail

/// A T in shared memory with an RLock beside it (Python's multiprocessing.Value).
template <class T>
using Value = detail::SharedValue<T, true>;
/// A T in shared memory, no lock (Python's RawValue).
template <class T>
using RawValue = detail::SharedValue<T, false>;
/// A fixed-size array of T in shared memory with an RLock (Python's multiprocessing.Array).
template <class T>
using Array = detail::SharedArray<T, true>;
/// The same without a lock (Python's RawArray).
template <class T>
using RawArray = detail::SharedArray<T, false>;

}  // namespace parex
