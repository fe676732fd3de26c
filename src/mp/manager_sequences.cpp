// src/mp/manager_sequences.cpp - a Manager server's lists and arrays (ListProxy,
// ArrayProxy): each method reads all its arguments before it changes anything, and a
// failure throws the Python-named error the client rethrows.
#include "mp/manager_objects.hpp"

#include <parex/errors.hpp>

#include <algorithm>
#include <iterator>

namespace parex::detail {

namespace {
std::size_t at_index(std::int64_t i, std::size_t n, const char* what) {
  if (i < 0) i += static_cast<std::int64_t>(n);
  if (i < 0 || static_cast<std::uint64_t>(i) >= n) throw IndexError(std::string(what) + " index out of range");
  return static_cast<std::size_t>(i);
}
// Python's clamping of a slice bound: negative from the end, then into [0, n].
std::size_t slice_bound(std::int64_t i, std::size_t n) {
  const auto sn = static_cast<std::int64_t>(n);
  if (i < 0) i = std::max<std::int64_t>(0, i + sn);
  return static_cast<std::size_t>(std::min(i, sn));
}
std::size_t find_item(const std::vector<Bytes>& v, const Bytes& b) {
  return static_cast<std::size_t>(std::find(v.begin(), v.end(), b) - v.begin());
}
}  // namespace

void call_list(Object& o, std::string_view m, Reader& a, Writer& out) {
  auto& v = o.items;
  const bool fixed = o.kind == Object::array;
  if (m == "get") {
    put_blob(out, span_of(v[at_index(get_item<std::int64_t>(a), v.size(), "list")]));
  } else if (m == "set") {
    const std::size_t i = at_index(get_item<std::int64_t>(a), v.size(), "list assignment");
    v[i] = bytes_of(get_blob(a));
  } else if (m == "size") {
    put_item<std::uint64_t>(out, v.size());
  } else if (m == "to_vector") {
    put_blobs(out, v);
  } else if (m == "chunk") {  // an iteration's next items: from a position, at most n and list_chunk_bytes
    const auto from = get_item<std::uint64_t>(a);
    const auto n = get_item<std::uint64_t>(a);
    std::size_t end = from < v.size() ? static_cast<std::size_t>(from) : v.size(), bytes = 0;
    const std::size_t begin = end;
    while (end < v.size() && end - begin < n && (end == begin || bytes + v[end].size() <= list_chunk_bytes))
      bytes += v[end++].size();
    out.put_varint(end - begin);
    for (std::size_t i = begin; i < end; ++i) put_blob(out, span_of(v[i]));
  } else if (m == "slice") {
    const std::size_t from = slice_bound(get_item<std::int64_t>(a), v.size());
    const std::size_t to = slice_bound(get_item<std::int64_t>(a), v.size());
    out.put_varint(to > from ? to - from : 0);
    for (std::size_t i = from; i < to; ++i) put_blob(out, span_of(v[i]));
  } else if (m == "contains") {
    put_item<bool>(out, find_item(v, bytes_of(get_blob(a))) != v.size());
  } else if (m == "count") {
    const Bytes b = bytes_of(get_blob(a));
    put_item<std::uint64_t>(out, static_cast<std::uint64_t>(std::count(v.begin(), v.end(), b)));
  } else if (m == "index") {
    const std::size_t i = find_item(v, bytes_of(get_blob(a)));
    if (i == v.size()) throw ValueError("list.index(x): x not in list");
    put_item<std::uint64_t>(out, i);
  } else if (fixed) {
    throw ValueError("an Array has a fixed size: no '" + std::string(m) + "'");
  } else if (m == "append") {
    v.push_back(bytes_of(get_blob(a)));
  } else if (m == "extend") {
    const std::size_t n = a.get_count(1);
    std::vector<Bytes> add;
    add.reserve(n);
    for (std::size_t i = 0; i < n; ++i) add.push_back(bytes_of(get_blob(a)));  // all or nothing
    v.insert(v.end(), std::make_move_iterator(add.begin()), std::make_move_iterator(add.end()));
  } else if (m == "insert") {
    const std::size_t i = slice_bound(get_item<std::int64_t>(a), v.size());
    v.insert(v.begin() + static_cast<std::ptrdiff_t>(i), bytes_of(get_blob(a)));
  } else if (m == "pop" || m == "del") {
    const auto i = get_item<std::int64_t>(a);
    if (v.empty() && m == "pop") throw IndexError("pop from empty list");
    const std::size_t at = at_index(i, v.size(), m == "pop" ? "pop" : "list assignment");
    if (m == "pop") put_blob(out, span_of(v[at]));
    v.erase(v.begin() + static_cast<std::ptrdiff_t>(at));
  } else if (m == "remove") {
    const std::size_t i = find_item(v, bytes_of(get_blob(a)));
    if (i == v.size()) throw ValueError("list.remove(x): x not in list");
    v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
  } else if (m == "sort") {
    const auto tag = get_item<std::uint64_t>(a);
    const auto type = get_item<std::string>(a);
    const bool reverse = get_item<bool>(a);
    std::vector<Bytes> sorted = v;  // a decoding error leaves the list as it was
    item_sorter(tag, type)(sorted, reverse);
    v = std::move(sorted);
  } else if (m == "reverse") {
    std::reverse(v.begin(), v.end());
  } else if (m == "clear") {
    v.clear();
  } else {
    throw ValueError("a list has no method '" + std::string(m) + "'");
  }
}

}  // namespace parex::detail
