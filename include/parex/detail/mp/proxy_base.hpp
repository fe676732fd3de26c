// parex/detail/mp/proxy_base.hpp - what every Manager proxy is made of (the proxies are
// in parex/mp/proxies.hpp and parex/mp/manager.hpp): ProxyBase (a link, an object id and
// the type tag the object was made with; one request per call), the codec every proxy
// shares, the lazy iterators of list, dict and set proxies, and the per-type sorters a
// server looks up for ListProxy::sort.
//
// Thread-safety: a proxy is a value (copies are handles to the same object); its calls
// go through its process's ManagerLink, which serializes them. Iterators are not shared.
#pragma once

#include <parex/detail/mp/manager_link.hpp>
#include <parex/detail/mp/segment.hpp>
#include <parex/detail/wire/type_tag.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <numeric>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parex {
class Manager;

namespace detail {

/// How many items one step of a list, dict or set iteration asks the server for. A
/// chunk is read when the iteration reaches it (never when it begins), and the server
/// also stops a chunk at list_chunk_bytes (at least one item): bigger chunks save round
/// trips, smaller ones see a concurrent writer's changes sooner and hold less memory.
inline constexpr std::size_t default_iter_chunk = 256;
inline constexpr std::size_t list_chunk_bytes = std::size_t{1} << 20;

/// What every proxy is: a link, an object id and the type tag the object was made with.
class ProxyBase {
 public:
  using parex_shared_handle = void;
  std::uint64_t id() const noexcept { return id_; }
  const std::string& address() const { return link().address(); }

 protected:
  ProxyBase() = default;
  ProxyBase(std::shared_ptr<ManagerLink> link, std::uint64_t id, std::uint64_t tag)
      : link_(std::move(link)), id_(id), tag_(tag) {}
  ProxyBase(Reader& r, std::uint64_t tag, const char* what);

  /// One call: header, then the arguments as items; returns the reply.
  template <class... A>
  std::vector<std::byte> call(std::string_view method, const A&... args) const {
    Buffer b;
    put_call_header(b, id_, tag_, method);
    (put_item<A>(b, args), ...);
    return link().request(b);
  }
  template <class R, class... A>
  R call_for(std::string_view method, const A&... args) const {
    const auto reply = call(method, args...);
    Reader r(reply);
    return get_item<R>(r);
  }
  /// A call whose arguments are a count and that many items (extend), or that many
  /// key and value items (update: Pairs = true); returns the reply.
  template <bool Pairs = false, class Items>
  std::vector<std::byte> call_items(std::string_view method, const Items& items) const {
    Buffer b;
    put_call_header(b, id_, tag_, method);
    b.put_varint(std::ranges::size(items));
    for (const auto& x : items) {
      if constexpr (Pairs) {
        put_item(b, x.first);
        put_item(b, x.second);
      } else {
        put_item(b, x);
      }
    }
    return link().request(b);
  }
  /// The items of a reply: a count and that many items, or (pairs) key and value items.
  template <class T, bool Pairs = false>
  static std::vector<T> read_many(Reader& r) {
    const std::size_t n = r.get_count(1);
    std::vector<T> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      if constexpr (Pairs) {
        auto k = get_item<typename T::first_type>(r);
        out.emplace_back(std::move(k), get_item<typename T::second_type>(r));
      } else {
        out.push_back(get_item<T>(r));
      }
    }
    return out;
  }
  template <class T, bool Pairs = false, class... A>
  std::vector<T> call_many(std::string_view method, const A&... args) const {
    const auto reply = call(method, args...);
    Reader r(reply);
    return read_many<T, Pairs>(r);
  }
  void encode_base(Writer& w) const;
  ManagerLink& link() const;

  /// What a KeyIterator reads (a dict's keys, a set's members): the object's version (its
  /// count of insertions and removals), and the n keys after `last` (from the first if none).
  std::uint64_t version() const { return call_for<std::uint64_t>("version"); }
  template <class K>
  std::vector<K> keys_after(std::uint64_t version, const std::optional<K>& last, std::size_t n) const {
    return last ? call_many<K>("keys_after", version, std::uint64_t(n), *last)
                : call_many<K>("keys_after", version, std::uint64_t(n));
  }
  template <class, class>
  friend class KeyIterator;

 private:
  std::shared_ptr<ManagerLink> link_;
  std::uint64_t id_ = 0, tag_ = 0;
};
template <class P>
std::uint64_t proxy_tag() noexcept {
  return type_tag<P>();
}

/// A list's iterator: reads the server in chunks from its position as it goes (Python's
/// ListProxy iterates by index through __getitem__). End is std::default_sentinel.
template <class P, class T>
class ListIterator {
 public:
  using value_type = T;
  using difference_type = std::ptrdiff_t;
  using iterator_concept = std::input_iterator_tag;
  ListIterator() = default;
  ListIterator(P list, std::size_t chunk) : list_(std::move(list)), live_(true), chunk_(std::max<std::size_t>(chunk, 1)) {}
  const T& operator*() const {
    fill();
    return buf_.at(i_ - at_);
  }
  const T* operator->() const { return &**this; }
  ListIterator& operator++() {
    fill();  // past an item read, never a skipped one
    ++i_;
    return *this;
  }
  void operator++(int) { ++*this; }
  friend bool operator==(const ListIterator& it, std::default_sentinel_t) {
    if (!it.live_) return true;
    it.fill();
    return it.i_ - it.at_ >= it.buf_.size();
  }

