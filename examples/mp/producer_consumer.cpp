// A producer and a consumer on a Queue, ending on a sentinel (Python: q.put(None)).
#include <parex/parex.hpp>

#include <cstdio>
#include <optional>

void produce(parex::Queue<std::optional<int>> q) {
  for (int i = 0; i < 10; ++i) q.put(i * i);
  q.put(std::nullopt);  // Python's None
}
void consume(parex::Queue<std::optional<int>> q) {
  while (auto item = q.get()) std::printf("consumed %d\n", *item);
  std::printf("consumer done\n");
}
PAREX_REGISTER(produce);
PAREX_REGISTER(consume);

int main(int argc, char** argv) {
  parex::init(argc, argv);
  parex::Queue<std::optional<int>> q;
  parex::Process producer(produce, q), consumer(consume, q);
  producer.start();
  consumer.start();
  producer.join();
  consumer.join();
}
