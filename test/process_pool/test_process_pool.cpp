// ProcessPoolExecutor beyond the shared contract: what crosses the wire, registration,
// typed errors, initializers, worker recycling, signals, large payloads.
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

#include "support/contract_functions.hpp"
#include "support/helpers.hpp"

#include <boost/serialization/access.hpp>

#include <csignal>
#include <filesystem>
#include <future>
#include <map>
#include <numeric>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <system_error>
#include <tuple>
#include <unistd.h>
#include <variant>
#include <vector>

using namespace test;
using parex::ProcessPoolExecutor;

// ---- types ---------------------------------------------------------------------------------

struct Point {  // public member serialize
  double x = 0, y = 0;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar & x & y;
  }
  friend bool operator==(const Point&, const Point&) = default;
};

class Account {  // private serialize, the Boost idiom
 public:
  Account() = default;
  Account(std::string owner, long cents) : owner_(std::move(owner)), cents_(cents) {}
  const std::string& owner() const { return owner_; }
  long cents() const { return cents_; }

 private:
  friend class boost::serialization::access;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar & owner_ & cents_;
  }
  std::string owner_;
  long cents_ = 0;
};

namespace geo {
struct Box {  // a free serialize, found by argument-dependent lookup
  Point lo, hi;
};
template <class Ar>
void serialize(Ar& ar, Box& b, unsigned) {
  ar & b.lo & b.hi;
}
}  // namespace geo

struct Pixel {  // plain bytes
  unsigned char r, g, b, a;
};
PAREX_BITWISE(Pixel);

static_assert(parex::Serializable<Point>);
static_assert(parex::Serializable<Account>);
static_assert(parex::Serializable<geo::Box>);
static_assert(parex::Serializable<Pixel>);
static_assert(parex::Serializable<std::map<std::string, std::vector<std::optional<int>>>>);
static_assert(parex::Serializable<std::vector<Point>>);
static_assert(!parex::Serializable<int*>);
static_assert(!parex::Serializable<std::tuple<Point, int>>);  // Boost 1.81 has no std::tuple support

Point midpoint(const geo::Box& b) { return {(b.lo.x + b.hi.x) / 2, (b.lo.y + b.hi.y) / 2}; }
PAREX_REGISTER(midpoint);
Account deposit(Account a, long cents) { return {a.owner(), a.cents() + cents}; }
PAREX_REGISTER(deposit);
Pixel invert(Pixel p) { return {static_cast<unsigned char>(255 - p.r), static_cast<unsigned char>(255 - p.g),
                                static_cast<unsigned char>(255 - p.b), p.a}; }
PAREX_REGISTER(invert);
std::vector<Point> shift_all(std::vector<Point> ps, double dx) {
  for (auto& p : ps) p.x += dx;
  return ps;
}
PAREX_REGISTER(shift_all);
using Nested = std::map<std::string, std::vector<std::optional<int>>>;
Nested nested_echo(Nested n) { return n; }
PAREX_REGISTER(nested_echo);
std::tuple<int, std::string, std::variant<int, std::string>, std::set<long>> mixed(
    std::pair<int, std::string> p, std::variant<int, std::string> v, std::set<long> s) {
  return {p.first * 2, p.second + "!", v, s};
}
PAREX_REGISTER(mixed);
std::uint64_t checksum(const std::vector<unsigned char>& v) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : v) h = (h ^ c) * 1099511628211ull;
  return h + v.size();
}
PAREX_REGISTER(checksum);
std::string repeat_char(char c, std::size_t n) { return std::string(n, c); }
PAREX_REGISTER(repeat_char);

// Registration forms: namespaces, overloads, lambdas, function objects.
namespace maths {
int cube(int x) { return x * x * x; }
PAREX_REGISTER(maths::cube);
}  // namespace maths
int scale(int x, int k) { return x * k; }
double scale(double x, double k) { return x * k; }
PAREX_REGISTER_AS("scale_i", static_cast<int (*)(int, int)>(scale));
PAREX_REGISTER_AS("scale_d", static_cast<double (*)(double, double)>(scale));
const auto twice = [](int x) { return 2 * x; };
PAREX_REGISTER_AS("twice", twice);
struct Negate {
  int operator()(int x) const { return -x; }
};
PAREX_REGISTER_AS("negate", Negate{});

