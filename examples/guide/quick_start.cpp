// The README's first sample, whole: it must compile and print 1, 4, 9.
#include <parex/parex.hpp>                          // from concurrent.futures import *
#include <iostream>

int square(int x) { return x * x; }                 // def square(x): return x * x
PAREX_REGISTER(square);                             // (C++ ships functions by name)

int main(int argc, char** argv) {
  parex::init(argc, argv);                          // if __name__ == "__main__":
  parex::ProcessPoolExecutor pool{{.max_workers = 4}};  //  with ProcessPoolExecutor(4) as pool:
  parex::Future<int> f = pool.submit(square, 7);    //      f = pool.submit(square, 7)
  int r = f.result();                               //      r = f.result()
  for (int y : pool.map(square, std::vector{1, 2, 3}))  //  for y in pool.map(square, [1, 2, 3]):
    std::cout << y << '\n';                         //          print(y)
}                                                   //  (leaving it: shutdown(wait=True))
