// Named shared memory, ShareableList, SharedMemoryManager, and Value/Array with a given lock
// (issue 21 item 6), after CPython's _TestSharedMemory and _TestValue/_TestArray.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "mp/mp_functions.hpp"
#include "support/helpers.hpp"

#include <parex/mp/shareable_list.hpp>
#include <parex/mp/shared_memory_manager.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ranges>
#include <sstream>
#include <string>
#include <system_error>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace test;
using namespace mp_test;
using Item = parex::ShareableList::Item;

namespace shm_test {
// A name of this test run's own ("test01_tsmb" + pid, as CPython's _new_shm_name).
std::string fresh(const std::string& prefix) { return prefix + "_" + std::to_string(::getpid()); }
bool exists(const std::string& name) { return std::filesystem::exists("/dev/shm/" + name); }
std::size_t entries_with(const std::string& prefix) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm"))
    if (e.path().filename().string().rfind(prefix, 0) == 0) ++n;
  return n;
}

void attach_then_write(std::string name, std::string data) {
  parex::SharedMemory m(name);
  std::memcpy(m.buf().data(), data.data(), data.size());
  m.close();
}
void write_through_handle(parex::SharedMemory m, std::string data) { std::memcpy(m.buf().data(), data.data(), data.size()); }

// Creates a named block, says so, and waits to be killed (or returns without unlinking).
void create_and_wait(std::string name, parex::Event made, bool wait_forever, bool track) {
  parex::SharedMemory m(name, true, 64, track);
  made.set();
  if (wait_forever) ::pause();
}

// Creates a named block, says so, waits for `go`, then returns: its exit removes what it left.
void create_then_end_on_go(std::string name, parex::Event made, parex::Event go) {
  parex::SharedMemory m(name, true, 64);
  made.set();
  go.wait(std::chrono::seconds(120));
}

// Starts a SharedMemoryManager, makes a block, tells its name, waits to be killed.
void manager_owner(parex::Queue<std::string> names) {
  parex::SharedMemoryManager smm;
  smm.start();
  parex::SharedMemory m = smm.SharedMemory(64);
  names.put(m.name());
  ::pause();
}

void set_items(parex::ShareableList sl) {
  sl[0] = 99;
  sl[-1] = "child";  // 5 bytes: fits the 8 of an int's slot
}
long sum_list(parex::ShareableList sl) {
  long s = 0;
  for (const Item& x : sl) s += static_cast<long>(x.get<std::int64_t>());
  return s;
}

void add_under_given_lock(parex::Value<int> v, parex::Lock lock, int times) {
  if (!(v.get_lock() == lock)) std::exit(3);  // the given lock travelled with the value
  for (int i = 0; i < times; ++i) {
    std::lock_guard g(v.get_lock());
    ++v.value();
  }
}
void add_through_lock(parex::Array<int> a, parex::RLock lock, int times) {
  for (int i = 0; i < times; ++i) {
    std::lock_guard g(lock);
    ++a[0];
  }
}

void throw_not_found(std::string name) { parex::SharedMemory m(name); }
}  // namespace shm_test
PAREX_REGISTER(shm_test::attach_then_write);
PAREX_REGISTER(shm_test::write_through_handle);
PAREX_REGISTER(shm_test::create_and_wait);
PAREX_REGISTER(shm_test::create_then_end_on_go);
PAREX_REGISTER(shm_test::manager_owner);
PAREX_REGISTER(shm_test::set_items);
PAREX_REGISTER(shm_test::sum_list);
PAREX_REGISTER(shm_test::add_under_given_lock);
PAREX_REGISTER(shm_test::add_through_lock);
PAREX_REGISTER(shm_test::throw_not_found);

using namespace shm_test;

namespace {
template <class T>
parex::detail::Buffer encoded(const T& v) {
  parex::detail::Buffer b;
  parex::detail::encode(b, v);
  return b;
}
template <class T>
T decoded(const parex::detail::Buffer& b) {
  parex::detail::Reader r(std::span<const std::byte>(b.data(), b.size()));
  return parex::detail::decode<T>(r);
}
std::string shown(const auto& x) {
  std::ostringstream os;
  os << x;
  return os.str();
}
}  // namespace

BOOST_AUTO_TEST_SUITE(mp_shared_memory)

