// An Asio server that hands CPU-heavy requests to a process pool without blocking its
// io_context: each request line "N" is answered "primes below N: K", computed by a pool
// worker while the io_context goes on serving (a 1 ms heartbeat timer counts on). A
// client coroutine in the same program sends three requests and prints the answers.
//
//   co_await parex::async_result(pool.submit(count_primes, n), boost::asio::use_awaitable)
#include <parex/asio.hpp>
#include <parex/parex.hpp>

#include <boost/asio.hpp>

#include <chrono>
#include <cstdio>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;

int count_primes(int n) {  // deliberately slow: trial division
  int count = 0;
  for (int i = 2; i < n; ++i) {
    bool prime = true;
    for (int d = 2; d * d <= i; ++d)
      if (i % d == 0) {
        prime = false;
        break;
      }
    count += prime;
  }
  return count;
}
PAREX_REGISTER(count_primes);

struct Stats {
  long ticks = 0;                // heartbeats seen by the io_context
  long ticks_while_computing = 0;
  int computing = 0;
};

asio::awaitable<void> session(tcp::socket socket, parex::ProcessPoolExecutor& pool, Stats& stats) {
  asio::streambuf buf;
  for (;;) {
    auto [ec, n] = co_await asio::async_read_until(socket, buf, '\n', asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    std::string line(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(n));
    buf.consume(n);
    const int limit = std::stoi(line);
    ++stats.computing;
    const long before = stats.ticks;
    const int primes = co_await parex::async_result(pool.submit(count_primes, limit), asio::use_awaitable);
    stats.ticks_while_computing += stats.ticks - before;
    --stats.computing;
    const std::string reply = "primes below " + std::to_string(limit) + ": " + std::to_string(primes) + "\n";
    co_await asio::async_write(socket, asio::buffer(reply), asio::use_awaitable);
  }
}

asio::awaitable<void> serve(tcp::acceptor& acceptor, parex::ProcessPoolExecutor& pool, Stats& stats) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    asio::co_spawn(acceptor.get_executor(), session(std::move(socket), pool, stats), asio::detached);
  }
}

asio::awaitable<void> heartbeat(Stats& stats, bool& done) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!done) {
    timer.expires_after(std::chrono::milliseconds(1));
    co_await timer.async_wait(asio::use_awaitable);
    ++stats.ticks;
  }
}

asio::awaitable<void> client(tcp::endpoint server, bool& done, tcp::acceptor& acceptor) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(server, asio::use_awaitable);
  asio::streambuf buf;
  for (int n : {1000, 100000, 300000}) {
    const std::string request = std::to_string(n) + "\n";
    co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);
    const std::size_t len = co_await asio::async_read_until(socket, buf, '\n', asio::use_awaitable);
    std::string reply(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(len));
    buf.consume(len);
    std::printf("%s", reply.c_str());
  }
  done = true;
  acceptor.close();
}

int main(int argc, char** argv) {
  parex::init(argc, argv);
  asio::io_context io;  // one thread: everything below runs on it; it outlives the pool
  parex::ProcessPoolExecutor pool(parex::ProcessPoolOptions{.max_workers = 2});
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  Stats stats;
  bool done = false;
  asio::co_spawn(io, serve(acceptor, pool, stats), asio::detached);
  asio::co_spawn(io, heartbeat(stats, done), asio::detached);
  asio::co_spawn(io, client(acceptor.local_endpoint(), done, acceptor), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
  std::printf("the io_context kept serving while the pool computed: %s\n", stats.ticks_while_computing > 0 ? "yes" : "no");
}
