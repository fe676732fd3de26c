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
// none. Nothing here locks for you: value() and operator[] are plain references.
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

/// Layout: [lock cell, 64 bytes (unused by the Raw kinds)][type tag, count: 64 bytes][T x count]
template <class T, bool Locked>
class SharedData {
 public:
  using parex_shared_handle = void;

  void encode_to(Writer& w) const { encode_handle(w, segment_, 0); }

 protected:
  static constexpr std::size_t meta_offset = lock_cell_bytes;
  static constexpr std::size_t data_offset = lock_cell_bytes + 64;
  static_assert(alignof(T) <= 64, "parex: shared data aligned past 64 bytes is not supported");
  struct Meta {
    std::uint64_t tag;
    std::uint64_t count;
  };

  explicit SharedData(std::size_t count, const char* kind)
      : segment_(Segment::create(segment_bytes(data_offset, count, sizeof(T), kind), kind)) {
    if constexpr (Locked) {
      LockHandle::init_cell(segment_->data(), LockHandle::Kind::recursive);
      lock_.emplace(segment_, 0);
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
    if constexpr (Locked) lock_.emplace(segment_, 0);
  }

  std::shared_ptr<Segment> segment_;
  T* data_ = nullptr;
  std::size_t count_ = 0;
  mutable std::optional<RLock> lock_;  // Value and Array: a handle to the lock in the segment

 public:
  /// The lock that guards the data (Value and Array; an RLock, as in Python):
  /// `std::lock_guard g(v.get_lock());` is Python's `with v.get_lock():`.
  RLock& get_lock() const
    requires Locked
  {
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
  /// The value itself, in shared memory (Python's .value). Not locked: see get_lock().
  T& value() const noexcept { return *this->data_; }
  static SharedValue decode_from(Reader& r) { return SharedValue(r); }

 private:
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
  explicit SharedArray(Reader& r) : Base(r, "Array") {}
  SharedArray(const T* first, std::size_t n) : Base(n, Locked ? "array" : "rawarray") {
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
  SharedArray(Copied, const std::vector<T>& v) : SharedArray(v.data(), v.size()) {}
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