// CPython test_shared_memory_basics.
BOOST_AUTO_TEST_CASE(a_named_block_is_created_attached_and_unlinked_as_in_python) {
  const std::string name = fresh("test01_tsmb");
  parex::SharedMemory sms(name, true, 512);
  BOOST_TEST(sms.name() == name);
  BOOST_TEST(sms.size() == 512u);
  BOOST_TEST(sms.buf().size() == 512u);
  BOOST_TEST(shown(sms).find(name) != std::string::npos);
  BOOST_TEST(shown(sms).find("512") != std::string::npos);
  BOOST_TEST(exists(name));
  sms.buf()[0] = std::byte{42};
  parex::SharedMemory also(name);
  BOOST_TEST((also.buf()[0] == std::byte{42}));
  also.close();
  BOOST_TEST(also.buf().empty());
  parex::SharedMemory same(name, false, 20 * sms.size());  // an attach: the block's own size
  BOOST_TEST(same.size() == 512u);
  same.close();
  // The bytes are the file's: what an unrelated program sees.
  std::ifstream file("/dev/shm/" + name, std::ios::binary);
  BOOST_TEST(file.get() == 42);

  expect_error<parex::ValueError>([] { return parex::SharedMemory(std::nullopt, true, -2); });
  expect_error<parex::ValueError>([] { return parex::SharedMemory(std::nullopt, false); });
  const auto taken = expect_error<parex::FileExistsError>([&] { return parex::SharedMemory(name, true, 512); });
  BOOST_TEST((taken.code() == std::errc::file_exists));
  try {
    parex::SharedMemory again(name, true, 512);
    BOOST_FAIL("a taken name was created twice");
  } catch (const std::system_error& e) {  // OSError catches it too
    BOOST_TEST(e.code().value() == EEXIST);
  }

  const std::string dbl = fresh("test01_dblunlink");
  parex::SharedMemory uno(dbl, true, 5000);
  BOOST_TEST(uno.size() >= 5000u);
  parex::SharedMemory duo(dbl);
  duo.unlink();
  duo.close();
  uno.close();
  const auto gone = expect_error<parex::FileNotFoundError>([&] { uno.unlink(); });
  BOOST_TEST((gone.code() == std::errc::no_such_file_or_directory));
  BOOST_TEST(!exists(dbl));

  expect_error<parex::FileNotFoundError>([] { return parex::SharedMemory("test01_notthere"); });
  sms.close();
  sms.unlink();
  BOOST_TEST(!exists(name));
  expect_error<parex::FileNotFoundError>([&] { return parex::SharedMemory(name); });
}

// CPython test_invalid_shared_memory_cration, and names the system refuses.
BOOST_AUTO_TEST_CASE(bad_sizes_and_names_are_refused_with_pythons_errors) {
  expect_error<parex::ValueError>([] { return parex::SharedMemory(std::nullopt, true, -1); });
  expect_error<parex::ValueError>([] { return parex::SharedMemory(std::nullopt, true, 0); });
  expect_error<parex::ValueError>([] { return parex::SharedMemory(std::nullopt, true); });
  const std::string name = fresh("test_bad");
  expect_error<parex::ValueError>([&] { return parex::SharedMemory(name, true, 0); });
  expect_error<parex::ValueError>([&] { return parex::SharedMemory(name, true, -5); });
  expect_error<parex::ValueError>([&] { return parex::SharedMemory(name, false, -5); });
  expect_error<parex::ValueError>([] { return parex::SharedMemory("", true, 10); });
  expect_error<parex::ValueError>([] { return parex::SharedMemory(std::string("a\0b", 3), true, 10); });
  expect_error<parex::ValueError>([] { return parex::SharedMemory("two\nlines", true, 10); });
  expect_error<std::system_error>([] { return parex::SharedMemory("a/b", true, 10); });
  expect_error<std::system_error>([] { return parex::SharedMemory(std::string(300, 'x'), true, 10); });
  BOOST_TEST(!exists(name));
}

// CPython test_shared_memory_pickle_unpickle(_dead_object): a handle is the same block;
// one decoded after the block was unlinked is FileNotFoundError.
BOOST_AUTO_TEST_CASE(a_handle_is_the_same_block_and_a_dead_one_is_file_not_found) {
  for (bool named : {true, false}) {
    const std::string name = fresh("test_pickle");
    parex::SharedMemory sms = named ? parex::SharedMemory(name, true, 512) : parex::SharedMemory(512);
    std::memcpy(sms.buf().data(), "pickle", 6);
    parex::SharedMemory sms2 = round_trip(sms);
    BOOST_TEST(sms2.name() == sms.name());
    std::memcpy(sms.buf().data(), "newval", 6);
    BOOST_TEST(std::memcmp(sms2.buf().data(), "newval", 6) == 0);
    std::memcpy(sms2.buf().data(), "oldval", 6);
    BOOST_TEST(std::memcmp(sms.buf().data(), "oldval", 6) == 0);
    const auto b = encoded(sms);
    sms.close();
    sms.unlink();
    expect_error<parex::FileNotFoundError>([&] { return decoded<parex::SharedMemory>(b); });
    BOOST_TEST(!exists(name));
  }
}

