// imap_unordered over a slow function, printing each result as it comes: the fast calls
// overtake the slow one. The Python original:
//   def nap(ms): time.sleep(ms / 1000); return ms
//   with Pool(4) as p:
//       for ms in p.imap_unordered(nap, [600, 100, 300, 200]):
//           print('done', ms)                 # 100, 200, 300, 600
#include <parex/parex.hpp>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

int nap(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
PAREX_REGISTER(nap);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Pool p(4);
  for (int ms : p.imap_unordered(nap, std::vector<int>{600, 100, 300, 200})) {
    std::printf("done %d\n", ms);
    std::fflush(stdout);
  }
}
