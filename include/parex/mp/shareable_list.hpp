// parex/mp/shareable_list.hpp - ShareableList: a fixed-length list of None, bool, int,
// float, str and bytes in one shared memory block (Python's
// multiprocessing.shared_memory.ShareableList).
//
//   parex::ShareableList sl{"howdy", parex::Bytes{"HoWdY"}, -273.154, 100, nullptr, true, 42};
//   sl[3] = 42;                  // Python: sl[3] = 42
//   sl[-1] == 42;                // negative indexes count from the end; IndexError past either end
//   sl.index(100); sl.count(42); sl.format(); sl.size();   // Python: len(sl)
//   parex::ShareableList same(sl.shm.name());              // Python: ShareableList(name=...)
//   for (const parex::ShareableList::Item& x : sl) ...
//
// An item is a ShareableList::Item: a variant of nullptr (None), bool, std::int64_t (int,
// 'q'), double (float, 'd'), std::string (str, UTF-8) and parex::Bytes (bytes). Each
// slot is 8 bytes, a str's or bytes' the multiple of 8 above its length when the list is
// made (Python's rule: a str's length in characters): a later value of any type fits a
// slot, a str/bytes only up to the slot's bytes (ValueError "exceeds available storage").
// As in Python, str and bytes lose trailing NULs. The layout is Python's own, so a named
// list is shared with Python programs (ShareableList(name=...) there) - one deliberate
// difference: a str whose UTF-8 bytes exceed Python's slot gets a slot for its bytes
// (Python truncates it silently).
//
// A handle: copies, and copies passed to a Process, a pool call or through a Queue, are
// the same list (its SharedMemory travels; a named one is attached by name, and a list
// unlinked meanwhile is FileNotFoundError, as in Python). Nothing is locked: concurrent
// writers of one slot need a Lock, as in Python.
#pragma once

#include <parex/mp/shared_memory.hpp>

#include <compare>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <iterator>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace parex {

class SharedMemoryManager;

/// Python's bytes: a byte string, distinct from a str (std::string) in a ShareableList.
class Bytes {
 public:
  Bytes() = default;
  explicit Bytes(std::string_view s) : data_(s) {}
  explicit Bytes(const char* s) : data_(s) {}
  explicit Bytes(std::string s) : data_(std::move(s)) {}
  explicit Bytes(std::span<const std::byte> b) : data_(reinterpret_cast<const char*>(b.data()), b.size()) {}
  const std::string& str() const noexcept { return data_; }
  std::size_t size() const noexcept { return data_.size(); }
  friend bool operator==(const Bytes&, const Bytes&) = default;

 private:
  std::string data_;
};
/// Python's repr: b'HoWdY'.
std::ostream& operator<<(std::ostream& os, const Bytes& b);

class ShareableList {
 public:
  using parex_shared_handle = void;

  /// One item of a ShareableList: None, bool, int, float, str or bytes.
  class Item {
   public:
    using Variant = std::variant<std::nullptr_t, bool, std::int64_t, double, std::string, Bytes>;
    Item() noexcept : v_(nullptr) {}
    Item(std::nullptr_t) noexcept : v_(nullptr) {}
    Item(bool b) noexcept : v_(b) {}
    /// Any integer but a character type; @throws ValueError past int64 ('q', as Python's struct).
    template <std::integral I>
      requires(!std::same_as<I, bool> && !std::same_as<I, char> && !std::same_as<I, char8_t> &&
               !std::same_as<I, char16_t> && !std::same_as<I, char32_t> && !std::same_as<I, wchar_t>)
    Item(I i) : v_(checked(i)) {}
    Item(double d) noexcept : v_(d) {}
    Item(float f) noexcept : v_(static_cast<double>(f)) {}
    Item(const char* s) : v_(std::string(s)) {}
    Item(std::string_view s) : v_(std::string(s)) {}
    Item(std::string s) : v_(std::move(s)) {}
    Item(Bytes b) : v_(std::move(b)) {}

    const Variant& variant() const noexcept { return v_; }
    bool is_none() const noexcept { return std::holds_alternative<std::nullptr_t>(v_); }
    template <class T>
    bool holds() const noexcept { return std::holds_alternative<T>(v_); }
    /// The value as T (std::int64_t, double, bool, std::string, Bytes). @throws std::bad_variant_access.
    template <class T>
    const T& get() const { return std::get<T>(v_); }

    /// Python's ==: numbers (bool, int, float) by value (True == 1 == 1.0), str with str,
    /// bytes with bytes, None with None.
    friend bool operator==(const Item& a, const Item& b) noexcept;
    /// Python's repr: 'howdy', b'HoWdY', -273.154, 100, None, True.
    friend std::ostream& operator<<(std::ostream& os, const Item& x);

   private:
    template <class I>
    static std::int64_t checked(I i) {
      if constexpr (std::is_unsigned_v<I>) {
        if (static_cast<std::uint64_t>(i) > static_cast<std::uint64_t>(INT64_MAX)) throw_too_big();
      }
      return static_cast<std::int64_t>(i);
    }
    [[noreturn]] static void throw_too_big();
    Variant v_;
  };

  /// sl[i] of a non-const list: reads and assigns through to the shared block.
  class Reference {
   public:
    operator Item() const { return list_->get(i_); }
    Item get() const { return list_->get(i_); }
    Reference& operator=(const Item& v) {
      list_->set(i_, v);
      return *this;
    }
    Reference& operator=(const Reference& r) { return *this = r.get(); }
    friend bool operator==(const Reference& a, const Item& b) { return a.get() == b; }
    friend std::ostream& operator<<(std::ostream& os, const Reference& r) { return os << r.get(); }