 private:
  void fill() const {
    if (live_ && (i_ < at_ || i_ - at_ >= buf_.size())) {
      buf_ = list_.chunk(i_, chunk_);
      at_ = i_;
    }
  }
  P list_{};  // a handle: the iterator outlives the proxy it came from safely
  bool live_ = false;
  std::size_t chunk_ = default_iter_chunk, i_ = 0;
  mutable std::size_t at_ = 0;
  mutable std::vector<T> buf_;
};

/// A dict's or set's iterator: the keys, in insertion order, read in chunks as it goes.
/// It knows the object's version (its count of insertions and removals) when it began:
/// a chunk read after the object changed size throws std::runtime_error, as Python's
/// "dictionary changed size during iteration" (RuntimeError).
template <class P, class K>
class KeyIterator {
 public:
  using value_type = K;
  using difference_type = std::ptrdiff_t;
  using iterator_concept = std::input_iterator_tag;
  KeyIterator() = default;
  KeyIterator(P owner, std::uint64_t version, std::size_t chunk)
      : owner_(std::move(owner)), live_(true), version_(version), chunk_(std::max<std::size_t>(chunk, 1)) {}
  const K& operator*() const {
    fill();
    return buf_.at(pos_);
  }
  const K* operator->() const { return &**this; }
  KeyIterator& operator++() {
    fill();
    ++pos_;
    return *this;
  }
  void operator++(int) { ++*this; }
  friend bool operator==(const KeyIterator& it, std::default_sentinel_t) {
    if (!it.live_) return true;
    it.fill();
    return it.pos_ >= it.buf_.size();
  }

 private:
  // A new chunk when the last one is used up, starting after its last key; none past the end.
  void fill() const {
    if (!live_ || done_ || (started_ && pos_ < buf_.size())) return;
    std::optional<K> last;
    if (!buf_.empty()) last = buf_.back();  // a copy: a read that throws leaves the iterator where it was
    buf_ = owner_.template keys_after<K>(version_, last, chunk_);
    pos_ = 0;
    started_ = true;
    done_ = buf_.empty();
  }
  P owner_{};
  bool live_ = false;
  std::uint64_t version_ = 0;
  std::size_t chunk_ = default_iter_chunk;
  mutable std::size_t pos_ = 0;
  mutable bool started_ = false, done_ = false;
  mutable std::vector<K> buf_;
};

/// A range over a proxy that begins when begin() is called (begin() asks nothing of a
/// list's server; a dict's or set's records its version).
template <class It>
class ProxyRange {
 public:
  explicit ProxyRange(It begin) : begin_(std::move(begin)) {}
  It begin() const { return begin_; }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  It begin_;
};

// ---- sorting: the server orders items it cannot decode through a sorter of T --------
/// Orders encoded items as their decoded values' operator< orders them (stable; with
/// reverse, as Python's sort(reverse=True)). @throws what decoding throws.
using ItemSorter = void (*)(std::vector<std::string>& items, bool reverse);
bool register_item_sorter(std::uint64_t tag, ItemSorter sorter) noexcept;

template <class T>
void sort_items(std::vector<std::string>& items, bool reverse) {
  std::vector<T> values;
  values.reserve(items.size());
  for (const auto& b : items) {
    Reader r(std::span<const std::byte>(reinterpret_cast<const std::byte*>(b.data()), b.size()));
    values.push_back(decode<T>(r));
  }
  std::vector<std::size_t> order(items.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return reverse ? values[b] < values[a] : values[a] < values[b];
  });
  std::vector<std::string> sorted;
  sorted.reserve(items.size());
  for (std::size_t i : order) sorted.push_back(std::move(items[i]));
  items = std::move(sorted);
}
/// Instantiated by ListProxy<T>::sort: every process of the program (the server too)
/// then knows how to order T.
template <class T>
inline const bool item_sorter_registered = register_item_sorter(type_tag<T>(), &sort_items<T>);

}  // namespace detail

#define PAREX_DETAIL_PROXY_CODEC(Name)                                                  \
  void encode_to(detail::Writer& w) const { encode_base(w); }                           \
  static Name decode_from(detail::Reader& r) { return Name(r); }                        \
                                                                                        \
 private:                                                                               \
  explicit Name(detail::Reader& r) : ProxyBase(r, detail::proxy_tag<Name>(), #Name) {} \
  using ProxyBase::ProxyBase;                                                           \
  friend class ::parex::Manager;                                                        \
                                                                                        \
 public:

}  // namespace parex
