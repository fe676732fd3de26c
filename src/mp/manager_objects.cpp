// src/mp/manager_objects.cpp - the objects a Manager's server holds and their methods
// (see manager_objects.hpp): each method reads its arguments as blobs and writes its
// result as blobs; a failure throws the Python-named error the client rethrows.
#include "mp/manager_objects.hpp"

#include <parex/errors.hpp>
#include <parex/registry.hpp>

#include <algorithm>
#include <iterator>

namespace parex::detail {

struct ManagedType {
  void* (*create)();
  void (*destroy)(void*);
  std::unordered_map<std::string, ManagedMethod> methods;
};

namespace {
std::unordered_map<std::string, ManagedType>& managed_types() {
  static auto* t = new std::unordered_map<std::string, ManagedType>;
  return *t;
}
}  // namespace

bool register_managed_type(const char* type, void* (*create)(), void (*destroy)(void*),
                           std::initializer_list<ManagedMethodEntry> methods) noexcept {
  auto& t = managed_types()[type];
  t.create = create;
  t.destroy = destroy;
  for (const auto& m : methods) t.methods[m.name] = m.fn;
  return true;
}

Object::~Object() {
  if (object) type->destroy(object);
}

namespace {
std::size_t at_index(std::int64_t i, std::size_t n, const char* what) {
  if (i < 0) i += static_cast<std::int64_t>(n);
  if (i < 0 || static_cast<std::uint64_t>(i) >= n) throw IndexError(std::string(what) + " index out of range");
  return static_cast<std::size_t>(i);
}
void put_blobs(Writer& w, const std::vector<Bytes>& v) {
  w.put_varint(v.size());
  for (const auto& b : v) put_blob(w, span_of(b));
}
std::size_t find_item(const Object& o, const Bytes& b) {
  for (std::size_t i = 0; i < o.items.size(); ++i)
    if (o.items[i] == b) return i;
  return o.items.size();
}

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
    std::int64_t i = get_item<std::int64_t>(a);
    const auto n = static_cast<std::int64_t>(v.size());
    if (i < 0) i = std::max<std::int64_t>(0, i + n);
    v.insert(v.begin() + std::min(i, n), bytes_of(get_blob(a)));
  } else if (m == "pop") {
    if (v.empty()) throw IndexError("pop from empty list");
    const std::size_t i = at_index(get_item<std::int64_t>(a), v.size(), "pop");
    put_blob(out, span_of(v[i]));
    v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
  } else if (m == "remove" || m == "index") {
    const std::size_t i = find_item(o, bytes_of(get_blob(a)));
    if (i == v.size()) throw ValueError(std::string("list.") + std::string(m) + "(x): x not in list");
    if (m == "remove") v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
    else put_item<std::uint64_t>(out, i);
  } else if (m == "count") {
    const Bytes b = bytes_of(get_blob(a));
    put_item<std::uint64_t>(out, static_cast<std::uint64_t>(std::count(v.begin(), v.end(), b)));
  } else if (m == "clear") {
    v.clear();
  } else {
    throw ValueError("a list has no method '" + std::string(m) + "'");
  }
}

void dict_set(Object& o, Bytes k, Bytes v) {
  auto it = o.index.find(k);
  if (it != o.index.end()) {
    it->second->second = std::move(v);
    return;
  }
  o.pairs.emplace_back(k, std::move(v));
  o.index.emplace(std::move(k), std::prev(o.pairs.end()));
}