// CPython test_shared_memory_across_processes: by name and by handle, named and anonymous.
BOOST_AUTO_TEST_CASE(other_processes_attach_by_name_and_by_handle) {
  for (bool named : {true, false}) {
    parex::SharedMemory sms = named ? parex::SharedMemory(fresh("test_across"), true, 512) : parex::SharedMemory(512);
    parex::Process p(attach_then_write, sms.name(), std::string("howdy"));
    p.start();
    p.join();
    BOOST_TEST(code_of(p) == 0);
    BOOST_TEST(std::string(reinterpret_cast<const char*>(sms.buf().data()), 5) == "howdy");
    parex::Process q(write_through_handle, sms, std::string("HELLO"));
    q.start();
    q.join();
    BOOST_TEST(code_of(q) == 0);
    BOOST_TEST(std::string(reinterpret_cast<const char*>(sms.buf().data()), 5) == "HELLO");
    parex::ProcessPoolExecutor pool{{.max_workers = 1}};
    pool.submit(attach_then_write, sms.name(), std::string("pool!")).result(deadlock_timeout);
    BOOST_TEST(std::string(reinterpret_cast<const char*>(sms.buf().data()), 5) == "pool!");
    if (named) sms.unlink();
  }
}

// FileNotFoundError and FileExistsError cross a process boundary as themselves.
BOOST_AUTO_TEST_CASE(file_errors_cross_processes_as_themselves) {
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  auto f = pool.submit(throw_not_found, std::string("test_never_made"));
  const auto e = expect_error<parex::FileNotFoundError>([&] { return f.result(deadlock_timeout); });
  BOOST_TEST((e.code() == std::errc::no_such_file_or_directory));
  BOOST_TEST(std::string(e.what()).find("test_never_made") != std::string::npos);
}

// Python's resource tracker: a block its creator never unlinked goes when the creator
// ends - at a normal exit, and after a SIGKILL - unless track = false.
BOOST_AUTO_TEST_CASE(a_creator_that_ends_without_unlinking_leaves_no_block) {
  const std::string exits = fresh("test_exit"), killed = fresh("test_killed"), kept = fresh("test_untracked");
  parex::Event made1, made2, made3;
  parex::Process normal(create_and_wait, exits, made1, false, true);
  parex::Process victim(create_and_wait, killed, made2, true, true);
  parex::Process untracked(create_and_wait, kept, made3, false, false);
  normal.start();
  victim.start();
  untracked.start();
  BOOST_REQUIRE(made1.wait(deadlock_timeout));
  BOOST_REQUIRE(made2.wait(deadlock_timeout));
  BOOST_REQUIRE(made3.wait(deadlock_timeout));
  BOOST_TEST(exists(killed));
  normal.join();
  untracked.join();
  BOOST_TEST(code_of(normal) == 0);
  BOOST_TEST(!exists(exits));  // at exit, before join returned
  BOOST_TEST(exists(kept));
  parex::SharedMemory(kept).unlink();
  victim.kill();
  victim.join();
  BOOST_TEST(code_of(victim) == -SIGKILL);
  BOOST_TEST(eventually([&] { return !exists(killed); }));  // the tracker's work
  expect_error<parex::FileNotFoundError>([&] { return parex::SharedMemory(killed); });
}

// A creator's end removes only the block it made: a name another process unlinked and made
// again since is someone else's (the exit handler checks the inode, as the tracker does).
BOOST_AUTO_TEST_CASE(a_name_made_again_by_another_survives_the_first_creators_exit) {
  const std::string n = fresh("test_remade");
  parex::Event made, go;
  parex::Process first(create_then_end_on_go, n, made, go);
  first.start();
  BOOST_REQUIRE(made.wait(deadlock_timeout));
  parex::SharedMemory(n).unlink();
  parex::SharedMemory again(n, true, 128, false);
  go.set();
  first.join();
  BOOST_TEST(code_of(first) == 0);
  BOOST_TEST(exists(n));
  BOOST_TEST(parex::SharedMemory(n).size() == 128u);
  again.unlink();
}

