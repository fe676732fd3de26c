// src/mp/manager_mappings.cpp - a Manager server's dicts and sets (DictProxy, SetProxy):
// pairs in insertion order with an index by key encoding (a set's values are empty), and
// a version that counts insertions and removals, which iterations check (Python's
// "changed size during iteration" RuntimeError, std::runtime_error here). Each method
// reads all its arguments before it changes anything.
#include "mp/manager_objects.hpp"

#include <parex/errors.hpp>

#include <stdexcept>
#include <unordered_set>

namespace parex::detail {

namespace {
using Pairs = std::list<std::pair<Bytes, Bytes>>;

Pairs::iterator find(Object& o, const Bytes& k) {
  auto it = o.index.find(k);
  return it == o.index.end() ? o.pairs.end() : it->second;
}
// Sets k to v; true if k is new.
bool put(Object& o, Bytes k, Bytes v) {
  if (auto it = o.index.find(k); it != o.index.end()) {
    it->second->second = std::move(v);
    return false;
  }
  o.pairs.emplace_back(k, std::move(v));
  o.index.emplace(std::move(k), std::prev(o.pairs.end()));
  ++o.version;
  return true;
}
void erase(Object& o, Pairs::iterator it) {
  o.index.erase(it->first);
  o.pairs.erase(it);
  ++o.version;
}
void clear(Object& o) {
  if (o.pairs.empty()) return;  // no change of size: iterations go on, as Python's
  o.pairs.clear();
  o.index.clear();
  ++o.version;
}

// An iteration's next keys: after `last` (none: from the start), at most n and
// list_chunk_bytes; std::runtime_error if the object changed size since it began.
void keys_after(Object& o, Reader& a, Writer& out, const char* what) {
  const auto version = get_item<std::uint64_t>(a);
  const auto n = get_item<std::uint64_t>(a);
  std::optional<Bytes> last;
  if (a.remaining() > 0) last = bytes_of(get_blob(a));
  if (version != o.version) throw std::runtime_error(std::string(what) + " changed size during iteration");
  auto it = o.pairs.begin();
  if (last) {
    it = find(o, *last);
    if (it == o.pairs.end()) throw KeyError(std::string("the iteration's last key is not in the ") + what);
    ++it;
  }
  std::vector<Bytes> keys;
  std::size_t bytes = 0;
  for (; it != o.pairs.end() && keys.size() < n && (keys.empty() || bytes + it->first.size() <= list_chunk_bytes); ++it) {
    bytes += it->first.size();
    keys.push_back(it->first);
  }
  put_blobs(out, keys);
}

std::unordered_set<Bytes> read_members(Reader& a) {
  const std::size_t n = a.get_count(1);
  std::unordered_set<Bytes> s;
  for (std::size_t i = 0; i < n; ++i) s.insert(bytes_of(get_blob(a)));
  return s;
}
}  // namespace

void call_dict(Object& o, std::string_view m, Reader& a, Writer& out) {
  auto missing = [] { return KeyError("the key is not in the manager dict"); };
  if (m == "get") {
    auto it = find(o, bytes_of(get_blob(a)));
    out.put_varint(it == o.pairs.end() ? 0 : 1);
    if (it != o.pairs.end()) put_blob(out, span_of(it->second));
  } else if (m == "at") {
    auto it = find(o, bytes_of(get_blob(a)));
    if (it == o.pairs.end()) throw missing();
    put_blob(out, span_of(it->second));
  } else if (m == "set") {
    Bytes k = bytes_of(get_blob(a));
    put(o, std::move(k), bytes_of(get_blob(a)));
  } else if (m == "contains") {
    put_item<bool>(out, find(o, bytes_of(get_blob(a))) != o.pairs.end());
  } else if (m == "pop" || m == "del" || m == "pop_or") {
    auto it = find(o, bytes_of(get_blob(a)));
    if (m == "pop_or") out.put_varint(it == o.pairs.end() ? 0 : 1);
    if (it == o.pairs.end()) {
      if (m == "pop_or") return;
      throw missing();
    }
    if (m != "del") put_blob(out, span_of(it->second));
    erase(o, it);
  } else if (m == "popitem") {  // the last inserted, as Python's (LIFO)
    if (o.pairs.empty()) throw KeyError("popitem(): dictionary is empty");
    auto it = std::prev(o.pairs.end());
    out.put_varint(1);
    put_blob(out, span_of(it->first));
    put_blob(out, span_of(it->second));
    erase(o, it);
  } else if (m == "setdefault") {
    Bytes k = bytes_of(get_blob(a));
    Bytes v = bytes_of(get_blob(a));
    auto it = find(o, k);
    put_blob(out, span_of(it == o.pairs.end() ? v : it->second));
    if (it == o.pairs.end()) put(o, std::move(k), std::move(v));
  } else if (m == "update") {
    const std::size_t n = a.get_count(2);
    std::vector<std::pair<Bytes, Bytes>> add;
    for (std::size_t i = 0; i < n; ++i) {
      Bytes k = bytes_of(get_blob(a));
      add.emplace_back(std::move(k), bytes_of(get_blob(a)));
    }
    for (auto& [k, v] : add) put(o, std::move(k), std::move(v));
  } else if (m == "keys" || m == "values" || m == "items") {
    out.put_varint(o.pairs.size());
    for (const auto& [k, v] : o.pairs) {
      if (m != "values") put_blob(out, span_of(k));
      if (m != "keys") put_blob(out, span_of(v));
    }
  } else if (m == "size") {
    put_item<std::uint64_t>(out, o.pairs.size());
  } else if (m == "version") {
    put_item<std::uint64_t>(out, o.version);
  } else if (m == "keys_after") {
    keys_after(o, a, out, "dictionary");
  } else if (m == "clear") {
    clear(o);
  } else {
    throw ValueError("a dict has no method '" + std::string(m) + "'");
  }
}

void call_set(Object& o, std::string_view m, Reader& a, Writer& out) {
  auto members = [&] {
    std::vector<Bytes> v;
    v.reserve(o.pairs.size());
    for (const auto& p : o.pairs) v.push_back(p.first);
    return v;
  };
  auto has = [&](const Bytes& k) { return o.index.count(k) != 0; };
  if (m == "add") {
    put(o, bytes_of(get_blob(a)), {});
  } else if (m == "discard" || m == "remove") {
    auto it = find(o, bytes_of(get_blob(a)));
    if (it == o.pairs.end()) {
      if (m == "remove") throw KeyError("the item is not in the manager set");
      return;
    }
    erase(o, it);
  } else if (m == "pop") {  // the oldest member
    if (o.pairs.empty()) throw KeyError("pop from an empty set");
    put_blob(out, span_of(o.pairs.front().first));
    erase(o, o.pairs.begin());
  } else if (m == "contains") {
    put_item<bool>(out, has(bytes_of(get_blob(a))));
  } else if (m == "size") {
    put_item<std::uint64_t>(out, o.pairs.size());
  } else if (m == "members") {
    put_blobs(out, members());
  } else if (m == "version") {
    put_item<std::uint64_t>(out, o.version);
  } else if (m == "keys_after") {
    keys_after(o, a, out, "Set");
  } else if (m == "clear") {
    clear(o);
  } else if (m == "update") {
    const std::size_t n = a.get_count(1);
    std::vector<Bytes> add;
    for (std::size_t i = 0; i < n; ++i) add.push_back(bytes_of(get_blob(a)));
    for (auto& k : add) put(o, std::move(k), {});
  } else {
    static const std::unordered_set<std::string_view> with_other{
        "intersection_update", "difference_update", "symmetric_difference_update", "union", "intersection",
        "difference", "symmetric_difference", "issubset", "lt", "issuperset", "gt", "isdisjoint", "eq"};
    if (!with_other.count(m)) throw ValueError("a set has no method '" + std::string(m) + "'");
    // The rest take another collection's members, read whole first.
    const std::unordered_set<Bytes> other = read_members(a);
    auto in_other = [&](const Bytes& k) { return other.count(k) != 0; };
    std::size_t common = 0;
    for (const auto& p : o.pairs) common += in_other(p.first);
    if (m == "intersection_update" || m == "difference_update") {
      const bool keep_common = m == "intersection_update";
      for (auto it = o.pairs.begin(); it != o.pairs.end();) {
        auto next = std::next(it);
        if (in_other(it->first) != keep_common) erase(o, it);
        it = next;
      }
    } else if (m == "symmetric_difference_update") {
      for (const auto& k : other) {
        if (auto it = find(o, k); it != o.pairs.end()) erase(o, it);
        else put(o, k, {});
      }
    } else if (m == "union" || m == "intersection" || m == "difference" || m == "symmetric_difference") {
      std::vector<Bytes> r;
      for (const auto& p : o.pairs)
        if (m == "union" || (m == "intersection") == in_other(p.first)) r.push_back(p.first);
      if (m == "union" || m == "symmetric_difference")
        for (const auto& k : other)
          if (!has(k)) r.push_back(k);
      put_blobs(out, r);
    } else if (m == "issubset" || m == "lt") {  // every member in other (lt: and other has more)
      put_item<bool>(out, common == o.pairs.size() && (m == "issubset" || other.size() > common));
    } else if (m == "issuperset" || m == "gt") {
      put_item<bool>(out, common == other.size() && (m == "issuperset" || o.pairs.size() > common));
    } else if (m == "isdisjoint") {
      put_item<bool>(out, common == 0);
    } else {  // eq
      put_item<bool>(out, common == o.pairs.size() && common == other.size());
    }
  }
}

}  // namespace parex::detail