// Exceptions.
struct QuotaExceeded : std::runtime_error {
  using std::runtime_error::runtime_error;
};
PAREX_REGISTER_EXCEPTION(QuotaExceeded);
struct NotRegisteredError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
int throw_kind(int kind) {
  switch (kind) {
    case 0: throw std::invalid_argument("bad argument");
    case 1: throw std::out_of_range("index 9");
    case 2: throw std::overflow_error("too big");
    case 3: throw std::system_error(std::make_error_code(std::errc::permission_denied), "opening /secret");
    case 4: throw QuotaExceeded("quota of 10 reached");
    case 5: throw NotRegisteredError("nobody registered me");
    case 6: throw 42;
    case 7: throw std::bad_alloc();
    case 8: throw parex::TimeoutError("inner timeout");
    case 9: throw std::future_error(std::future_errc::broken_promise);
    default: return kind;
  }
}
PAREX_REGISTER(throw_kind);

// Initializers and worker state.
int g_worker_setting = 0;
void set_worker_setting(int v) { g_worker_setting = v; }
PAREX_REGISTER(set_worker_setting);
int get_worker_setting() { return g_worker_setting; }
PAREX_REGISTER(get_worker_setting);
void failing_initializer() { throw std::runtime_error("cannot open the model file"); }
PAREX_REGISTER(failing_initializer);
void crashing_initializer() { std::abort(); }
PAREX_REGISTER(crashing_initializer);
int worker_pid() { return static_cast<int>(::getpid()); }
PAREX_REGISTER(worker_pid);

int unregistered_square(int x) { return x * x; }  // deliberately not registered

BOOST_AUTO_TEST_SUITE(process_pool)

BOOST_AUTO_TEST_CASE(user_types_and_std_containers_cross_the_wire) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  const Point m = pool.submit(midpoint, geo::Box{{0, 0}, {2, 4}}).result(deadlock_timeout);
  BOOST_TEST((m == Point{1, 2}));
  const Account a = pool.submit(deposit, Account("ada", 100), 25L).result(deadlock_timeout);
  BOOST_TEST(a.owner() == "ada");
  BOOST_TEST(a.cents() == 125);
  const Pixel p = pool.submit(invert, Pixel{0, 10, 255, 7}).result(deadlock_timeout);
  BOOST_TEST((p.r == 255 && p.g == 245 && p.b == 0 && p.a == 7));
  const auto moved = pool.submit(shift_all, std::vector<Point>{{1, 1}, {2, 2}}, 0.5).result(deadlock_timeout);
  BOOST_TEST((moved == std::vector<Point>{{1.5, 1}, {2.5, 2}}));
  const Nested n{{"a", {1, std::nullopt, 3}}, {"b", {}}};
  BOOST_TEST((pool.submit(nested_echo, n).result(deadlock_timeout) == n));
  const auto [i, s, v, set] = pool.submit(mixed, std::pair<int, std::string>{21, "hi"},
                                          std::variant<int, std::string>(std::string("alt")), std::set<long>{3, 1})
                                  .result(deadlock_timeout);
  BOOST_TEST(i == 42);
  BOOST_TEST(s == "hi!");
  BOOST_TEST(std::get<std::string>(v) == "alt");
  BOOST_TEST((set == std::set<long>{1, 3}));
  BOOST_TEST(pool.submit(repeat_char, 'z', std::size_t{300}).result(deadlock_timeout) == std::string(300, 'z'));
}

BOOST_AUTO_TEST_CASE(every_registration_form_runs) {
  ProcessPoolExecutor pool{{.max_workers = 1}};
  BOOST_TEST(pool.submit(maths::cube, 3).result(deadlock_timeout) == 27);
  BOOST_TEST(pool.submit(static_cast<int (*)(int, int)>(scale), 6, 7).result(deadlock_timeout) == 42);
  BOOST_TEST(pool.submit(static_cast<double (*)(double, double)>(scale), 1.5, 2.0).result(deadlock_timeout) == 3.0);
  BOOST_TEST(pool.submit(twice, 21).result(deadlock_timeout) == 42);
  BOOST_TEST(pool.submit(Negate{}, 5).result(deadlock_timeout) == -5);
  std::vector<int> out;
  for (int y : pool.map(twice, std::vector{1, 2, 3}, {.chunksize = 2})) out.push_back(y);
  BOOST_TEST((out == std::vector<int>{2, 4, 6}));
}

