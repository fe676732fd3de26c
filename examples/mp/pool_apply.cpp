// apply and apply_async with a timeout and a callback. The Python original:
//   def slow_square(x): time.sleep(0.5); return x * x
//   with Pool(2) as p:
//       print(p.apply(slow_square, (3,)))                       # 9
//       r = p.apply_async(slow_square, (4,), callback=lambda v: print('callback', v))
//       try: r.get(timeout=0.05)
//       except TimeoutError: print('not ready after 50 ms')
//       print(r.get(timeout=10))                                # callback 16, then 16
//       e = p.apply_async(fail, error_callback=lambda e: print('error_callback', e))
//       e.wait(); print(e.successful())                         # False
#include <parex/parex.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>

int slow_square(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  return x * x;
}
int fail() { throw std::runtime_error("no luck"); }
PAREX_REGISTER(slow_square);
PAREX_REGISTER(fail);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  using namespace std::chrono_literals;
  parex::Pool p(2);
  std::printf("%d\n", p.apply(slow_square, 3));
  auto r = p.apply_async(parex::Callbacks{[](int v) { std::printf("callback %d\n", v); }}, slow_square, 4);
  try {
    r.get(50ms);
  } catch (const parex::TimeoutError&) {
    std::printf("not ready after 50 ms\n");
  }
  std::printf("%d\n", r.get(10s));
  auto on_error = [](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::printf("error_callback %s\n", x.what());
    }
  };
  auto e = p.apply_async(parex::Callbacks{parex::NoCallback{}, on_error}, fail);
  e.wait();
  std::printf("%s\n", e.successful() ? "True" : "False");
}
