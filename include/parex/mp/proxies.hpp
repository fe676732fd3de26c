// parex/mp/proxies.hpp - the proxies of a Manager's containers: ListProxy, DictProxy,
// SetProxy, ValueProxy, ArrayProxy, NamespaceProxy (Python's multiprocessing.managers
// ListProxy, DictProxy, SetProxy, Value, Array, Namespace). Include <parex/mp/manager.hpp>,
// which includes this.
//
// Each call is one request, atomic on the server. Items are compared as encodings
// (manager.hpp), so contains/count/index/remove, dict keys and set members match equal
// values of one type. Iterating (range-for) reads the server as it goes, a chunk at a
// time (detail::default_iter_chunk items; iterate(n) picks n), never the whole object:
//  - a ListProxy iterates by position, as Python's does through __getitem__: a chunk is
//    read when the iteration reaches it, so changes to items not yet read are seen, an
//    item inserted or removed before the position shifts the rest (one may be seen twice
//    or skipped), and the iteration ends at the first position past the end when read;
//  - a DictProxy (its keys, as Python's `for k in d`) or SetProxy iterates in insertion
//    order; an insertion or removal after begin() makes the next chunk read throw
//    std::runtime_error (Python's RuntimeError: "changed size during iteration").
// operator<< prints what Python's str() prints for the proxy: [1, 2], {'a': 1}, {1, 2},
// Namespace(name='Bob') (items printed as Python's repr prints them: detail/mp/repr.hpp).
#pragma once

#include <parex/detail/mp/proxy_base.hpp>
#include <parex/detail/mp/repr.hpp>

#include <initializer_list>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace parex {

/// Python's ListProxy. Indices may be negative (from the end), as in Python.
template <class T>
class ListProxy : public detail::ProxyBase {
 public:
  PAREX_DETAIL_PROXY_CODEC(ListProxy)
  using value_type = T;
  using iterator = detail::ListIterator<ListProxy, T>;
  ListProxy() = default;
  void append(const T& v) const { call("append", v); }
  template <std::ranges::input_range R>
  void extend(R&& values) const {
    std::vector<T> v(std::ranges::begin(values), std::ranges::end(values));
    call_items("extend", v);
  }
  void insert(std::ptrdiff_t i, const T& v) const { call("insert", std::int64_t(i), v); }
  /// @throws IndexError (empty, or i out of range).
  T pop(std::ptrdiff_t i = -1) const { return call_for<T>("pop", std::int64_t(i)); }
  /// Removes the first equal item. @throws ValueError if none.
  void remove(const T& v) const { call("remove", v); }
  /// @throws ValueError if no item is equal.
  std::size_t index(const T& v) const { return call_for<std::uint64_t>("index", v); }
  std::size_t count(const T& v) const { return call_for<std::uint64_t>("count", v); }
  bool contains(const T& v) const { return call_for<bool>("contains", v); }
  T get(std::ptrdiff_t i) const { return call_for<T>("get", std::int64_t(i)); }
  T operator[](std::ptrdiff_t i) const { return get(i); }
  void set(std::ptrdiff_t i, const T& v) const { call("set", std::int64_t(i), v); }
  /// Python's `del l[i]`. @throws IndexError.
  void del(std::ptrdiff_t i) const { call("del", std::int64_t(i)); }
  /// Python's l[start:stop] (clamped as Python clamps; negative from the end).
  std::vector<T> slice(std::ptrdiff_t start, std::ptrdiff_t stop) const {
    return call_many<T>("slice", std::int64_t(start), std::int64_t(stop));
  }
  /// Sorts in place by T's operator< (stable; reverse as Python's sort(reverse=True)),
  /// on the server, atomically. @throws UnregisteredFunction if the server's program
  /// never compiled a sort of T (a server started by another program).
  void sort(bool reverse = false) const {
    static_cast<void>(detail::item_sorter_registered<T>);
    call("sort", detail::type_tag<T>(), std::string(detail::type_name<T>()), reverse);
  }
  void reverse() const { call("reverse"); }
  std::size_t size() const { return call_for<std::uint64_t>("size"); }
  std::size_t len() const { return size(); }
  void clear() const { call("clear"); }
  std::vector<T> to_vector() const { return call_many<T>("to_vector"); }

