// Children write a shared Array by index (Python: Array('i', 10); arr[i] = i * i).
#include <parex/parex.hpp>

#include <cstdio>
#include <vector>

void square_into(parex::Array<int> arr, int first, int last) {
  for (int i = first; i < last; ++i) arr[static_cast<std::size_t>(i)] = i * i;
}
PAREX_REGISTER(square_into);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Array<int> arr(10);
  parex::Process low(square_into, arr, 0, 5), high(square_into, arr, 5, 10);
  low.start();
  high.start();
  low.join();
  high.join();
  std::printf("[");
  for (std::size_t i = 0; i < arr.size(); ++i) std::printf(i ? ", %d" : "%d", arr[i]);
  std::printf("]\n");
}
