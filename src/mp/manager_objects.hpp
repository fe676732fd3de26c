// src/mp/manager_objects.hpp - what a Manager's server holds: lists, arrays, dicts, sets,
// values, namespaces and objects of registered user types, and their methods. Items are
// the client's encoded bytes: the server never decodes a user's item (manager_link.hpp),
// except to sort a list, through the sorter ListProxy<T>::sort registers (proxy_base.hpp).
// Who includes this: manager_server.cpp and the objects' sources (manager_objects.cpp,
// manager_sequences.cpp, manager_mappings.cpp). An Object is used under its own mutex.
#pragma once

#include <parex/detail/mp/manager_link.hpp>
#include <parex/detail/mp/proxy_base.hpp>

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

/// A Namespace attribute: its type's tag, its encoding, and Python's repr of it (made
/// by the client that set it: the server never decodes).
struct Attribute {
  std::uint64_t tag = 0;
  Bytes bytes;
  std::string repr;
};

/// One object of the server, with its id's type tag (checked at every call).
struct Object {
  enum Kind { list, array, dict, set, value, ns, custom } kind;
  std::uint64_t tag;
  std::mutex mutex;
  std::vector<Bytes> items;                                             // list, array
  std::list<std::pair<Bytes, Bytes>> pairs;                             // dict, set (values ""), in insertion order
  std::unordered_map<Bytes, std::list<std::pair<Bytes, Bytes>>::iterator> index;
  std::uint64_t version = 0;  // dict, set: insertions and removals so far (iterators check it)
  Bytes one;                                                            // value
  std::map<std::string, Attribute> attrs;                               // namespace
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

// Each kind's methods (manager_sequences.cpp, manager_mappings.cpp): every argument is
// read before anything changes, so a request cut short changes nothing.
void call_list(Object& o, std::string_view method, Reader& args, Writer& out);
void call_dict(Object& o, std::string_view method, Reader& args, Writer& out);
void call_set(Object& o, std::string_view method, Reader& args, Writer& out);

/// The sorter of items of type `tag` (ListProxy<T>::sort registers it in every process
/// of the program). @throws UnregisteredFunction naming `type` if none.
ItemSorter item_sorter(std::uint64_t tag, std::string_view type);

inline void put_blobs(Writer& w, const std::vector<Bytes>& v) {
  w.put_varint(v.size());
  for (const auto& b : v) put_blob(w, span_of(b));
}

}  // namespace parex::detail
