// bench_mpi: MpiExecutor against raw Boost.MPI on the same ranks (run under mpirun -np 3).
//   mpirun -np 3 bench_mpi          parex: 100k tiny calls, a 1M-item map, one call's round trip
//   mpirun -np 3 bench_mpi --round-trips N   parex: only N round trips (what a profiler
//                                   should see of one call's round trip)
//   mpirun -np 3 bench_mpi --raw    raw Boost.MPI: a task farm at 1 and at 1000 tasks per
//                                   message (serialized task structs, and plain int arrays),
//                                   and a ping-pong (rank 0 <-> 1; rank 2 idle)
// Prints one JSON object per line (rank 0). tools/bench_mpi.py alternates the two jobs and
// prints medians and ratios: both modes cannot share one job, since parex's worker ranks
// never return from parex::init.
#include <parex/mpi.hpp>

#include <boost/mpi/collectives.hpp>
#include <boost/mpi/communicator.hpp>
#include <boost/mpi/environment.hpp>
#include <boost/mpi/nonblocking.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

namespace mpi = boost::mpi;
using Clock = std::chrono::steady_clock;

int tiny(int x) { return x + 1; }
PAREX_REGISTER(tiny);

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

constexpr int tiny_calls = 100'000;
constexpr int map_items = 1'000'000;
constexpr int round_trips = 20'000;
constexpr int farm_tasks = 1'000'000;

void parex_side() {
  parex::MpiExecutor ex;
  ex.submit(tiny, 0).result();  // the ranks have said hello
  auto t0 = Clock::now();
  std::vector<parex::Future<int>> fs;
  fs.reserve(tiny_calls);
  for (int i = 0; i < tiny_calls; ++i) fs.push_back(ex.submit(tiny, i));
  long long sum = 0;
  for (auto& f : fs) sum += f.result();
  const double tiny_s = seconds_since(t0);
  if (sum != static_cast<long long>(tiny_calls) * (tiny_calls + 1) / 2) std::fprintf(stderr, "bad sum\n");

  std::vector<int> xs(map_items);
  std::iota(xs.begin(), xs.end(), 0);
  t0 = Clock::now();
  long long msum = 0;
  for (int y : ex.map(tiny, xs, {.chunksize = 1000})) msum += y;
  const double map_s = seconds_since(t0);
  if (msum != static_cast<long long>(map_items) * (map_items + 1) / 2) std::fprintf(stderr, "bad map sum\n");

  parex::MpiExecutor one{{.max_workers = 1}};
  for (int i = 0; i < 1000; ++i) one.submit(tiny, i).result();  // warm
  t0 = Clock::now();
  for (int i = 0; i < round_trips; ++i) one.submit(tiny, i).result();
  const double rt_s = seconds_since(t0);
  std::printf("{\"mode\": \"parex\", \"tiny_calls_per_s\": %.0f, \"map_items_per_s\": %.0f, \"round_trip_us\": %.3f}\n",
              tiny_calls / tiny_s, map_items / map_s, rt_s / round_trips * 1e6);
}

// A task as a Boost.MPI program ships one: which function, and its argument, in a struct
// that Boost.Serialization packs (it is not an MPI datatype).
struct Task {
  int fn = 0;
  int arg = 0;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar & fn & arg;
  }
};
int task_value(const Task& t) { return t.arg; }
int task_value(int v) { return v; }
void task_bump(Task& t) { t.arg += 1; }
void task_bump(int& v) { v += 1; }
void task_set(Task& t, int v) { t = {1, v}; }
void task_set(int& t, int v) { t = v; }