  iterator begin() const { return iterator(*this, detail::default_iter_chunk); }
  std::default_sentinel_t end() const noexcept { return {}; }
  /// Iterates reading `chunk` items per request (1: exactly Python's item-by-item reads).
  detail::ProxyRange<iterator> iterate(std::size_t chunk) const { return detail::ProxyRange(iterator(*this, chunk)); }

  bool operator==(const std::vector<T>& v) const { return to_vector() == v; }
  bool operator==(const ListProxy& o) const { return to_vector() == o.to_vector(); }
  friend std::ostream& operator<<(std::ostream& os, const ListProxy& l) {
    detail::py_repr_items(os, l.to_vector(), "[", "]");
    return os;
  }

 private:
  template <class, class>
  friend class detail::ListIterator;
  std::vector<T> chunk(std::size_t from, std::size_t n) const {
    return call_many<T>("chunk", std::uint64_t(from), std::uint64_t(n));
  }
};

/// Python's DictProxy (keys kept in insertion order, as a dict's). Iterating yields the
/// keys, as Python's `for k in d`; items() gives the pairs.
template <class K, class V>
class DictProxy : public detail::ProxyBase {
 public:
  PAREX_DETAIL_PROXY_CODEC(DictProxy)
  using iterator = detail::KeyIterator<DictProxy, K>;
  DictProxy() = default;
  /// Python's dict.fromkeys(keys, value), made in m's server.
  template <std::ranges::input_range R>
  static DictProxy fromkeys(Manager& m, R&& keys, const V& value = V{});
  std::optional<V> get(const K& k) const {
    auto v = call_many<V>("get", k);  // none or one
    if (v.empty()) return std::nullopt;
    return std::move(v.front());
  }
  /// The value at k, or `otherwise` (Python's get(k, default)).
  V get(const K& k, const V& otherwise) const { return get(k).value_or(otherwise); }
  /// @throws KeyError if absent.
  V at(const K& k) const { return call_for<V>("at", k); }
  V operator[](const K& k) const { return at(k); }
  void set(const K& k, const V& v) const { call("set", k, v); }
  bool contains(const K& k) const { return call_for<bool>("contains", k); }
  /// Removes and returns. @throws KeyError if absent.
  V pop(const K& k) const { return call_for<V>("pop", k); }
  /// Removes and returns k's value, or `otherwise` if absent.
  V pop(const K& k, const V& otherwise) const {
    auto v = call_many<V>("pop_or", k);
    return v.empty() ? otherwise : std::move(v.front());
  }
  /// Removes and returns the last inserted pair. @throws KeyError if empty.
  std::pair<K, V> popitem() const {
    auto v = call_many<std::pair<K, V>, true>("popitem");
    return std::move(v.at(0));
  }
  /// Python's `del d[k]`. @throws KeyError if absent.
  void del(const K& k) const { call("del", k); }
  /// The value at k, first set to v if absent.
  V setdefault(const K& k, const V& v = V{}) const { return call_for<V>("setdefault", k, v); }
  template <std::ranges::input_range R>
  void update(R&& pairs) const {
    std::vector<std::pair<K, V>> v;
    for (auto&& [k, x] : pairs) v.emplace_back(k, x);
    call_items<true>("update", v);
  }
  void update(std::initializer_list<std::pair<const K, V>> pairs) const { update(std::vector<std::pair<K, V>>(pairs.begin(), pairs.end())); }
  std::vector<K> keys() const { return call_many<K>("keys"); }
  std::vector<V> values() const { return call_many<V>("values"); }
  std::vector<std::pair<K, V>> items() const { return call_many<std::pair<K, V>, true>("items"); }
  std::size_t size() const { return call_for<std::uint64_t>("size"); }
  std::size_t len() const { return size(); }
  void clear() const { call("clear"); }
  std::map<K, V> to_map() const {
    auto it = items();
    return std::map<K, V>(std::make_move_iterator(it.begin()), std::make_move_iterator(it.end()));
  }
  /// Python's d.copy(): a plain dict of the contents.
  std::map<K, V> copy() const { return to_map(); }

  iterator begin() const { return iterator(*this, version(), detail::default_iter_chunk); }
  std::default_sentinel_t end() const noexcept { return {}; }
  detail::ProxyRange<iterator> iterate(std::size_t chunk) const { return detail::ProxyRange(iterator(*this, version(), chunk)); }