// A fork's child tracks its own blocks with a tracker of its own: a block it made and left
// goes when the child ends (also by _exit), and the parent's block stays the parent's.
BOOST_AUTO_TEST_CASE(a_forked_child_tracks_its_own_blocks_not_its_parents) {
  const std::string mine = fresh("test_fork_parent"), childs = fresh("test_fork_child");
  parex::SharedMemory parent_block(mine, true, 64);  // starts this process's tracker
  const pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    try {
      parex::SharedMemory left(childs, true, 64);
      ::_exit(0);  // no exit handler: the child's tracker alone can remove it
    } catch (...) {
      ::_exit(1);
    }
  }
  int status = 0;
  BOOST_REQUIRE(::waitpid(pid, &status, 0) == pid);
  BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  BOOST_TEST(eventually([&] { return !exists(childs); }));
  BOOST_TEST(exists(mine));
  parent_block.unlink();
}

BOOST_AUTO_TEST_CASE(creating_and_unlinking_many_blocks_leaks_no_file_fd_or_mapping) {
  const std::string prefix = fresh("test_leak");
  { parex::SharedMemory warm(prefix + "_warm", true, 10); warm.unlink(); }  // starts the tracker
  const std::size_t fds = open_fds(), files = entries_with(prefix);
  for (int i = 0; i < 300; ++i) {
    const std::string n = prefix + "_" + std::to_string(i);
    parex::SharedMemory m(n, true, 4096);
    parex::SharedMemory a(n);
    BOOST_REQUIRE(a.buf().data() != nullptr);
    auto h = round_trip(m);
    m.unlink();
  }
  BOOST_TEST(open_fds() == fds);
  BOOST_TEST(entries_with(prefix) == files);
}

// CPython test_shared_memory_ShareableList_basics.
BOOST_AUTO_TEST_CASE(shareable_list_basics_as_in_python) {
  parex::ShareableList sl{"howdy", parex::Bytes{"HoWdY"}, -273.154, 100, nullptr, true, 42};
  BOOST_TEST(shown(sl).find(sl.shm.name()) != std::string::npos);
  BOOST_TEST(shown(sl).find("['howdy', b'HoWdY', -273.154, 100, None, True, 42]") != std::string::npos);
  expect_error<parex::IndexError>([&] { return sl.get(7); });
  expect_error<parex::IndexError>([&] { sl[7] = 2; });
  expect_error<parex::IndexError>([&] { return sl.get(-8); });
  const std::string before = sl.format();
  sl[0] = "howdy";
  BOOST_TEST(sl.format() == before);
  BOOST_TEST(sl.format() == "8s8sdqxxxxxx?xxxxxxxx?q");
  BOOST_TEST(sl.size() == 7u);
  expect_error<parex::ValueError>([&] { return sl.index("100"); });
  BOOST_TEST(sl.index(100) == 3u);
  BOOST_TEST(sl[0] == "howdy");
  BOOST_TEST(sl[-2] == true);
  BOOST_TEST((sl.to_vector() == std::vector<Item>{"howdy", parex::Bytes{"HoWdY"}, -273.154, 100, nullptr, true, 42}));
  sl[3] = 42;
  BOOST_TEST(sl[3] == 42);
  sl[4] = "some";
  BOOST_TEST(sl[4] == "some");
  BOOST_TEST(sl.format() == "8s8sdq8sxxxxxxx?q");
  const auto e = expect_error<parex::ValueError>([&] { sl[4] = "far too many"; });
  BOOST_TEST(std::string(e.what()).find("exceeds available storage") != std::string::npos);
  BOOST_TEST(sl[4] == "some");
  sl[0] = "encodés";
  BOOST_TEST(sl[0] == "encodés");
  BOOST_TEST(sl[1] == parex::Bytes{"HoWdY"});
  expect_error<parex::ValueError>([&] { sl[0] = "encodées"; });
  expect_error<parex::ValueError>([&] { sl[1] = parex::Bytes{"123456789"}; });
  BOOST_TEST(sl[1] == parex::Bytes{"HoWdY"});
  BOOST_TEST(sl.count(42) == 2u);
  BOOST_TEST(sl.count(parex::Bytes{"HoWdY"}) == 1u);
  BOOST_TEST(sl.count(parex::Bytes{"adios"}) == 0u);
  BOOST_TEST(sl.count("HoWdY") == 0u);  // a str is not bytes

  const std::string dup = fresh("test03_duplicate");
  parex::ShareableList copy(sl, dup);
  BOOST_TEST(copy.shm.name() == dup);
  BOOST_TEST(sl.shm.name() != copy.shm.name());
  BOOST_TEST((sl.to_vector() == copy.to_vector()));
  BOOST_TEST(sl.format() == copy.format());
  copy[-1] = 77;
  BOOST_TEST(copy[-1] == 77);
  BOOST_TEST(!(sl[-1] == 77));
  copy.shm.close();
  copy.shm.unlink();

  parex::ShareableList tethered(sl.shm.name());
  BOOST_TEST(tethered.shm.name() == sl.shm.name());
  tethered[-1] = 880;
  BOOST_TEST(sl[-1] == 880);
  tethered.shm.close();

  parex::ShareableList empty;
  BOOST_TEST(empty.size() == 0u);
  BOOST_TEST(empty.format() == "");
  BOOST_TEST(empty.count("any") == 0u);
  expect_error<parex::ValueError>([&] { return empty.index(nullptr); });
  BOOST_TEST(sl.get(2) == -273.154);
  BOOST_TEST(sl.get(2).get<double>() == -273.154);
}