void call_dict(Object& o, std::string_view m, Reader& a, Writer& out) {
  auto found = [&](const Bytes& k) -> std::list<std::pair<Bytes, Bytes>>::iterator {
    auto it = o.index.find(k);
    return it == o.index.end() ? o.pairs.end() : it->second;
  };
  auto missing = [] { return KeyError("the key is not in the manager dict"); };
  if (m == "get") {
    auto it = found(bytes_of(get_blob(a)));
    out.put_varint(it == o.pairs.end() ? 0 : 1);
    if (it != o.pairs.end()) put_blob(out, span_of(it->second));
  } else if (m == "at") {
    auto it = found(bytes_of(get_blob(a)));
    if (it == o.pairs.end()) throw missing();
    put_blob(out, span_of(it->second));
  } else if (m == "set") {
    Bytes k = bytes_of(get_blob(a));
    dict_set(o, std::move(k), bytes_of(get_blob(a)));
  } else if (m == "contains") {
    put_item<bool>(out, found(bytes_of(get_blob(a))) != o.pairs.end());
  } else if (m == "pop") {
    const Bytes k = bytes_of(get_blob(a));
    auto it = found(k);
    if (it == o.pairs.end()) throw missing();
    put_blob(out, span_of(it->second));
    o.index.erase(k);
    o.pairs.erase(it);
  } else if (m == "setdefault") {
    Bytes k = bytes_of(get_blob(a));
    Bytes v = bytes_of(get_blob(a));
    auto it = found(k);
    if (it == o.pairs.end()) {
      put_blob(out, span_of(v));
      dict_set(o, std::move(k), std::move(v));
    } else {
      put_blob(out, span_of(it->second));
    }
  } else if (m == "update") {
    const std::size_t n = a.get_count(2);
    std::vector<std::pair<Bytes, Bytes>> add;
    for (std::size_t i = 0; i < n; ++i) {
      Bytes k = bytes_of(get_blob(a));
      add.emplace_back(std::move(k), bytes_of(get_blob(a)));
    }
    for (auto& [k, v] : add) dict_set(o, std::move(k), std::move(v));
  } else if (m == "keys" || m == "values" || m == "items") {
    out.put_varint(o.pairs.size());
    for (const auto& [k, v] : o.pairs) {
      if (m != "values") put_blob(out, span_of(k));
      if (m != "keys") put_blob(out, span_of(v));
    }
  } else if (m == "size") {
    put_item<std::uint64_t>(out, o.pairs.size());
  } else if (m == "clear") {
    o.pairs.clear();
    o.index.clear();
  } else {
    throw ValueError("a dict has no method '" + std::string(m) + "'");
  }
}

void call_namespace(Object& o, std::string_view m, Reader& a, Writer& out) {
  const std::string name = get_item<std::string>(a);
  auto it = o.attrs.find(name);
  auto missing = [&] { return AttributeError("the Namespace has no attribute '" + name + "'"); };
  if (m == "set") {
    const auto tag = get_item<std::uint64_t>(a);
    o.attrs[name] = {tag, bytes_of(get_blob(a))};
  } else if (m == "get") {
    if (it == o.attrs.end()) throw missing();
    if (get_item<std::uint64_t>(a) != it->second.first)
      throw SharedObjectError("the Namespace attribute '" + name + "' was set with another type");
    put_blob(out, span_of(it->second.second));
  } else if (m == "has") {
    put_item<bool>(out, it != o.attrs.end());
  } else if (m == "del") {
    if (it == o.attrs.end()) throw missing();
    o.attrs.erase(it);
  } else {
    throw ValueError("a Namespace has no method '" + std::string(m) + "'");
  }
}

}  // namespace

std::shared_ptr<Object> make_object(std::string_view kind, std::uint64_t tag, Reader& r) {
  std::shared_ptr<Object> o;
  if (kind == "list") {
    o = std::make_shared<Object>(Object::list, tag);
  } else if (kind == "dict") {
    o = std::make_shared<Object>(Object::dict, tag);
  } else if (kind == "namespace") {
    o = std::make_shared<Object>(Object::ns, tag);
  } else if (kind == "value") {
    o = std::make_shared<Object>(Object::value, tag);
    o->one = bytes_of(get_blob(r));
  } else if (kind == "array") {
    o = std::make_shared<Object>(Object::array, tag);
    const std::size_t n = r.get_count(1);
    for (std::size_t i = 0; i < n; ++i) o->items.push_back(bytes_of(get_blob(r)));
  } else {
    auto t = managed_types().find(std::string(kind));
    if (t == managed_types().end())
      throw UnregisteredFunction("type '" + std::string(kind) +
                                 "' is not registered with PAREX_MANAGER_REGISTER in the manager's program");
    o = std::make_shared<Object>(Object::custom, tag);
    o->type = &t->second;
    o->object = t->second.create();
  }
  return o;
}

void call_object(Object& o, std::string_view method, Reader& r, Writer& out) {
  switch (o.kind) {
    case Object::list:
    case Object::array: return call_list(o, method, r, out);
    case Object::dict: return call_dict(o, method, r, out);
    case Object::ns: return call_namespace(o, method, r, out);
    case Object::value:
      if (method == "get") return put_blob(out, span_of(o.one));
      if (method == "set") return void(o.one = bytes_of(get_blob(r)));
      throw ValueError("a Value has no method '" + std::string(method) + "'");
    case Object::custom: {
      auto m = o.type->methods.find(std::string(method));
      if (m == o.type->methods.end())
        throw UnregisteredFunction("'" + std::string(method) + "' is not registered with PAREX_MANAGER_REGISTER");
      return m->second(o.object, r, out);
    }
  }
}

}  // namespace parex::detail