BOOST_AUTO_TEST_CASE(what_cannot_be_sent_is_a_typed_error_through_executor_ref) {
  ProcessPoolExecutor pool{{.max_workers = 1}};
  parex::Executor& ex = pool;
  const int k = 3;
  // A lambda with captures: a compile error on ProcessPoolExecutor, a typed error here.
  const auto captures = expect_error<parex::NotSerializable>([&] { ex.submit([k](int x) { return x * k; }, 1); });
  BOOST_TEST(std::string(captures.what()).find("captures") != std::string::npos);
  BOOST_CHECK_THROW(ex.submit([](auto x) { return x; }, 1), parex::NotSerializable);  // generic lambda
  BOOST_CHECK_THROW(ex.submit([](int* p) { return *p; }, nullptr), parex::NotSerializable);
  // An unregistered function: named, with the registered names nearest to it.
  const std::string msg = expect_error<parex::UnregisteredFunction>([&] { ex.submit(unregistered_square, 2); }).what();
  BOOST_TEST(msg.find("unregistered function 'unregistered_square'") != std::string::npos, msg);
  BOOST_TEST(msg.find("PAREX_REGISTER(unregistered_square)") != std::string::npos, msg);
  BOOST_TEST(msg.find("registered: ") != std::string::npos, msg);
  BOOST_CHECK_THROW(ex.map(unregistered_square, std::vector{1, 2}), parex::UnregisteredFunction);
  BOOST_TEST(ex.submit(square, 4).result(deadlock_timeout) == 16);  // the pool is unharmed
}

BOOST_AUTO_TEST_CASE(nearest_registered_names) {
  auto& reg = parex::detail::Registry::global();
  const std::string near = reg.nearest("sqaure", 3);
  BOOST_TEST(near.rfind("square", 0) == 0u, near);
}

BOOST_AUTO_TEST_CASE(duplicate_names_fail_at_startup_naming_both) {
  parex::detail::Registry reg;
  auto entry = [](const char* name, const void* target, int line) {
    parex::detail::FunctionEntry e;
    e.name = name;
    e.target = target;
    e.file = "app.cpp";
    e.line = line;
    return e;
  };
  reg.add(entry("f", reinterpret_cast<const void*>(&square), 10));
  reg.add(entry("f", reinterpret_cast<const void*>(&square), 10));  // the same one, seen twice: fine
  reg.add(entry("f", reinterpret_cast<const void*>(&worker_pid), 20));
  const std::string msg = expect_error<parex::Error>([&] { reg.freeze(); }).what();
  BOOST_TEST(msg.find("'f'") != std::string::npos, msg);
  BOOST_TEST(msg.find("app.cpp:10") != std::string::npos, msg);
  BOOST_TEST(msg.find("app.cpp:20") != std::string::npos, msg);
}

BOOST_AUTO_TEST_CASE(exceptions_cross_with_their_type) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  auto fs = std::vector<parex::Future<int>>{};
  for (int k = 0; k <= 10; ++k) fs.push_back(pool.submit(throw_kind, k));
  BOOST_CHECK_THROW(fs[0].result(deadlock_timeout), std::invalid_argument);
  BOOST_CHECK_THROW(fs[1].result(deadlock_timeout), std::out_of_range);
  BOOST_CHECK_THROW(fs[2].result(deadlock_timeout), std::overflow_error);
  const auto denied = expect_error<std::system_error>([&] { fs[3].result(deadlock_timeout); });
  BOOST_TEST((denied.code() == std::make_error_code(std::errc::permission_denied)));
  BOOST_TEST(std::string(denied.what()).find("opening /secret") == 0u, denied.what());
  const auto quota = expect_error<QuotaExceeded>([&] { fs[4].result(deadlock_timeout); });
  BOOST_TEST(std::string(quota.what()) == "quota of 10 reached");
  const auto unregistered = expect_error<parex::RemoteError>([&] { fs[5].result(deadlock_timeout); });
  BOOST_TEST(unregistered.type() == "NotRegisteredError");
  BOOST_TEST(unregistered.remote_what() == "nobody registered me");
  const auto thrown_int = expect_error<parex::RemoteError>([&] { fs[6].result(deadlock_timeout); });
  BOOST_TEST(thrown_int.type() == "int");
  BOOST_CHECK_THROW(fs[7].result(deadlock_timeout), std::bad_alloc);
  BOOST_CHECK_THROW(fs[8].result(deadlock_timeout), parex::TimeoutError);
  const auto broken = expect_error<std::future_error>([&] { fs[9].result(deadlock_timeout); });
  BOOST_TEST((broken.code() == std::make_error_code(std::future_errc::broken_promise)));
  BOOST_TEST(fs[10].result(deadlock_timeout) == 10);
}

