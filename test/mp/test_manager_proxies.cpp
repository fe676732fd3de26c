// Manager proxies beyond the basics (include/parex/mp/proxies.hpp): SetProxy, lists and
// dicts that iterate, sort, reverse, popitem, ==, fromkeys, printing as Python prints,
// BoundedSemaphore, Barrier and Pool from a Manager, start(initializer), a restart at
// the same TCP address, and malformed requests to the new methods. The CPython cases
// they follow (_TestContainers, test_manager_initializer, _TestManagerRestart) are named
// beside each.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "mp/manager_proxy_functions.hpp"
#include "mp/mp_functions.hpp"
#include "mp/socket_protocol.hpp"
#include "support/helpers.hpp"

#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using namespace manager_proxy_test;

namespace {
template <class T>
std::string str(const T& v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
template <class T>
std::string repr(const T& v) {
  std::ostringstream os;
  parex::detail::py_repr(os, v);
  return os.str();
}
template <class R>
auto collect(const R& r) {
  std::vector<std::decay_t<decltype(*r.begin())>> v;
  for (const auto& x : r) v.push_back(x);
  return v;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(mp_manager_proxies)

BOOST_AUTO_TEST_CASE(set_proxy_behaves_as_pythons_set) {
  parex::Manager m;
  auto s = m.set<int>({1, 2, 3});
  BOOST_TEST(s.size() == 3u);
  s.add(3);  // already there
  s.add(4);
  BOOST_TEST(s.len() == 4u);
  BOOST_TEST(s.contains(4));
  BOOST_TEST(!s.contains(9));
  s.discard(9);  // absent: nothing
  s.discard(4);
  BOOST_CHECK_THROW(s.remove(9), parex::KeyError);
  s.remove(3);
  BOOST_TEST((s.to_set() == std::set<int>{1, 2}));
  BOOST_TEST((s == std::set<int>{2, 1}));
  BOOST_TEST(!(s == std::set<int>{1}));
  BOOST_TEST((s.union_(std::vector<int>{2, 5}) == std::set<int>{1, 2, 5}));
  BOOST_TEST((s.intersection(std::set<int>{2, 5}) == std::set<int>{2}));
  BOOST_TEST((s.difference(std::set<int>{2, 5}) == std::set<int>{1}));
  BOOST_TEST((s.symmetric_difference(std::set<int>{2, 5}) == std::set<int>{1, 5}));
  BOOST_TEST((s | std::set<int>{7}) == (std::set<int>{1, 2, 7}));
  BOOST_TEST((s & std::set<int>{1, 7}) == (std::set<int>{1}));
  BOOST_TEST((s - std::set<int>{1}) == (std::set<int>{2}));
  BOOST_TEST((s ^ std::set<int>{1, 7}) == (std::set<int>{2, 7}));
  BOOST_TEST(s.issubset(std::set<int>{1, 2, 3}));
  BOOST_TEST(!s.issubset(std::set<int>{1}));
  BOOST_TEST(s.issuperset(std::vector<int>{1}));
  BOOST_TEST(s.isdisjoint(std::set<int>{8, 9}));
  BOOST_TEST((s <= std::set<int>{1, 2}));
  BOOST_TEST(!(s < std::set<int>{1, 2}));
  BOOST_TEST((s < std::set<int>{1, 2, 3}));
  BOOST_TEST((s > std::set<int>{2}));
  BOOST_TEST((s >= std::set<int>{1, 2}));
  auto other = m.set<int>({2, 3});
  BOOST_TEST((s.union_(other) == std::set<int>{1, 2, 3}));  // another proxy's members
  s |= other;
  BOOST_TEST((s.to_set() == std::set<int>{1, 2, 3}));
  s -= std::set<int>{1};
  s &= std::set<int>{2, 3, 4};
  s ^= std::set<int>{3, 6};
  BOOST_TEST((s.to_set() == std::set<int>{2, 6}));
  s.update(std::vector<int>{10, 11});
  s.intersection_update(std::set<int>{2, 10, 11});
  s.difference_update(std::set<int>{11});
  s.symmetric_difference_update(std::set<int>{10, 12});
  BOOST_TEST((s.copy() == std::set<int>{2, 12}));
  BOOST_TEST(!(s == other));
  other.clear();
  other.update(std::set<int>{12, 2});
  BOOST_TEST((s == other));
  BOOST_TEST((collect(s) == std::vector<int>{2, 12}));  // insertion order
  const int first = s.pop();
  BOOST_TEST((first == 2));
  BOOST_TEST(s.pop() == 12);
  BOOST_CHECK_THROW(s.pop(), parex::KeyError);  // empty
  BOOST_TEST(str(s) == "set()");
  auto words = m.set<std::string>({"it's"});
  BOOST_TEST(str(words) == "{\"it's\"}");
}

BOOST_AUTO_TEST_CASE(sets_from_five_processes_hold_each_member_once) {
  parex::Manager m;
  auto s = m.set<int>();
  std::vector<parex::Process> ps;
  for (int i = 0; i < 5; ++i) ps.emplace_back(add_range_to_set, s, 1000 * (i + 1), 100);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  for (auto& p : ps) BOOST_TEST(mp_test::code_of(p) == 0);
  BOOST_TEST(s.size() == 510u);  // 5 x 100 of their own, 0 .. 9 once
  const auto all = s.to_set();
  BOOST_TEST(all.count(0) == 1u);
  BOOST_TEST(all.count(5099) == 1u);
  std::size_t n = 0;
  for (int x : s) n += all.count(x);  // iteration reads what to_set read
  BOOST_TEST(n == 510u);
}

BOOST_AUTO_TEST_CASE(list_iterates_reading_the_server_as_it_goes) {  // test_list_iter
  parex::Manager m;
  std::vector<int> ten(10);
  std::iota(ten.begin(), ten.end(), 0);
  auto a = m.list<int>(ten);
  auto it = a.begin();
  std::vector<int> got;
  for (; it != a.end(); ++it) got.push_back(*it);
  BOOST_TEST(got == ten);
  BOOST_TEST((it == a.end()));  // exhausted
  auto again = a.begin();
  a.set(0, 100);  // after iter(), before the first next(): seen
  BOOST_TEST(*again == 100);
  // Item by item (chunk 1) sees a change just ahead of it; a chunk already read does not.
  auto one = a.iterate(1).begin();
  BOOST_TEST(*one == 100);
  a.set(1, -1);
  ++one;
  BOOST_TEST(*one == -1);
  // A big list, in a child and here, chunked and item by item: never copied at once.
  std::vector<int> big(20000);
  std::iota(big.begin(), big.end(), 0);
  auto b = m.list<int>(big);
  long sum = 0;
  for (int x : b) sum += x;
  BOOST_TEST(sum == 19999L * 20000 / 2);
  parex::ProcessPoolExecutor pool(parex::ProcessPoolOptions{.max_workers = 2});
  BOOST_TEST(pool.submit(sum_by_iterating, b, 1000).result() == sum);
  BOOST_TEST(pool.submit(sum_by_iterating, m.list<int>(std::vector<int>{1, 2, 3}), 1).result() == 6);
  // Removing ahead of the position shifts the rest, as in Python.
  auto c = m.list<int>(std::vector<int>{1, 2, 3, 4});
  std::vector<int> seen;
  for (int x : c.iterate(1)) {
    seen.push_back(x);
    if (x == 1) c.remove(2);
  }
  BOOST_TEST((seen == std::vector<int>{1, 3, 4}));
  BOOST_TEST(collect(m.list<int>()).empty());
  BOOST_CHECK_THROW(collect(parex::ListProxy<int>{}), parex::InvalidStateError);  // refers to nothing
}

BOOST_AUTO_TEST_CASE(list_sorts_reverses_compares_and_holds_proxies) {  // test_list, test_list_proxy_in_list
  parex::Manager m;
  auto l = m.list<int>(std::vector<int>{3, -1, 2, 3, 0});
  BOOST_TEST(l.contains(-1));
  BOOST_TEST(!l.contains(7));
  l.sort();
  BOOST_TEST((l == std::vector<int>{-1, 0, 2, 3, 3}));
  l.sort(true);
  BOOST_TEST((l.to_vector() == std::vector<int>{3, 3, 2, 0, -1}));
  l.reverse();
  BOOST_TEST((l.to_vector() == std::vector<int>{-1, 0, 2, 3, 3}));
  BOOST_TEST((l.slice(2, 10) == std::vector<int>{2, 3, 3}));
  BOOST_TEST((l.slice(-2, -1) == std::vector<int>{3}));
  BOOST_TEST(l.slice(4, 1).empty());
  l.del(0);
  BOOST_CHECK_THROW(l.del(10), parex::IndexError);
  BOOST_TEST(l[0] == 0);
  auto same = m.list<int>(l.to_vector());
  BOOST_TEST((l == same));
  same.append(1);
  BOOST_TEST(!(l == same));
  auto words = m.list<std::string>(std::vector<std::string>{"pear", "apple", "fig"});
  words.sort();
  BOOST_TEST((words == std::vector<std::string>{"apple", "fig", "pear"}));
  // Stable, also reversed (Python's sort(reverse=True) keeps equal items' order).
  using P = std::pair<int, std::string>;
  auto pairs = m.list<P>(std::vector<P>{{1, "b"}, {0, "z"}, {1, "a"}});
  pairs.sort(true);
  BOOST_TEST((pairs.get(0) == P{1, "b"}));
  // Lists of list proxies.
  std::vector<parex::ListProxy<int>> inner;
  for (int i = 0; i < 3; ++i) inner.push_back(m.list<int>(std::vector<int>{0, 1, 2}));
  auto a = m.list<parex::ListProxy<int>>(inner);
  for (const auto& x : a) BOOST_TEST((x == std::vector<int>{0, 1, 2}));
  a.get(0).set(-1, 55);
  BOOST_TEST((a[0].to_vector() == std::vector<int>{0, 1, 55}));
  BOOST_TEST(a[1].pop() == 2);
  BOOST_TEST(a[1].size() == 2u);
  BOOST_TEST(a[2].size() == 3u);
}

BOOST_AUTO_TEST_CASE(dict_iterates_its_keys_and_refuses_a_change_of_size) {  // test_dict, test_dict_iter
  parex::Manager m;
  auto d = m.dict<int, std::string>();
  std::vector<int> indices{65, 66, 67, 68, 69};
  for (int i : indices) d.set(i, std::string(1, static_cast<char>(i)));
  std::map<int, std::string> expect;
  for (int i : indices) expect[i] = std::string(1, static_cast<char>(i));
  BOOST_TEST((d.copy() == expect));
  BOOST_TEST((d == expect));
  auto it = d.begin();
  std::vector<int> keys;
  for (; it != d.end(); ++it) keys.push_back(*it);
  BOOST_TEST(keys == indices);
  BOOST_TEST((it == d.end()));  // exhausted
  auto changed = d.begin();
  d.clear();
  BOOST_CHECK_THROW(*changed, std::runtime_error);  // "dictionary changed size during iteration"
  d.update({{1, "x"}, {2, "y"}});
  auto during = d.iterate(1).begin();
  BOOST_TEST(*during == 1);
  d.set(1, "value changed, size not");
  ++during;
  BOOST_TEST(*during == 2);
  d.set(3, "z");
  ++during;
  BOOST_CHECK_THROW(static_cast<void>(during == d.end()), std::runtime_error);
  // popitem: the last inserted; KeyError when empty.
  BOOST_TEST((d.popitem() == std::pair<int, std::string>{3, "z"}));
  BOOST_TEST(d.pop(42, "none") == "none");
  BOOST_TEST(d.get(42, "dflt") == "dflt");
  d.del(2);
  BOOST_CHECK_THROW(d.del(2), parex::KeyError);
  d.popitem();
  BOOST_CHECK_THROW(d.popitem(), parex::KeyError);
  // fromkeys, a dict from pairs, and a child that iterates.
  auto f = parex::DictProxy<std::string, int>::fromkeys(m, std::vector<std::string>{"a", "b", "c"}, 7);
  BOOST_TEST((f == std::map<std::string, int>{{"a", 7}, {"b", 7}, {"c", 7}}));
  auto zeros = parex::DictProxy<std::string, int>::fromkeys(m, std::vector<std::string>{"q"});
  BOOST_TEST(zeros.at("q") == 0);
  parex::ProcessPoolExecutor pool(parex::ProcessPoolOptions{.max_workers = 1});
  BOOST_TEST(pool.submit(keys_by_iterating, f).result() == "a,b,c");
  auto g = m.dict<std::string, int>(std::map<std::string, int>{{"a", 7}, {"b", 7}, {"c", 7}});
  BOOST_TEST((f == g));
}

BOOST_AUTO_TEST_CASE(nested_dict_proxies_reach_the_same_objects) {  // test_dict_proxy_nested
  parex::Manager m;
  using D = parex::DictProxy<std::string, int>;
  auto pets = m.dict<std::string, int>({{"ferrets", 2}, {"hamsters", 4}});
  auto supplies = m.dict<std::string, int>({{"water", 10}, {"feed", 3}});
  auto d = m.dict<std::string, D>({{"pets", pets}, {"supplies", supplies}});
  BOOST_TEST(d["supplies"]["water"] == 10);
  d["supplies"].set("blankets", 5);
  BOOST_TEST(supplies["blankets"] == 5);
  d.clear();
  BOOST_TEST(d.size() == 0u);
  BOOST_TEST(supplies["water"] == 10);
  auto l = m.list<D>(std::vector<D>{pets, supplies});
  l[0].set("marmots", 1);
  BOOST_TEST(pets["marmots"] == 1);
  BOOST_TEST(str(pets) == "{'ferrets': 2, 'hamsters': 4, 'marmots': 1}");
}

BOOST_AUTO_TEST_CASE(namespace_and_containers_print_as_python_does) {  // test_namespace
  parex::Manager m;
  auto n = m.Namespace();
  n.set("name", std::string("Bob"));
  n.set("job", std::string("Builder"));
  n.set("_hidden", std::string("hidden"));
  BOOST_TEST(n.get<std::string>("name") == "Bob");
  n.del("job");
  BOOST_TEST(str(n) == "Namespace(name='Bob')");
  BOOST_TEST(n.has("name"));
  BOOST_TEST(!n.has("job"));
  n.set("b", 1.0);
  n.set("a", std::vector<int>{1, 2});
  n.set("ok", true);
  BOOST_TEST(str(n) == "Namespace(a=[1, 2], b=1.0, name='Bob', ok=True)");
  BOOST_TEST(str(m.Namespace()) == "Namespace()");
  BOOST_TEST(str(m.list<std::string>(std::vector<std::string>{"a", "it's"})) == "['a', \"it's\"]");
  BOOST_TEST(str(m.dict<int, std::string>({{1, "A"}})) == "{1: 'A'}");
  BOOST_TEST(str(m.list<int>()) == "[]");
  BOOST_TEST(str(m.Value<double>(2.5)) == "Value(2.5)");
  BOOST_TEST(str(m.Array<int>({1, 2})) == "[1, 2]");
  // Python's repr rules, one by one.
  BOOST_TEST(repr(1.0) == "1.0");
  BOOST_TEST(repr(0.1) == "0.1");
  BOOST_TEST(repr(-0.0) == "-0.0");
  BOOST_TEST(repr(1e16) == "1e+16");
  BOOST_TEST(repr(1.5e-7) == "1.5e-07");
  BOOST_TEST(repr(123456.789) == "123456.789");
  BOOST_TEST(repr(0.0001) == "0.0001");
  BOOST_TEST(repr(std::numeric_limits<double>::quiet_NaN()) == "nan");
  BOOST_TEST(repr(-std::numeric_limits<double>::infinity()) == "-inf");
  BOOST_TEST(repr(std::string("a'b\"c\n\\")) == "'a\\'b\"c\\n\\\\'");
  BOOST_TEST(repr(std::string("\x01")) == "'\\x01'");
  BOOST_TEST(repr(std::make_pair(1, std::string("x"))) == "(1, 'x')");
  BOOST_TEST(repr(std::tuple<int>(1)) == "(1,)");
  BOOST_TEST(repr(std::optional<int>()) == "None");
  BOOST_TEST(repr(std::set<int>{}) == "set()");
  BOOST_TEST(repr(std::map<std::string, bool>{{"k", false}}) == "{'k': False}");
}

BOOST_AUTO_TEST_CASE(bounded_semaphore_barrier_and_pool_from_a_manager) {
  parex::Manager m;
  auto sem = m.BoundedSemaphore(2);
  BOOST_CHECK_THROW(sem.release(), parex::ValueError);  // past its initial value
  auto counts = m.dict<std::string, int>({{"now", 0}, {"peak", 0}});
  auto lock = m.Lock();
  std::vector<parex::Process> ps;
  for (int i = 0; i < 4; ++i) ps.emplace_back(hold_bounded, sem, counts, lock);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  for (auto& p : ps) BOOST_TEST(mp_test::code_of(p) == 0);
  BOOST_TEST(counts["peak"] <= 2);
  BOOST_TEST(counts["now"] == 0);
  BOOST_TEST(sem.get_value() == 2u);

  auto b = m.Barrier(3, barrier_action, 30s);
  BOOST_TEST(b.parties() == 3u);
  BOOST_TEST(b.n_waiting() == 0u);
  BOOST_TEST(!b.broken());
  auto indices = m.list<int>();
  ps.clear();
  for (int i = 0; i < 3; ++i) ps.emplace_back(wait_and_record, b, indices);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  auto got = indices.to_vector();
  std::sort(got.begin(), got.end());
  BOOST_TEST((got == std::vector<int>{0, 1, 2}));
  // A timeout breaks it for everyone; reset() mends it; abort() breaks it again.
  auto outcomes = m.list<int>();
  parex::Process lone(wait_expecting_broken, b, outcomes);
  lone.start();
  lone.join();
  BOOST_TEST((outcomes.to_vector() == std::vector<int>{1}));
  BOOST_TEST(b.broken());
  BOOST_CHECK_THROW(b.wait(), parex::BrokenBarrierError);
  b.reset();
  BOOST_TEST(!b.broken());
  b.abort();
  BOOST_CHECK_THROW(b.wait(1s), parex::BrokenBarrierError);

  auto pool = m.Pool(2);
  BOOST_TEST((pool.map(cube, std::vector<int>{1, 2, 3}) == std::vector<int>{1, 8, 27}));
  BOOST_TEST(pool.apply(cube, 4) == 64);
}

BOOST_AUTO_TEST_CASE(start_runs_the_initializer_in_the_server_first) {  // test_manager_initializer
  parex::Manager first;
  auto ns = first.Namespace();
  ns.set("test", 0);
  parex::SyncManager m;
  BOOST_CHECK_THROW(m.list<int>(), parex::InvalidStateError);  // not started
  BOOST_TEST(m.pid() == 0);
  m.start(count_initializer, ns);
  BOOST_TEST(ns.get<int>("test") == 1);
  BOOST_TEST(ns.get<int>("pid") == m.pid());  // ran in the server
  BOOST_CHECK_THROW(m.start(), parex::InvalidStateError);  // already started
  m.list<int>().append(1);
  m.shutdown();

  parex::SyncManager bad;
  try {
    bad.start(refusing_initializer, 42);
    BOOST_FAIL("start() did not throw");
  } catch (const std::invalid_argument& e) {  // the initializer's own type and message
    BOOST_TEST(std::string(e.what()).find("refused 42") != std::string::npos);
  }
  BOOST_TEST(bad.pid() == 0);  // no server left
  bad.start();                 // a later start may try again
  BOOST_TEST(bad.list<int>(std::vector<int>{1}).size() == 1u);
  BOOST_CHECK_THROW(first.start(), parex::InvalidStateError);  // a Manager() starts at once
}

BOOST_AUTO_TEST_CASE(a_new_manager_starts_at_once_at_the_tcp_address_of_one_just_shut) {  // test_rapid_restart
  std::string address;
  {
    parex::Manager m(parex::ManagerOptions{.address = "127.0.0.1:0", .authkey = "restart"});
    address = m.address();
    m.set<int>({1}).add(2);
  }
  parex::Manager again(parex::ManagerOptions{.address = address, .authkey = "restart"});
  BOOST_TEST(again.address() == address);
  BOOST_TEST(again.set<int>({5}).size() == 1u);
}

BOOST_AUTO_TEST_CASE(malformed_requests_to_the_new_methods_fail_alone) {
  parex::Manager m;
  auto s = m.set<int>({1, 2});
  auto l = m.list<int>(std::vector<int>{3, 1, 2});
  auto d = m.dict<int, int>({{1, 1}});
  const auto addr = parex::detail::SocketAddress::parse(m.address());
  const int fd = parex::detail::connect_to(addr, std::chrono::steady_clock::now() + 10s);
  parex::detail::client_handshake(fd, m.authkey(), m.address());
  auto status_of = [&](const parex::detail::Buffer& b) {
    BOOST_TEST(parex::detail::send_message(fd, b.bytes()));
    std::uint32_t len = 0;
    BOOST_TEST(parex::detail::read_exact(fd, &len, 4));
    std::vector<std::byte> reply(len);
    BOOST_TEST(parex::detail::read_exact(fd, reply.data(), len));
    return static_cast<int>(reply.at(0));
  };
  using parex::detail::put_call_header;
  using parex::detail::proxy_tag;
  const auto set_tag = proxy_tag<parex::SetProxy<int>>(), list_tag = proxy_tag<parex::ListProxy<int>>(),
             dict_tag = proxy_tag<parex::DictProxy<int, int>>();
  for (const char* method : {"union", "eq", "update", "issubset", "keys_after", "add", "nonsense"}) {
    parex::detail::Buffer b;  // no arguments, or a count of 2^40 items and none
    put_call_header(b, s.id(), set_tag, method);
    BOOST_TEST(status_of(b) == 1);
    parex::detail::Buffer c;
    put_call_header(c, s.id(), set_tag, method);
    c.put_varint(std::uint64_t{1} << 40);
    BOOST_TEST(status_of(c) == 1);
  }
  {  // a sort of a type no one registered, and of items that are not what they claim
    parex::detail::Buffer b;
    put_call_header(b, l.id(), list_tag, "sort");
    parex::detail::put_item<std::uint64_t>(b, 12345);
    parex::detail::put_item<std::string>(b, "Nothing");
    parex::detail::put_item<bool>(b, false);
    BOOST_TEST(status_of(b) == 1);
    l.sort();  // registers int's sorter
    parex::detail::Buffer junk;
    put_call_header(junk, l.id(), list_tag, "append");
    parex::detail::put_blob(junk, std::vector<std::byte>(3, std::byte{0xff}));
    BOOST_TEST(status_of(junk) == 0);  // stored as bytes: the server does not decode
    BOOST_CHECK_THROW(l.sort(), parex::Error);  // now it must decode: a typed error, list kept
    BOOST_TEST(l.size() == 4u);
    BOOST_CHECK_THROW(l.get(-1), parex::ProtocolError);  // the client cannot decode it either
    l.del(-1);
  }
  {  // chunks past the end or of 2^63 items; keys_after with a key that is not there
    parex::detail::Buffer b;
    put_call_header(b, l.id(), list_tag, "chunk");
    parex::detail::put_item<std::uint64_t>(b, std::uint64_t{1} << 62);
    parex::detail::put_item<std::uint64_t>(b, std::uint64_t{1} << 63);
    BOOST_TEST(status_of(b) == 0);
    parex::detail::Buffer k;
    put_call_header(k, d.id(), dict_tag, "keys_after");
    parex::detail::put_item<std::uint64_t>(k, 1);  // d's version after one insertion
    parex::detail::put_item<std::uint64_t>(k, 10);
    parex::detail::put_item<int>(k, 99);
    BOOST_TEST(status_of(k) == 1);
  }
  ::close(fd);
  l.sort();
  BOOST_TEST((l.to_vector() == std::vector<int>{1, 2, 3}));
  BOOST_TEST((s.to_set() == std::set<int>{1, 2}));
  BOOST_TEST(d.size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
