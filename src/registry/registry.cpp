// The function registry: names, ids, invokers, the digest.
//
// Entries are added during static initialisation, in an order that differs between
// binaries but not between a program and its re-executed workers; freeze() sorts them by
// name so ids agree anyway, and builds the lookup tables once. Registrations that arrive
// later (a dlopen'd library) cannot reach already-running workers, so they are refused
// with a message rather than half-working.
#include <parex/registry.hpp>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <typeindex>
#include <unordered_map>

namespace parex::detail {

struct Registry::Snapshot {
  std::vector<const FunctionEntry*> by_id;  // sorted by name
  std::unordered_map<const void*, const FunctionEntry*> pointers;
  std::unordered_map<std::type_index, const FunctionEntry*> types;
  std::uint64_t digest = 0;
};

namespace {

std::uint64_t fnv1a(std::uint64_t h, std::string_view s) {
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return (h ^ 0xff) * 0x100000001b3ull;  // a separator, so that "ab"+"c" != "a"+"bc"
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string where(const FunctionEntry& e) { return std::string(e.file) + ":" + std::to_string(e.line); }
}  // namespace

Registry& Registry::global() noexcept {
  static Registry* r = new Registry;  // leaked: lookups stay valid during static destruction
  return *r;
}

Registry::~Registry() { delete snapshot_.load(std::memory_order_acquire); }

void Registry::add(FunctionEntry e) noexcept {
  try {
    std::lock_guard lock(mutex_);
    if (snapshot_.load(std::memory_order_acquire)) {
      std::fprintf(stderr,
                   "parex: function '%s' (%s) registered after start-up (a dlopen'd library?); worker processes "
                   "cannot know it, so it is ignored: register functions in the program itself\n",
                   e.name.c_str(), where(e).c_str());
      return;
    }
    entries_.push_back(std::move(e));
  } catch (...) {
    std::fputs("parex: out of memory while registering a function\n", stderr);
    std::abort();
  }
}

void Registry::freeze() { snapshot(); }

const Registry::Snapshot& Registry::snapshot() {
  if (const Snapshot* s = snapshot_.load(std::memory_order_acquire)) return *s;
  std::lock_guard lock(mutex_);
  if (const Snapshot* s = snapshot_.load(std::memory_order_acquire)) return *s;

  std::vector<FunctionEntry*> sorted;
  for (auto& e : entries_) sorted.push_back(&e);
  std::stable_sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });
  auto s = std::make_unique<Snapshot>();
  for (FunctionEntry* e : sorted) {
    if (!s->by_id.empty() && s->by_id.back()->name == e->name) {
      const FunctionEntry* prev = s->by_id.back();
      const bool same = prev->target == e->target ||
                        (prev->object_type && e->object_type && *prev->object_type == *e->object_type);
      if (same) continue;  // one registration seen from two translation units
      throw Error("function name '" + e->name + "' is registered twice, for different functions: at " + where(*prev) +
                  " and at " + where(*e) + "; give one of them another name with PAREX_REGISTER_AS");
    }
    e->id = static_cast<std::uint32_t>(s->by_id.size());
    s->by_id.push_back(e);
  }
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const FunctionEntry* e : s->by_id) {
    h = fnv1a(fnv1a(h, e->name), e->signature);
    if (e->object_type) s->types.emplace(*e->object_type, e);
    else s->pointers.emplace(e->target, e);
  }
  for (const auto& name : registered_exception_names()) h = fnv1a(h, name);
  s->digest = fnv1a(h, "parex protocol " + std::to_string(protocol_version));
  const Snapshot* published = s.release();
  snapshot_.store(published, std::memory_order_release);
  return *published;
}

const FunctionEntry* Registry::by_pointer(const void* fn) {
  auto& s = snapshot();
  auto it = s.pointers.find(fn);
  return it == s.pointers.end() ? nullptr : it->second;
}

const FunctionEntry* Registry::by_type(const std::type_info& t) {
  auto& s = snapshot();
  auto it = s.types.find(t);
  return it == s.types.end() ? nullptr : it->second;
}

std::size_t Registry::size() { return snapshot().by_id.size(); }

const FunctionEntry* Registry::by_id(std::uint32_t id) {
  auto& s = snapshot();
  return id < s.by_id.size() ? s.by_id[id] : nullptr;
}

std::uint64_t Registry::digest() { return snapshot().digest; }

std::string Registry::nearest(std::string_view name, std::size_t n) {
  auto& s = snapshot();
  std::vector<std::pair<std::size_t, const std::string*>> scored;
  for (const FunctionEntry* e : s.by_id) scored.emplace_back(name.empty() ? 0 : edit_distance(name, e->name), &e->name);
  std::stable_sort(scored.begin(), scored.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::string out;
  for (std::size_t i = 0; i < scored.size() && i < n; ++i) out += (i ? ", " : "") + *scored[i].second;
  if (scored.size() > n) out += ", ...";
  return out.empty() ? "none" : out;
}

}  // namespace parex::detail