BOOST_AUTO_TEST_CASE(initializer_runs_in_every_worker) {
  ProcessPoolExecutor pool{{.max_workers = 2, .initializer = {set_worker_setting, 42}}};
  std::vector<parex::Future<int>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(pool.submit(get_worker_setting));
  for (auto& f : fs) BOOST_TEST(f.result(deadlock_timeout) == 42);
  ProcessPoolExecutor plain{{.max_workers = 1}};
  BOOST_TEST(plain.submit(get_worker_setting).result(deadlock_timeout) == 0);
}

BOOST_AUTO_TEST_CASE(failing_or_crashing_initializer_breaks_the_pool) {
  for (auto init : {&failing_initializer, &crashing_initializer}) {
    ProcessPoolExecutor pool{{.max_workers = 2, .initializer = init}};
    auto f = pool.submit(square, 3);
    const std::string msg = expect_error<parex::BrokenProcessPool>([&] { f.result(deadlock_timeout); }).what();
    BOOST_TEST(msg.find("initializer") != std::string::npos, msg);
    if (init == &failing_initializer) BOOST_TEST(msg.find("cannot open the model file") != std::string::npos, msg);
    BOOST_CHECK_THROW(pool.submit(square, 1), parex::BrokenProcessPool);
  }
}

BOOST_AUTO_TEST_CASE(unregistered_initializer_is_refused_up_front) {
  BOOST_CHECK_THROW((ProcessPoolExecutor{{.max_workers = 1, .initializer = parex::Initializer(
                                                                     static_cast<void (*)(int)>(
                                                                         [](int) {}),
                                                                     1)}}),
                    parex::UnregisteredFunction);
}

BOOST_AUTO_TEST_CASE(max_tasks_per_child_replaces_workers) {
  ProcessPoolExecutor pool{{.max_workers = 1, .max_tasks_per_child = 2}};
  std::set<int> pids;
  for (int i = 0; i < 6; ++i) pids.insert(pool.submit(worker_pid).result(deadlock_timeout));
  BOOST_TEST(pids.size() >= 3u);
  BOOST_TEST(pool.submit(square, 5).result(deadlock_timeout) == 25);
}

BOOST_AUTO_TEST_CASE(workers_ignore_sigint) {
  ProcessPoolExecutor pool{{.max_workers = 1}};
  const int pid = pool.submit(worker_pid).result(deadlock_timeout);
  BOOST_REQUIRE(::kill(pid, SIGINT) == 0);
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(pool.submit(worker_pid).result(deadlock_timeout) == pid);  // same worker, still serving
}

BOOST_AUTO_TEST_CASE(large_payloads_round_trip_intact) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  std::vector<unsigned char> big(std::size_t{96} << 20);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<unsigned char>(i * 2654435761u >> 24);
  BOOST_TEST(pool.submit(checksum, big).result(deadlock_timeout) == checksum(big));
  const std::string s = pool.submit(repeat_char, 'q', std::size_t{40} << 20).result(deadlock_timeout);
  BOOST_TEST(s.size() == std::size_t{40} << 20);
  BOOST_TEST((s.front() == 'q' && s.back() == 'q'));
}

BOOST_AUTO_TEST_CASE(many_threads_submit_to_one_pool) {
  ProcessPoolExecutor pool{{.max_workers = 2}};
  std::vector<std::thread> ts;
  std::vector<long> sums(4);
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      std::vector<parex::Future<int>> fs;
      for (int i = 0; i < 5000; ++i) fs.push_back(pool.submit(square, i % 100));
      for (auto& f : fs) sums[t] += f.result(deadlock_timeout);
    });
  for (auto& t : ts) t.join();
  long expect = 0;
  for (int i = 0; i < 5000; ++i) expect += (i % 100) * (i % 100);
  for (long s : sums) BOOST_TEST(s == expect);
}

BOOST_AUTO_TEST_SUITE_END()