// Rank 0 deals `farm_tasks` tasks to the workers, `per` per message, keeping `window`
// messages in flight per worker; a worker answers each message with one of results.
// Two spellings: E = Task, a std::vector of structs that Boost.MPI serializes (what a
// Boost.MPI task farm writes), and E = int, plain int arrays (an MPI datatype, nothing
// serialized: the floor of what MPI itself costs, with no function to name).
template <class E>
double farm(const mpi::communicator& world, int per) {
  constexpr bool serialized = std::is_same_v<E, Task>;
  const int workers = world.size() - 1;
  const int window = 8;
  using Msg = std::vector<E>;
  auto isend = [&](int dest, int tag, Msg& m) {
    if constexpr (serialized) return world.isend(dest, tag, m);
    else return world.isend(dest, tag, m.data(), static_cast<int>(m.size()));
  };
  auto recv = [&](int src, int tag, Msg& m) {
    if constexpr (serialized) return world.recv(src, tag, m);
    else return world.recv(src, tag, m.data(), static_cast<int>(m.size()));
  };
  if (world.rank() == 0) {
    std::vector<Msg> out(static_cast<std::size_t>(workers * window), Msg(static_cast<std::size_t>(per)));
    std::vector<mpi::request> slot_req(out.size());
    Msg in(static_cast<std::size_t>(per));
    int sent = 0, done = 0;
    long long sum = 0;
    const auto t0 = Clock::now();
    auto send = [&](int w, int slot) {
      auto& buf = out[static_cast<std::size_t>(slot)];
      slot_req[static_cast<std::size_t>(slot)].wait();  // its previous send has completed
      for (int k = 0; k < per; ++k) task_set(buf[static_cast<std::size_t>(k)], sent + k);
      sent += per;
      slot_req[static_cast<std::size_t>(slot)] = isend(w, 1, buf);
    };
    std::vector<int> next_slot(static_cast<std::size_t>(workers) + 1, 0);
    for (int w = 1; w <= workers; ++w)
      for (int s = 0; s < window && sent < farm_tasks; ++s) send(w, (w - 1) * window + s);
    while (done < farm_tasks) {
      const mpi::status st = recv(mpi::any_source, 2, in);
      for (const E& v : in) sum += task_value(v);
      done += per;
      const int w = st.source();
      if (sent < farm_tasks) {  // answers come in order per worker: its oldest slot is free
        int& s = next_slot[static_cast<std::size_t>(w)];
        send(w, (w - 1) * window + s);
        s = (s + 1) % window;
      }
    }
    for (auto& r : slot_req) r.wait();
    const double s = seconds_since(t0);
    for (int w = 1; w <= workers; ++w) world.send(w, 3, 0);
    if (sum != static_cast<long long>(farm_tasks) * (farm_tasks + 1) / 2) std::fprintf(stderr, "bad farm sum\n");
    return farm_tasks / s;
  }
  Msg buf(static_cast<std::size_t>(per));
  for (;;) {
    const mpi::status st = world.probe(0, mpi::any_tag);
    if (st.tag() == 3) {
      int stop = 0;
      world.recv(0, 3, stop);
      return 0;
    }
    recv(0, 1, buf);
    for (E& v : buf) task_bump(v);
    if constexpr (serialized) world.send(0, 2, buf);
    else world.send(0, 2, buf.data(), per);
  }
}

double ping_pong(const mpi::communicator& world) {
  int x = 0;
  mpi::broadcast(world, x, 0);  // every rank is here
  if (world.rank() == 0) {
    const auto t0 = Clock::now();
    for (int i = 0; i < round_trips; ++i) {
      world.send(1, 4, i);
      world.recv(1, 4, x);
    }
    const double s = seconds_since(t0);
    world.send(2 % world.size(), 5, 0);
    return s / round_trips * 1e6;
  }
  if (world.rank() == 1) {
    for (int i = 0; i < round_trips; ++i) {
      world.recv(0, 4, x);
      world.send(0, 4, x + 1);
    }
  }
  if (world.rank() == 2 % world.size() && world.rank() != 0) world.recv(0, 5, x);  // idle, as parex's second rank
  return 0;
}

void raw_side(int argc, char** argv) {
  mpi::environment env(argc, argv);
  mpi::communicator world;
  double r[4];
  int k = 0;
  for (int per : {1, 1000}) {
    r[k++] = farm<Task>(world, per);
    world.barrier();
    r[k++] = farm<int>(world, per);
    world.barrier();
  }
  const double pp = ping_pong(world);
  if (world.rank() == 0)
    std::printf("{\"mode\": \"raw\", \"farm_1_per_s\": %.0f, \"arrays_1_per_s\": %.0f, \"farm_1000_per_s\": %.0f, "
                "\"arrays_1000_per_s\": %.0f, \"ping_pong_us\": %.3f}\n",
                r[0], r[1], r[2], r[3], pp);
}

// Only one call's round trip, n times.
void round_trips_only(int n) {
  parex::MpiExecutor one{{.max_workers = 1}};
  for (int i = 0; i < 1000; ++i) one.submit(tiny, i).result();  // warm
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) one.submit(tiny, i).result();
  std::printf("{\"mode\": \"parex\", \"round_trip_us\": %.3f}\n", seconds_since(t0) / n * 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--raw") == 0) {
    raw_side(argc, argv);  // no parex::init: every rank runs the raw code
    return 0;
  }
  parex::init(argc, argv);  // ranks 1..N-1 become parex's workers here
  if (argc > 2 && std::strcmp(argv[1], "--round-trips") == 0) round_trips_only(std::atoi(argv[2]));
  else parex_side();
}
