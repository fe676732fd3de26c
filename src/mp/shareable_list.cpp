// ShareableList (see include/parex/mp/shareable_list.hpp).
//
// The block's layout is Python's (Lib/multiprocessing/shared_memory.py), so that a named
// list is one list for parex and Python programs alike:
//   [n: int64][offsets: (n + 1) x int64, into the data area][data: a slot per item]
//   [formats: n x 8 bytes, the struct format of each item, NUL-padded]
//   [back-transform codes: n x int8: 0 number/bool, 1 str, 2 bytes, 3 None]
// Formats: "q" int64, "d" double, "xxxxxxx?" bool (its byte last), "xxxxxx?x" None,
// "<N>s" str/bytes in N bytes, NUL-padded. Slots never move: offsets are fixed when the
// list is made, so a handle caches them; everything else is read from the block on
// each access, and checked: the block is shared with other programs.
#include <parex/mp/shareable_list.hpp>

#include <parex/errors.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ostream>
#include <sstream>
#include <string>

namespace parex {

namespace {
constexpr std::size_t align = 8;
enum Code : std::int8_t { number = 0, str_code = 1, bytes_code = 2, none_code = 3 };

std::uint64_t load64(const std::byte* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
void store64(std::byte* p, std::uint64_t v) { std::memcpy(p, &v, sizeof v); }

// The slot bytes a str/bytes of `len` bytes is given (Python: 8 * (len // 8 + 1)).
std::size_t slot_for(std::size_t len) { return align * (len / align + 1); }
// A str's: Python's, from its length in characters, unless its UTF-8 bytes would not fit
// there (Python then truncates them silently): then from its bytes.
std::size_t slot_for_str(const std::string& s) {
  const std::size_t chars = static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
  const std::size_t python = slot_for(chars);
  return s.size() <= python ? python : slot_for(s.size());
}
std::size_t slot_of(const ShareableList::Item& x);

const std::string* text_of(const ShareableList::Item& x) {
  if (x.holds<std::string>()) return &x.get<std::string>();
  if (x.holds<Bytes>()) return &x.get<Bytes>().str();
  return nullptr;
}

std::size_t slot_of(const ShareableList::Item& x) {
  if (x.holds<std::string>()) return slot_for_str(x.get<std::string>());
  if (x.holds<Bytes>()) return slot_for(x.get<Bytes>().size());
  return align;
}

std::string format_of(const ShareableList::Item& x, std::size_t slot) {
  if (x.holds<std::int64_t>()) return "q";
  if (x.holds<double>()) return "d";
  if (x.holds<bool>()) return "xxxxxxx?";
  if (x.is_none()) return "xxxxxx?x";
  return std::to_string(slot) + "s";
}
std::int8_t code_of(const ShareableList::Item& x) {
  if (x.holds<std::string>()) return str_code;
  if (x.holds<Bytes>()) return bytes_code;
  if (x.is_none()) return none_code;
  return number;
}

// Where the parts are, for a list of n items whose data area is `data` bytes.
struct Parts {
  std::size_t n, data;
  std::size_t data_start() const { return (n + 2) * 8; }
  std::size_t formats() const { return data_start() + data; }
  std::size_t codes() const { return formats() + n * 8; }
  std::size_t end() const { return codes() + n; }
};

[[noreturn]] void not_a_list(const std::string& why) {
  throw ValueError("this SharedMemory holds no ShareableList: " + why);
}

// Writes item x at slot i (its format, code and value); the slot's room is checked by the caller.
void write_item(std::span<std::byte> b, const Parts& p, std::size_t i, std::uint64_t offset, const std::string& fmt,
                const ShareableList::Item& x) {
  char f[8] = {};
  std::memcpy(f, fmt.data(), std::min<std::size_t>(fmt.size(), 8));
  std::memcpy(b.data() + p.formats() + i * 8, f, 8);
  b[p.codes() + i] = static_cast<std::byte>(code_of(x));
  std::byte* at = b.data() + p.data_start() + offset;
  if (const std::string* t = text_of(x)) {
    const std::size_t room = static_cast<std::size_t>(std::stoull(fmt));
    std::memset(at, 0, room);
    std::memcpy(at, t->data(), t->size());
  } else if (x.holds<std::int64_t>()) {
    store64(at, static_cast<std::uint64_t>(x.get<std::int64_t>()));
  } else if (x.holds<double>()) {
    std::memcpy(at, &x.get<double>(), 8);
  } else {
    std::memset(at, 0, 8);
    if (x.holds<bool>()) at[7] = static_cast<std::byte>(x.get<bool>() ? 1 : 0);
  }
}

void repr_text(std::ostream& os, const std::string& s, bool bytes) {
  if (bytes) os << 'b';
  os << '\'';
  for (unsigned char c : s) {
    if (c == '\'' || c == '\\') {
      os << '\\' << c;
    } else if (c == '\n') {
      os << "\\n";
    } else if (c < 0x20 || c == 0x7f || (bytes && c >= 0x80)) {
      static const char hex[] = "0123456789abcdef";
      os << "\\x" << hex[c >> 4] << hex[c & 15];
    } else {
      os << c;
    }
  }
  os << '\'';
}
}  // namespace

std::ostream& operator<<(std::ostream& os, const Bytes& b) {
  repr_text(os, b.str(), true);
  return os;
}

void ShareableList::Item::throw_too_big() {
  throw ValueError("ShareableList: an int past a signed 64-bit integer ('q') cannot be stored");
}

bool operator==(const ShareableList::Item& a, const ShareableList::Item& b) noexcept {
  const auto numeric = [](const ShareableList::Item& x) {
    return x.holds<bool>() || x.holds<std::int64_t>() || x.holds<double>();
  };
  if (numeric(a) && numeric(b)) {
    if (a.holds<double>() || b.holds<double>()) {
      const auto as_double = [](const ShareableList::Item& x) {
        if (x.holds<double>()) return x.get<double>();
        if (x.holds<bool>()) return x.get<bool>() ? 1.0 : 0.0;
        return static_cast<double>(x.get<std::int64_t>());
      };
      return as_double(a) == as_double(b);
    }
    const auto as_int = [](const ShareableList::Item& x) -> std::int64_t {
      return x.holds<bool>() ? (x.get<bool>() ? 1 : 0) : x.get<std::int64_t>();
    };
    return as_int(a) == as_int(b);
  }
  return a.v_ == b.v_;
}

std::ostream& operator<<(std::ostream& os, const ShareableList::Item& x) {
  if (x.is_none()) return os << "None";
  if (x.holds<bool>()) return os << (x.get<bool>() ? "True" : "False");
  if (x.holds<std::int64_t>()) return os << x.get<std::int64_t>();
  if (x.holds<double>()) {
    const double d = x.get<double>();
    if (std::isnan(d)) return os << "nan";
    if (std::isinf(d)) return os << (d < 0 ? "-inf" : "inf");
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
    std::string s(buf, end);
    if (s.find_first_of(".e") == std::string::npos) s += ".0";  // Python: 100.0
    return os << s;
  }
  repr_text(os, x.holds<std::string>() ? x.get<std::string>() : x.get<Bytes>().str(), x.holds<Bytes>());
  return os;
}

std::size_t ShareableList::bytes_for(const std::vector<Item>& items) {
  std::size_t data = 0;
  for (const Item& x : items) data += slot_of(x);
  return Parts{items.size(), data}.end();
}

ShareableList::ShareableList(const std::vector<Item>& items)
    : ShareableList(Fill{}, parex::SharedMemory(bytes_for(items)), items) {}

ShareableList::ShareableList(const std::vector<Item>& items, std::string_view name)
    : ShareableList(Fill{}, parex::SharedMemory(name, true, bytes_for(items)), items) {}

ShareableList::ShareableList(Fill, parex::SharedMemory block, const std::vector<Item>& items) : shm(std::move(block)) {
  n_ = items.size();
  offsets_.assign(1, 0);
  for (const Item& x : items) offsets_.push_back(offsets_.back() + slot_of(x));
  const Parts p{n_, offsets_.back()};
  const std::span<std::byte> b = shm.buf();
  if (b.size() < p.end()) throw ValueError("ShareableList: the block is smaller than the list");
  store64(b.data(), n_);
  for (std::size_t i = 0; i <= n_; ++i) store64(b.data() + 8 + i * 8, offsets_[i]);
  for (std::size_t i = 0; i < n_; ++i)
    write_item(b, p, i, offsets_[i], format_of(items[i], offsets_[i + 1] - offsets_[i]), items[i]);
}

ShareableList::ShareableList(parex::SharedMemory block) : shm(std::move(block)) {
  const std::span<std::byte> b = shm.buf();
  if (b.size() < 16) not_a_list("too small");
  const std::uint64_t n = load64(b.data());
  if (n > (b.size() - 16) / 17) not_a_list("a length of " + std::to_string(n) + " in " + std::to_string(b.size()) + " bytes");
  n_ = static_cast<std::size_t>(n);
  offsets_.resize(n_ + 1);
  for (std::size_t i = 0; i <= n_; ++i) {
    offsets_[i] = load64(b.data() + 8 + i * 8);
    if ((i == 0 && offsets_[0] != 0) || (i > 0 && (offsets_[i] < offsets_[i - 1] + align || offsets_[i] > b.size())))
      not_a_list("slot offsets out of order");
  }
  if (Parts{n_, offsets_.back()}.end() > b.size()) not_a_list("slots past the block's end");
}

std::span<std::byte> ShareableList::checked_buf() const {
  const std::span<std::byte> b = shm.buf();
  if (b.size() < Parts{n_, offsets_.empty() ? 0 : offsets_.back()}.end())
    throw ValueError("this ShareableList's SharedMemory was closed");
  return b;
}

std::size_t ShareableList::size() const {
  const std::span<std::byte> b = checked_buf();
  return static_cast<std::size_t>(std::min<std::uint64_t>(load64(b.data()), n_));
}

namespace {
std::size_t position(std::ptrdiff_t i, std::size_t n, const char* what) {
  const std::ptrdiff_t at = i < 0 ? i + static_cast<std::ptrdiff_t>(n) : i;
  if (at < 0 || static_cast<std::size_t>(at) >= n)
    throw IndexError(std::string(what) + " " + std::to_string(i) + " out of range for a ShareableList of " +
                     std::to_string(n));
  return static_cast<std::size_t>(at);
}
std::string format_at(std::span<const std::byte> b, const Parts& p, std::size_t i) {
  std::string f(reinterpret_cast<const char*>(b.data() + p.formats() + i * 8), 8);
  f.erase(f.find_last_not_of('\0') + 1);
  return f;
}
}  // namespace

ShareableList::Item ShareableList::get(std::ptrdiff_t index) const {
  const std::span<std::byte> b = checked_buf();
  const std::size_t i = position(index, n_, "index");
  const Parts p{n_, offsets_.back()};
  const std::string fmt = format_at(b, p, i);
  const auto code = static_cast<std::int8_t>(b[p.codes() + i]);
  const std::byte* at = b.data() + p.data_start() + offsets_[i];
  const std::size_t room = offsets_[i + 1] - offsets_[i];
  if (code == none_code) return Item(nullptr);
  if (code == str_code || code == bytes_code) {
    std::size_t len = 0;
    const auto [end, ec] = std::from_chars(fmt.data(), fmt.data() + fmt.size(), len);
    if (ec != std::errc{} || end + 1 != fmt.data() + fmt.size() || *end != 's' || len > room)
      throw ValueError("ShareableList: a corrupt format '" + fmt + "' at " + std::to_string(i));
    std::string s(reinterpret_cast<const char*>(at), len);
    s.erase(s.find_last_not_of('\0') + 1);  // Python's rstrip(b'\x00')
    if (code == str_code) return Item(std::move(s));
    return Item(Bytes(std::move(s)));
  }
  if (fmt == "q") return Item(static_cast<std::int64_t>(load64(at)));
  if (fmt == "d") {
    double d;
    std::memcpy(&d, at, 8);
    return Item(d);
  }
  if (fmt == "xxxxxxx?") return Item(at[7] != std::byte{0});
  throw ValueError("ShareableList: a corrupt format '" + fmt + "' at " + std::to_string(i));
}

void ShareableList::set(std::ptrdiff_t index, const Item& v) {
  const std::span<std::byte> b = checked_buf();
  const std::size_t i = position(index, n_, "assignment index");
  const Parts p{n_, offsets_.back()};
  const std::size_t room = offsets_[i + 1] - offsets_[i];
  std::string fmt = format_of(v, room);
  if (const std::string* t = text_of(v)) {
    if (t->size() > room)
      throw ValueError("bytes/str item exceeds available storage: " + std::to_string(t->size()) + " bytes in a slot of " +
                       std::to_string(room));
  }
  write_item(b, p, i, offsets_[i], fmt, v);
}

std::string ShareableList::format() const {
  const std::span<std::byte> b = checked_buf();
  const Parts p{n_, offsets_.back()};
  std::string all;
  for (std::size_t i = 0; i < n_; ++i) all += format_at(b, p, i);
  return all;
}

std::size_t ShareableList::count(const Item& v) const {
  std::size_t c = 0;
  for (std::size_t i = 0; i < n_; ++i) c += get(static_cast<std::ptrdiff_t>(i)) == v;
  return c;
}

std::size_t ShareableList::index(const Item& v) const {
  for (std::size_t i = 0; i < n_; ++i)
    if (get(static_cast<std::ptrdiff_t>(i)) == v) return i;
  std::ostringstream os;
  os << v << " not in this container";
  throw ValueError(os.str());
}

std::vector<ShareableList::Item> ShareableList::to_vector() const {
  std::vector<Item> v;
  v.reserve(n_);
  for (std::size_t i = 0; i < n_; ++i) v.push_back(get(static_cast<std::ptrdiff_t>(i)));
  return v;
}

std::ostream& operator<<(std::ostream& os, const ShareableList& l) {
  os << "ShareableList([";
  const auto items = l.to_vector();
  for (std::size_t i = 0; i < items.size(); ++i) os << (i ? ", " : "") << items[i];
  std::string name;
  try {
    name = l.shm.name();
  } catch (...) {
    name = "<closed>";
  }
  return os << "], name='" << name << "')";
}

}  // namespace parex