// CPython test_shared_memory_ShareableList_pickling(_dead_object), and a list that
// travels to a Process, a pool call and through a Queue as the same memory.
BOOST_AUTO_TEST_CASE(a_shareable_list_travels_as_the_same_memory) {
  const std::string name = fresh("test_sl_pickle");
  parex::ShareableList sl(std::views::iota(0, 10), name);
  parex::ShareableList other = round_trip(sl);
  BOOST_TEST(other[-1] == 9);
  other[4] = "changed";
  BOOST_TEST(sl[4] == "changed");
  sl[3] = "newvalue";
  BOOST_TEST(other[3] == "newvalue");
  parex::ShareableList larger(std::views::iota(0, 400));
  BOOST_TEST(encoded(larger).size() == encoded(parex::ShareableList(std::views::iota(0, 10))).size());

  parex::ShareableList numbers(std::vector<int>{1, 2, 3, 4}, fresh("test_sl_nums"));
  parex::ProcessPoolExecutor pool{{.max_workers = 1}};
  BOOST_TEST(pool.submit(sum_list, numbers).result(deadlock_timeout) == 10);
  parex::Process p(set_items, numbers);
  p.start();
  p.join();
  BOOST_TEST(code_of(p) == 0);
  BOOST_TEST(numbers[0] == 99);
  BOOST_TEST(numbers[3] == "child");
  numbers.shm.unlink();

  parex::Queue<parex::ShareableList> q;
  q.put(larger);
  parex::ShareableList got = q.get(deadlock_timeout);
  got[399] = -1;
  BOOST_TEST(larger[399] == -1);

  const auto b = encoded(sl);
  sl.shm.close();
  sl.shm.unlink();
  expect_error<parex::FileNotFoundError>([&] { return decoded<parex::ShareableList>(b); });
  expect_error<parex::FileNotFoundError>([&] { return parex::ShareableList(name); });
}

BOOST_AUTO_TEST_CASE(a_block_that_holds_no_list_is_refused) {
  parex::SharedMemory junk(64);
  std::memset(junk.buf().data(), 0xff, 64);
  expect_error<parex::ValueError>([&] { return parex::ShareableList(junk); });
  expect_error<parex::ValueError>([] { return parex::ShareableList(parex::SharedMemory(8)); });
  expect_error<parex::FileNotFoundError>([] { return parex::ShareableList("test_no_such_list"); });
  expect_error<parex::ValueError>([] { return Item(std::uint64_t{1} << 63); });
  BOOST_TEST(Item(std::uint64_t{1} << 62) == (std::int64_t{1} << 62));
  // A str's slot is Python's (by characters) unless its UTF-8 bytes need more.
  BOOST_TEST(parex::ShareableList{"encodés"}.format() == "8s");
  BOOST_TEST(parex::ShareableList{"ééééé"}.format() == "16s");
  BOOST_TEST(parex::ShareableList{"ééééé"}[0] == "ééééé");
}