  bool operator==(const std::map<K, V>& m) const { return to_map() == m; }
  bool operator==(const DictProxy& o) const { return to_map() == o.to_map(); }
  friend std::ostream& operator<<(std::ostream& os, const DictProxy& d) {
    os << '{';
    bool first = true;
    for (const auto& [k, v] : d.items()) {
      os << (first ? "" : ", ");
      first = false;
      detail::py_repr(os, k);
      os << ": ";
      detail::py_repr(os, v);
    }
    return os << '}';
  }
};

/// Python's SetProxy (3.14): members kept in insertion order. The operations that make
/// a new set (union_, intersection, difference, symmetric_difference, |, &, -, ^) return
/// a std::set<T> (as Python's return a plain set); the *_update ones and |=, &=, -=, ^=
/// change the server's set. `union` is a C++ keyword: union_.
template <class T>
class SetProxy : public detail::ProxyBase {
 public:
  PAREX_DETAIL_PROXY_CODEC(SetProxy)
  using value_type = T;
  using iterator = detail::KeyIterator<SetProxy, T>;
  SetProxy() = default;
  void add(const T& v) const { call("add", v); }
  void discard(const T& v) const { call("discard", v); }
  /// @throws KeyError if absent.
  void remove(const T& v) const { call("remove", v); }
  /// Removes and returns a member (the oldest). @throws KeyError if empty.
  T pop() const { return call_for<T>("pop"); }
  void clear() const { call("clear"); }
  bool contains(const T& v) const { return call_for<bool>("contains", v); }
  std::size_t size() const { return call_for<std::uint64_t>("size"); }
  std::size_t len() const { return size(); }
  std::vector<T> to_vector() const { return call_many<T>("members"); }
  std::set<T> to_set() const {
    auto v = to_vector();
    return std::set<T>(std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
  }
  std::set<T> copy() const { return to_set(); }

  template <class R>
  void update(const R& r) const { with_items("update", r); }
  template <class R>
  void intersection_update(const R& r) const { with_items("intersection_update", r); }
  template <class R>
  void difference_update(const R& r) const { with_items("difference_update", r); }
  template <class R>
  void symmetric_difference_update(const R& r) const { with_items("symmetric_difference_update", r); }
  template <class R>
  std::set<T> union_(const R& r) const { return as_set(with_items("union", r)); }
  template <class R>
  std::set<T> intersection(const R& r) const { return as_set(with_items("intersection", r)); }
  template <class R>
  std::set<T> difference(const R& r) const { return as_set(with_items("difference", r)); }
  template <class R>
  std::set<T> symmetric_difference(const R& r) const { return as_set(with_items("symmetric_difference", r)); }
  template <class R>
  bool issubset(const R& r) const { return as_bool(with_items("issubset", r)); }
  template <class R>
  bool issuperset(const R& r) const { return as_bool(with_items("issuperset", r)); }
  template <class R>
  bool isdisjoint(const R& r) const { return as_bool(with_items("isdisjoint", r)); }

  template <class R>
  std::set<T> operator|(const R& r) const { return union_(r); }
  template <class R>
  std::set<T> operator&(const R& r) const { return intersection(r); }
  template <class R>
  std::set<T> operator-(const R& r) const { return difference(r); }
  template <class R>
  std::set<T> operator^(const R& r) const { return symmetric_difference(r); }
  template <class R>
  const SetProxy& operator|=(const R& r) const { return update(r), *this; }
  template <class R>
  const SetProxy& operator&=(const R& r) const { return intersection_update(r), *this; }
  template <class R>
  const SetProxy& operator-=(const R& r) const { return difference_update(r), *this; }
  template <class R>
  const SetProxy& operator^=(const R& r) const { return symmetric_difference_update(r), *this; }
  /// Python's <=, <, >=, > on sets: subset, proper subset, superset, proper superset.
  template <class R>
  bool operator<=(const R& r) const { return issubset(r); }
  template <class R>
  bool operator>=(const R& r) const { return issuperset(r); }
  template <class R>
  bool operator<(const R& r) const { return as_bool(with_items("lt", r)); }
  template <class R>
  bool operator>(const R& r) const { return as_bool(with_items("gt", r)); }
  bool operator==(const SetProxy& o) const { return as_bool(with_items("eq", o)); }
  bool operator==(const std::set<T>& s) const { return as_bool(with_items("eq", s)); }

  iterator begin() const { return iterator(*this, version(), detail::default_iter_chunk); }
  std::default_sentinel_t end() const noexcept { return {}; }
  detail::ProxyRange<iterator> iterate(std::size_t chunk) const { return detail::ProxyRange(iterator(*this, version(), chunk)); }

  friend std::ostream& operator<<(std::ostream& os, const SetProxy& s) {
    const auto v = s.to_vector();
    if (v.empty()) return os << "set()";
    detail::py_repr_items(os, v, "{", "}");
    return os;
  }

 private:
  // Another set proxy's members are read first (one request), then sent with the call.
  template <class R>
  std::vector<std::byte> with_items(std::string_view method, const R& r) const {
    if constexpr (std::is_same_v<R, SetProxy>) {
      return call_items(method, r.to_vector());
    } else {
      std::vector<T> v(std::ranges::begin(r), std::ranges::end(r));
      return call_items(method, v);
    }
  }
  static std::set<T> as_set(const std::vector<std::byte>& reply) {
    detail::Reader r(reply);
    auto v = read_many<T>(r);
    return std::set<T>(std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
  }
  static bool as_bool(const std::vector<std::byte>& reply) {
    detail::Reader r(reply);
    return detail::get_item<bool>(r);
  }
};

/// Python's manager Value: get() and set(v), each one atomic request.
template <class T>
class ValueProxy : public detail::ProxyBase {
 public:
  PAREX_DETAIL_PROXY_CODEC(ValueProxy)
  ValueProxy() = default;
  T get() const { return call_for<T>("get"); }
  void set(const T& v) const { call("set", v); }
  friend std::ostream& operator<<(std::ostream& os, const ValueProxy& v) {
    os << "Value(";
    detail::py_repr(os, v.get());
    return os << ')';
  }
};

/// Python's manager Array: fixed size; get(i), set(i, v), size(), to_vector(), iteration.
template <class T>
class ArrayProxy : public detail::ProxyBase {
 public:
  PAREX_DETAIL_PROXY_CODEC(ArrayProxy)
  using iterator = detail::ListIterator<ArrayProxy, T>;
  ArrayProxy() = default;
  T get(std::ptrdiff_t i) const { return call_for<T>("get", std::int64_t(i)); }
  T operator[](std::ptrdiff_t i) const { return get(i); }
  void set(std::ptrdiff_t i, const T& v) const { call("set", std::int64_t(i), v); }
  std::size_t size() const { return call_for<std::uint64_t>("size"); }
  std::size_t len() const { return size(); }
  std::vector<T> to_vector() const { return call_many<T>("to_vector"); }
  iterator begin() const { return iterator(*this, detail::default_iter_chunk); }
  std::default_sentinel_t end() const noexcept { return {}; }
  bool operator==(const std::vector<T>& v) const { return to_vector() == v; }
  friend std::ostream& operator<<(std::ostream& os, const ArrayProxy& a) {
    detail::py_repr_items(os, a.to_vector(), "[", "]");
    return os;
  }

 private:
  template <class, class>
  friend class detail::ListIterator;
  std::vector<T> chunk(std::size_t from, std::size_t n) const {
    return call_many<T>("chunk", std::uint64_t(from), std::uint64_t(n));
  }
};

/// Python's Namespace: named attributes of any serializable type. operator<< prints
/// Python's repr, Namespace(a=1, name='Bob'): sorted, names starting with '_' left out,
/// each value as written when set (Python's repr of it: detail/mp/repr.hpp).
class NamespaceProxy : public detail::ProxyBase {
 public:
  PAREX_DETAIL_PROXY_CODEC(NamespaceProxy)
  NamespaceProxy() = default;
  template <class T>
  void set(std::string_view name, const T& v) const {
    std::ostringstream repr;
    detail::py_repr(repr, v);
    call("set", std::string(name), detail::type_tag<T>(), v, repr.str());
  }
  /// @throws AttributeError if never set; SharedObjectError if set with another type.
  template <class T>
  T get(std::string_view name) const {
    return call_for<T>("get", std::string(name), detail::type_tag<T>());
  }
  bool has(std::string_view name) const { return call_for<bool>("has", std::string(name)); }
  /// @throws AttributeError if absent.
  void del(std::string_view name) const { call("del", std::string(name)); }
  friend std::ostream& operator<<(std::ostream& os, const NamespaceProxy& n) {
    return os << n.call_for<std::string>("repr");
  }
};

}  // namespace parex
