#include "support/contract_functions.hpp"

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <thread>

int square(int x) { return x * x; }
std::string concat(std::string a, const std::string& b) { return a + b; }
void do_nothing() {}
std::vector<int> iota_vector(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
  return v;
}
int fail_if_negative(int x) {
  if (x < 0) throw std::invalid_argument("negative: " + std::to_string(x));
  return x;
}
int sleep_then_echo(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
int mark_done(std::pair<std::string, int> job) {
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::ofstream(job.first + "/" + std::to_string(job.second)) << job.second;
  return job.second;
}

PAREX_REGISTER(square);
PAREX_REGISTER(concat);
PAREX_REGISTER(do_nothing);
PAREX_REGISTER(iota_vector);
PAREX_REGISTER(fail_if_negative);
PAREX_REGISTER(sleep_then_echo);
PAREX_REGISTER(mark_done);
