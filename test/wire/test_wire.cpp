// The wire layer on its own: codecs round-trip, and the frame reader and decoders meet
// corrupt, truncated, oversized and random input with a typed ProtocolError - never a
// crash, a hang or a huge allocation.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include <parex/detail/wire/frame.hpp>
#include <parex/detail/remote/remote_call.hpp>
#include <parex/registry.hpp>
#include <parex/serialize.hpp>

#include "process/arena.hpp"
#include "process/shared_page.hpp"

#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

using namespace parex::detail;

namespace {
template <class T>
T round_trip(const T& v) {
  Buffer b;
  encode<T>(b, v);
  Reader r(b.bytes());
  T out = decode<T>(r);
  BOOST_TEST(r.empty());
  return out;
}

Buffer frame(FrameKind kind, const std::vector<std::byte>& payload, std::uint32_t items = 0) {
  Buffer b;
  const auto at = begin_frame(b, kind);
  b.put(payload.data(), payload.size());
  finish_frame(b, at, items);
  return b;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(wire)

BOOST_AUTO_TEST_CASE(codecs_round_trip) {
  BOOST_TEST(round_trip(42) == 42);
  BOOST_TEST(round_trip(-1.5) == -1.5);
  BOOST_TEST(round_trip(std::string()) == "");
  BOOST_TEST(round_trip(std::string(1000, 'x')) == std::string(1000, 'x'));
  BOOST_TEST((round_trip(std::vector<double>{1, 2, 3}) == std::vector<double>{1, 2, 3}));
  BOOST_TEST((round_trip(std::vector<bool>{true, false, true}) == std::vector<bool>{true, false, true}));
  BOOST_TEST((round_trip(std::vector<std::string>{"a", "", "ccc"}) == std::vector<std::string>{"a", "", "ccc"}));
  const std::map<std::string, std::vector<std::optional<int>>> m{{"k", {1, std::nullopt}}};
  BOOST_TEST((round_trip(m) == m));
  const std::variant<int, std::string, std::monostate> v = std::string("s");
  BOOST_TEST((round_trip(v) == v));
  const auto t = std::make_tuple(1, std::string("two"), 3.0, std::pair<char, long>{'4', 5});
  BOOST_TEST((round_trip(t) == t));
  BOOST_TEST(round_trip(std::chrono::milliseconds(1234)).count() == 1234);
}

BOOST_AUTO_TEST_CASE(bulk_decode_from_unaligned_bytes) {
  // Items sit at arbitrary offsets inside frames: decoding raw vectors must not assume
  // alignment.
  for (std::size_t shift = 0; shift < 8; ++shift) {
    Buffer b;
    for (std::size_t i = 0; i < shift; ++i) b.put_byte(0);
    std::vector<double> v(5000);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = i * 0.5;
    encode(b, v);
    Reader r(b.bytes());
    r.take(shift);
    BOOST_TEST((decode<std::vector<double>>(r) == v));
  }
}

BOOST_AUTO_TEST_CASE(length_prefixes_of_every_width) {
  // Bodies around the 1-byte varint boundary, and with a size hint that is too small.
  for (std::size_t n : {0u, 1u, 126u, 127u, 128u, 129u, 16383u, 16384u, 100000u}) {
    for (std::size_t hint : {std::size_t{0}, n, n / 200}) {
      Buffer b;
      put_length_prefixed(b, [&](Writer& w) { w.put(std::string(n, 'a').data(), n); }, hint);
      Reader r(b.bytes());
      const auto len = r.get_varint();
      BOOST_REQUIRE(len == n);
      BOOST_REQUIRE(r.remaining() == n);
    }
  }
}

BOOST_AUTO_TEST_CASE(frames_split_at_every_byte) {
  std::vector<std::byte> payload(1000);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = std::byte(i);
  Buffer a = frame(FrameKind::results, payload, 3), b = frame(FrameKind::calls, {}, 0);
  std::vector<std::byte> stream(a.data(), a.data() + a.size());
  stream.insert(stream.end(), b.data(), b.data() + b.size());
  for (std::size_t piece : {1u, 7u, 24u, 100u, 5000u}) {
    FrameReader reader(1 << 20);
    std::vector<FrameKind> kinds;
    for (std::size_t at = 0; at < stream.size(); at += piece) {
      const std::size_t n = std::min(piece, stream.size() - at);
      auto space = reader.prepare(n);
      std::memcpy(space.data(), stream.data() + at, n);
      reader.commit(n);
      while (auto f = reader.next()) {
        kinds.push_back(f->kind());
        if (f->kind() == FrameKind::results) {
          BOOST_REQUIRE(f->payload.size() == payload.size());
          BOOST_REQUIRE(std::memcmp(f->payload.data(), payload.data(), payload.size()) == 0);
          BOOST_REQUIRE(f->header.items == 3u);
        }
      }
    }
    BOOST_TEST((kinds == std::vector<FrameKind>{FrameKind::results, FrameKind::calls}));
    BOOST_TEST(!reader.mid_frame());
  }
}

BOOST_AUTO_TEST_CASE(corrupt_headers_are_protocol_errors) {
  auto feed = [](std::vector<std::byte> bytes, std::uint64_t max = 1 << 20) {
    FrameReader reader(max);
    auto space = reader.prepare(bytes.size());
    std::memcpy(space.data(), bytes.data(), bytes.size());
    reader.commit(bytes.size());
    return reader.next();
  };
  Buffer good = frame(FrameKind::results, std::vector<std::byte>(16));
  auto bytes = [&] { return std::vector<std::byte>(good.data(), good.data() + good.size()); };

  auto bad_magic = bytes();
  bad_magic[0] = std::byte{'X'};
  BOOST_CHECK_THROW(feed(bad_magic), parex::ProtocolError);

  auto bad_version = bytes();
  bad_version[4] = std::byte{99};
  BOOST_CHECK_THROW(feed(bad_version), parex::ProtocolError);

  auto bad_kind = bytes();
  bad_kind[6] = std::byte{200};
  BOOST_CHECK_THROW(feed(bad_kind), parex::ProtocolError);

  auto oversized = bytes();
  const std::uint64_t huge = std::uint64_t{1} << 62;
  std::memcpy(oversized.data() + 8, &huge, sizeof huge);
  BOOST_CHECK_THROW(feed(oversized), parex::ProtocolError);
  // Even with no limit: a length whose header + payload would wrap around is refused.
  auto wraps = bytes();
  const std::uint64_t almost_all = ~std::uint64_t{0} - 8;
  std::memcpy(wraps.data() + 8, &almost_all, sizeof almost_all);
  BOOST_CHECK_THROW(feed(wraps, ~std::uint64_t{0}), parex::ProtocolError);

  // Truncated: not an error yet (more may come), and nothing allocated beyond the bytes.
  auto truncated = bytes();
  truncated.resize(truncated.size() - 5);
  BOOST_TEST(!feed(truncated).has_value());
  auto short_header = bytes();
  short_header.resize(10);
  BOOST_TEST(!feed(short_header).has_value());
}

BOOST_AUTO_TEST_CASE(a_lying_length_does_not_allocate_it) {
  // A header that claims 8 GiB (under the limit) but delivers 100 bytes: the reader's
  // buffer grows with what arrives, not with the claim.
  Buffer b = frame(FrameKind::results, {});
  FrameHeader h;
  std::memcpy(&h, b.data(), sizeof h);
  h.length = std::uint64_t{8} << 30;
  std::memcpy(b.data(), &h, sizeof h);
  FrameReader reader(std::uint64_t{16} << 30);
  auto space = reader.prepare(b.size());
  std::memcpy(space.data(), b.data(), b.size());
  reader.commit(b.size());
  BOOST_TEST(!reader.next().has_value());
  BOOST_TEST(reader.prepare().size() <= (std::size_t{4} << 20));
  BOOST_TEST(reader.mid_frame());
}

BOOST_AUTO_TEST_CASE(random_bytes_never_crash_the_decoders) {
  std::mt19937_64 rng(12345);
  std::size_t errors = 0;
  for (int round = 0; round < 5000; ++round) {
    std::vector<std::byte> junk(rng() % 64);
    for (auto& c : junk) c = std::byte(rng());
    // Decoders of nested types, including counts that claim billions of elements.
    try {
      Reader r(junk);
      (void)decode<std::map<std::string, std::vector<std::optional<std::string>>>>(r);
    } catch (const parex::ProtocolError&) {
      ++errors;
    }
    try {
      Reader r(junk);
      (void)decode<std::variant<int, std::vector<double>, std::string>>(r);
    } catch (const parex::ProtocolError&) {
      ++errors;
    }
    try {
      Reader r(junk);
      while (!r.empty()) (void)read_outcome(r);
    } catch (const parex::ProtocolError&) {
      ++errors;
    }
    try {  // an exception record
      Reader r(junk);
      (void)decode_exception(r);
    } catch (const parex::ProtocolError&) {
      ++errors;
    }
    // The frame reader: random bytes after a valid header, and random bytes alone.
    FrameReader reader(1 << 16);
    auto space = reader.prepare(junk.size());
    if (!junk.empty()) std::memcpy(space.data(), junk.data(), junk.size());
    reader.commit(junk.size());
    try {
      while (reader.next()) {
      }
    } catch (const parex::ProtocolError&) {
      ++errors;
    }
  }
  BOOST_TEST(errors > 5000u);  // most junk is rejected, and all of it was survived
}

BOOST_AUTO_TEST_CASE(huge_counts_are_rejected_before_allocating) {
  Buffer b;
  b.put_varint(std::uint64_t{1} << 40);  // "a trillion strings follow"
  b.put_byte(0);
  Reader r(b.bytes());
  BOOST_CHECK_THROW(decode<std::vector<std::string>>(r), parex::ProtocolError);
  Buffer c;
  c.put_varint(std::uint64_t{1} << 40);
  Reader r2(c.bytes());
  BOOST_CHECK_THROW(decode<std::vector<double>>(r2), parex::ProtocolError);
  BOOST_CHECK_THROW(decode<std::string>(r2 = Reader(c.bytes())), parex::ProtocolError);
}

BOOST_AUTO_TEST_CASE(argument_arena_reuses_coalesces_and_falls_back) {
  auto arena = ArgArena::create(std::size_t{16} << 20);  // room for 8 granules of 2 MiB
  BOOST_REQUIRE(arena);
  std::size_t cap_a = 0, cap_b = 0, cap_c = 0;
  std::byte* a = arena->allocate(3 << 20, cap_a);  // rounds up to 4 MiB
  std::byte* b = arena->allocate(4 << 20, cap_b);
  BOOST_REQUIRE((a && b));
  BOOST_TEST(cap_a == std::size_t{4} << 20);
  a[0] = std::byte{1};
  b[cap_b - 1] = std::byte{2};
  BOOST_TEST(!arena->allocate(std::size_t{10} << 20, cap_c));  // full: the caller uses the heap
  arena->release(a, cap_a);
  arena->release(b, cap_b);
  std::byte* c = arena->allocate(std::size_t{8} << 20, cap_c);  // the two freed blocks, coalesced
  BOOST_TEST((c == a));
  arena->release(c, cap_c);
}

BOOST_AUTO_TEST_CASE(buffers_take_big_blocks_from_an_arena_and_fall_back_to_the_heap) {
  auto arena = ArgArena::create(std::size_t{16} << 20);
  BOOST_REQUIRE(arena);
  std::string big(std::size_t{10} << 20, 'x');
  {
    Buffer in_arena;
    in_arena.use_blocks_from(arena.get());
    encode(in_arena, big);
    BOOST_TEST((in_arena.block_owner() == arena.get()));
    Buffer on_heap;  // the arena has 6 MiB left: this one must not fit
    on_heap.use_blocks_from(arena.get());
    encode(on_heap, big);
    BOOST_TEST(!on_heap.block_owner());
    Reader r1(in_arena.bytes()), r2(on_heap.bytes());
    BOOST_TEST(decode<std::string>(r1) == big);
    BOOST_TEST(decode<std::string>(r2) == big);
    Buffer moved = std::move(in_arena);  // ownership travels with the bytes
    BOOST_TEST((moved.block_owner() == arena.get()));
    BOOST_TEST(!in_arena.block_owner());
  }
  std::size_t cap = 0;  // every block came back: the whole arena is free again
  std::byte* all = arena->allocate(std::size_t{16} << 20, cap);
  BOOST_TEST(all != nullptr);
  arena->release(all, cap);
}

BOOST_AUTO_TEST_CASE(a_worker_dying_mid_publish_leaves_the_previous_unsent_pair) {
  parex::detail::WorkerShared sh;
  sh.publish_unsent(5, 100);
  auto u = sh.unsent();
  BOOST_TEST(u.first == 5u);
  BOOST_TEST(u.begin == 100u);
  // The next publish dies after writing half of its slot: the pair read back is the old
  // one, whole, never the new item number with the old offset.
  const auto g = sh.unsent_gen.load() + 1;
  sh.unsent_first[g & 1].store(9);
  u = sh.unsent();
  BOOST_TEST(u.first == 5u);
  BOOST_TEST(u.begin == 100u);
  sh.publish_unsent(9, 180);
  u = sh.unsent();
  BOOST_TEST(u.first == 9u);
  BOOST_TEST(u.begin == 180u);
}

BOOST_AUTO_TEST_SUITE_END()