// CPython test_shared_memory_SharedMemoryManager_basics.
BOOST_AUTO_TEST_CASE(a_shared_memory_manager_owns_its_blocks_until_shutdown) {
  parex::SharedMemoryManager smm1;
  expect_error<parex::ValueError>([&] { return smm1.SharedMemory(9); });
  smm1.start();
  std::vector<parex::ShareableList> lol;
  for (int i = 5; i < 10; ++i) lol.push_back(smm1.ShareableList(std::views::iota(0, i)));
  std::vector<parex::SharedMemory> lom;
  for (int j = 32; j < 128; j += 16) lom.push_back(smm1.SharedMemory(j));
  parex::ShareableList doppleganger_list0(lol[0].shm.name());
  BOOST_TEST(doppleganger_list0.size() == 5u);
  BOOST_TEST(doppleganger_list0[4] == 4);
  parex::SharedMemory doppleganger_shm0(lom[0].name());
  BOOST_TEST(doppleganger_shm0.buf().size() >= 32u);
  expect_error<parex::ValueError>([&] { return smm1.SharedMemory(0); });
  const std::string held = lom[0].name();
  BOOST_TEST(exists(held));
  smm1.shutdown();
  expect_error<parex::FileNotFoundError>([&] { return parex::SharedMemory(held); });
  doppleganger_shm0.buf()[0] = std::byte{1};  // mappings stay valid
  std::string held_list;
  {
    parex::SharedMemoryManager smm2;
    smm2.start();
    parex::ShareableList sl = smm2.ShareableList({"h", "o", "w", "d", "y"});
    parex::SharedMemory shm = smm2.SharedMemory(128);
    held_list = sl.shm.name();
    expect_error<parex::InvalidStateError>([&] { smm2.start(); });
  }
  expect_error<parex::FileNotFoundError>([&] { return parex::ShareableList(held_list); });
}

// Python unlinks at the server's end; here also when the owner is SIGKILLed.
BOOST_AUTO_TEST_CASE(a_killed_manager_owner_leaves_no_block) {
  parex::Queue<std::string> names;
  parex::Process owner(manager_owner, names);
  owner.start();
  const std::string name = names.get(deadlock_timeout);
  BOOST_TEST(exists(name));
  owner.kill();
  owner.join();
  BOOST_TEST(eventually([&] { return !exists(name); }));
}

// CPython _TestValue/_TestArray test_getobj_getlock, and the given lock shared by processes.
BOOST_AUTO_TEST_CASE(value_and_array_take_pythons_lock_argument) {
  parex::Value<int> val1(5);
  BOOST_TEST(val1.get_obj().value() == 5);
  val1.get_obj().value() = 6;
  BOOST_TEST(val1.value() == 6);
  parex::Value<int> val2(5, nullptr);
  { std::lock_guard g(val2.get_lock()); }
  parex::Lock lock;
  parex::Value<int> val3(5, lock);
  BOOST_TEST((val3.get_lock() == lock));
  BOOST_TEST(!(val1.get_lock() == lock));
  parex::Value<int> val4(5, false);
  expect_error<parex::AttributeError>([&] { return &val4.get_lock(); });
  expect_error<parex::AttributeError>([&] { return val4.get_obj(); });
  BOOST_TEST(round_trip(val4).value() == 5);
  expect_error<parex::AttributeError>([&] { return &round_trip(val4).get_lock(); });

  parex::RLock rlock;
  parex::Array<int> arr(std::vector<int>{0, 1, 2}, rlock);
  BOOST_TEST((arr.get_lock() == rlock));
  BOOST_TEST((round_trip(arr).get_lock() == rlock));
  parex::RawArray<int> raw = arr.get_obj();
  raw[1] = 10;
  BOOST_TEST(arr[1] == 10);
  parex::Array<int> arr4(10, false);
  expect_error<parex::AttributeError>([&] { return &arr4.get_lock(); });
  parex::Array<double> arr5({1.0, 2.0}, true);
  BOOST_TEST(arr5.get_lock().count() == 0u);

  std::vector<parex::Process> ps;
  for (int i = 0; i < 3; ++i) ps.emplace_back(add_under_given_lock, val3, lock, 500);
  for (int i = 0; i < 2; ++i) ps.emplace_back(add_through_lock, arr, rlock, 500);
  for (auto& p : ps) p.start();
  for (int i = 0; i < 500; ++i) {
    std::lock_guard g(lock);
    ++val3.value();
  }
  for (auto& p : ps) p.join();
  for (auto& p : ps) BOOST_TEST(code_of(p) == 0);
  BOOST_TEST(val3.value() == 5 + 4 * 500);
  BOOST_TEST(arr[0] == 2 * 500);
}

BOOST_AUTO_TEST_SUITE_END()
