// user_types: your own structs and exceptions across processes.
#include <parex/parex.hpp>

#include <cstdio>
#include <string>
#include <vector>

struct Order {  // Boost.Serialization: a serialize member is all it takes
  std::string customer;
  std::vector<double> prices;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & customer & prices;
  }
};

struct Rgb {  // plain bytes: copied as they are, no archive
  unsigned char r, g, b;
};
PAREX_BITWISE(Rgb);

struct CreditLimit : std::runtime_error {  // registered: arrives as itself, not as RemoteError
  using std::runtime_error::runtime_error;
};
PAREX_REGISTER_EXCEPTION(CreditLimit);

double total(const Order& o) {
  double sum = 0;
  for (double p : o.prices) sum += p;
  if (sum > 100) throw CreditLimit(o.customer + " is over the limit");
  return sum;
}
PAREX_REGISTER(total);
Rgb darker(Rgb c) { return {static_cast<unsigned char>(c.r / 2), static_cast<unsigned char>(c.g / 2), static_cast<unsigned char>(c.b / 2)}; }
PAREX_REGISTER(darker);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::ProcessPoolExecutor pool{{.max_workers = 2}};
  std::printf("total: %.2f\n", pool.submit(total, Order{"ada", {9.5, 20}}).result());
  try {
    pool.submit(total, Order{"bob", {80, 70}}).result();
  } catch (const CreditLimit& e) {
    std::printf("CreditLimit: %s\n", e.what());
  }
  const Rgb c = pool.submit(darker, Rgb{200, 100, 50}).result();
  std::printf("darker: %d %d %d\n", c.r, c.g, c.b);
  return c.r == 100 ? 0 : 1;
}