   private:
    friend class ShareableList;
    Reference(ShareableList* l, std::ptrdiff_t i) : list_(l), i_(i) {}
    ShareableList* list_;
    std::ptrdiff_t i_;
  };

  class const_iterator {
   public:
    using value_type = Item;
    using difference_type = std::ptrdiff_t;
    using iterator_category = std::input_iterator_tag;
    const_iterator() = default;
    Item operator*() const { return list_->get(i_); }
    const_iterator& operator++() {
      ++i_;
      return *this;
    }
    void operator++(int) { ++i_; }
    friend bool operator==(const const_iterator& a, const const_iterator& b) noexcept { return a.i_ == b.i_; }

   private:
    friend class ShareableList;
    const_iterator(const ShareableList* l, std::ptrdiff_t i) : list_(l), i_(i) {}
    const ShareableList* list_ = nullptr;
    std::ptrdiff_t i_ = 0;
  };
  using iterator = const_iterator;

  /// An empty list (Python: ShareableList()), in an anonymous block.
  ShareableList() : ShareableList(std::vector<Item>{}) {}
  /// A new list of these items, in an anonymous block (Python: ShareableList([...])).
  ShareableList(std::initializer_list<Item> items) : ShareableList(std::vector<Item>(items)) {}
  /// The same under a name the user picks (Python: ShareableList([...], name=name)).
  /// @throws FileExistsError if it is taken.
  ShareableList(std::initializer_list<Item> items, std::string_view name)
      : ShareableList(std::vector<Item>(items), name) {}
  /// A new list of a range's items (Python: ShareableList(range(10))); a ShareableList's
  /// values are copied only with a name (a ShareableList alone is a copy of the handle).
  template <std::ranges::input_range R>
    requires(std::convertible_to<std::ranges::range_reference_t<R>, Item> &&
             !std::convertible_to<const R&, std::string_view> && !std::same_as<std::remove_cvref_t<R>, ShareableList> &&
             !std::same_as<std::remove_cvref_t<R>, std::vector<Item>>)
  explicit ShareableList(R&& items) : ShareableList(to_items(std::forward<R>(items))) {}
  template <std::ranges::input_range R>
    requires(std::convertible_to<std::ranges::range_reference_t<R>, Item> &&
             !std::convertible_to<const R&, std::string_view> && !std::same_as<std::remove_cvref_t<R>, std::vector<Item>>)
  ShareableList(R&& items, std::string_view name) : ShareableList(to_items(std::forward<R>(items)), name) {}
  explicit ShareableList(const std::vector<Item>& items);
  ShareableList(const std::vector<Item>& items, std::string_view name);
  /// Attaches to the list in the block `name` names (Python: ShareableList(name=name)).
  /// Use parentheses: ShareableList{"x"} is a new list of one str.
  /// @throws FileNotFoundError if nothing has that name; ValueError if the block holds no list.
  explicit ShareableList(std::string_view name) : ShareableList(parex::SharedMemory(name)) {}
  explicit ShareableList(const char* name) : ShareableList(std::string_view(name)) {}
  explicit ShareableList(const std::string& name) : ShareableList(std::string_view(name)) {}
  /// The list in this block. @throws ValueError if the block holds no list.
  explicit ShareableList(parex::SharedMemory shm);

  /// The block that holds the list (Python's .shm): shm.name(), shm.close(), shm.unlink().
  parex::SharedMemory shm;

  /// Python's len(sl).
  std::size_t size() const;
  /// sl[i]; i < 0 counts from the end. @throws IndexError.
  Item get(std::ptrdiff_t i) const;
  /// sl[i] = v. @throws IndexError; ValueError if a str/bytes is longer than its slot.
  void set(std::ptrdiff_t i, const Item& v);
  Reference operator[](std::ptrdiff_t i) { return Reference(this, i); }
  Item operator[](std::ptrdiff_t i) const { return get(i); }
  /// The struct format of every item, as Python's .format ("8s8sdqxxxxxx?xxxxxxx?q").
  std::string format() const;
  /// How many items == v (Python's ==, see Item).
  std::size_t count(const Item& v) const;
  /// The first index of an item == v. @throws ValueError if none is.
  std::size_t index(const Item& v) const;
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, static_cast<std::ptrdiff_t>(size())}; }
  /// Python's list(sl).
  std::vector<Item> to_vector() const;

  void encode_to(detail::Writer& w) const { shm.encode_to(w); }
  static ShareableList decode_from(detail::Reader& r) { return ShareableList(parex::SharedMemory::decode_from(r)); }

  /// The bytes a list of these items takes (Python's requested_size).
  static std::size_t bytes_for(const std::vector<Item>& items);

 private:
  friend class SharedMemoryManager;
  struct Fill {};
  ShareableList(Fill, parex::SharedMemory shm, const std::vector<Item>& items);
  template <class R>
  static std::vector<Item> to_items(R&& items) {
    std::vector<Item> v;
    for (auto&& x : items) v.emplace_back(Item(x));
    return v;
  }
  std::span<std::byte> checked_buf() const;
  std::size_t n_ = 0;
  std::vector<std::uint64_t> offsets_;  // n_ + 1 slot offsets into the data area (fixed at creation)
};

/// Python's repr: ShareableList(['howdy', 42], name='...').
std::ostream& operator<<(std::ostream& os, const ShareableList& l);

}  // namespace parex
