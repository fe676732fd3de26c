// src/mp/manager_objects.hpp - what a Manager's server holds: lists, arrays, dicts,
// values, namespaces and objects of registered user types, and their methods. Items are
// the client's encoded bytes: the server never decodes a user's item (manager_link.hpp).
// Who includes this: manager_server.cpp only. An Object is used under its own mutex.
#pragma once

#include <parex/detail/mp/manager_link.hpp>

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace parex::detail {

using Bytes = std::string;
inline Bytes bytes_of(std::span<const std::byte> b) { return Bytes(reinterpret_cast<const char*>(b.data()), b.size()); }
inline std::span<const std::byte> span_of(const Bytes& b) { return {reinterpret_cast<const std::byte*>(b.data()), b.size()}; }

struct ManagedType;

/// One object of the server, with its id's type tag (checked at every call).
struct Object {
  enum Kind { list, array, dict, value, ns, custom } kind;
  std::uint64_t tag;
  std::mutex mutex;
  std::vector<Bytes> items;                                             // list, array
  std::list<std::pair<Bytes, Bytes>> pairs;                             // dict, in insertion order
  std::unordered_map<Bytes, std::list<std::pair<Bytes, Bytes>>::iterator> index;
  Bytes one;                                                            // value
  std::map<std::string, std::pair<std::uint64_t, Bytes>> attrs;         // namespace
  const ManagedType* type = nullptr;                                    // custom
  void* object = nullptr;
  Object(Kind k, std::uint64_t t) : kind(k), tag(t) {}
  ~Object();  // destroys a custom object
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;
};

/// A new object of `kind` ("list", "dict", ..., or a registered type's name), its initial
/// items read from `init`. @throws UnregisteredFunction for a kind nobody registered.
std::shared_ptr<Object> make_object(std::string_view kind, std::uint64_t tag, Reader& init);
/// Calls `method` on o (the caller holds o.mutex). Throws what the method throws.
void call_object(Object& o, std::string_view method, Reader& args, Writer& out);

}  // namespace parex::detail
