// src/mp/manager_objects.cpp - the objects a Manager's server holds (see
// manager_objects.hpp): making them, dispatching a call by kind, values, namespaces,
// registered user types and the sorters of list items; lists and arrays are in
// manager_sequences.cpp, dicts and sets in manager_mappings.cpp. Each method reads its
// arguments as blobs and writes its result as blobs; a failure throws the Python-named
// error the client rethrows.
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

namespace {
std::mutex sorters_mutex;
std::unordered_map<std::uint64_t, ItemSorter>& sorters() {
  static auto* s = new std::unordered_map<std::uint64_t, ItemSorter>;  // leaked: static destruction
  return *s;
}
}  // namespace

bool register_item_sorter(std::uint64_t tag, ItemSorter sorter) noexcept {
  try {
    std::lock_guard lock(sorters_mutex);
    sorters()[tag] = sorter;
  } catch (...) {  // out of memory at static initialization: sort() then says so
  }
  return true;
}

ItemSorter item_sorter(std::uint64_t tag, std::string_view type) {
  std::lock_guard lock(sorters_mutex);
  auto it = sorters().find(tag);
  if (it == sorters().end())
    throw UnregisteredFunction("the manager's program cannot sort " + std::string(type) +
                               ": it never compiled ListProxy<" + std::string(type) + ">::sort");
  return it->second;
}

Object::~Object() {
  if (object) type->destroy(object);
}

namespace {
// Python's Namespace.__repr__: "name=repr" of each attribute not starting with '_',
// sorted as strings, in Namespace(...).
std::string namespace_repr(const Object& o) {
  std::vector<std::string> parts;
  for (const auto& [name, at] : o.attrs)
    if (name.empty() || name[0] != '_') parts.push_back(name + "=" + at.repr);
  std::sort(parts.begin(), parts.end());
  std::string r = "Namespace(";
  for (std::size_t i = 0; i < parts.size(); ++i) r += (i ? ", " : "") + parts[i];
  return r + ")";
}

void call_namespace(Object& o, std::string_view m, Reader& a, Writer& out) {
  if (m == "repr") return put_item<std::string>(out, namespace_repr(o));
  const std::string name = get_item<std::string>(a);
  auto it = o.attrs.find(name);
  auto missing = [&] { return AttributeError("the Namespace has no attribute '" + name + "'"); };
  if (m == "set") {
    Attribute at;
    at.tag = get_item<std::uint64_t>(a);
    at.bytes = bytes_of(get_blob(a));
    at.repr = get_item<std::string>(a);
    o.attrs[name] = std::move(at);
  } else if (m == "get") {
    if (it == o.attrs.end()) throw missing();
    if (get_item<std::uint64_t>(a) != it->second.tag)
      throw SharedObjectError("the Namespace attribute '" + name + "' was set with another type");
    put_blob(out, span_of(it->second.bytes));
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
  } else if (kind == "set") {
    o = std::make_shared<Object>(Object::set, tag);
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
    case Object::set: return call_set(o, method, r, out);
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
