// Two programs share a queue through a served, authenticated manager: this one connects
// (see manager_queue_server.cpp). A wrong key is refused first. The Python original:
//   QueueManager.register('get_queue')
//   m = QueueManager(address=ADDRESS, authkey=b'abracadabra'); m.connect()
//   queue = m.get_queue()
//   for word in ['hello', 'from', 'another program']: queue.put(word)
//
//   usage: manager_queue_client SOCKET_PATH
#include <parex/parex.hpp>

#include <chrono>
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  parex::init(argc, argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
    return 2;
  }
  try {
    parex::Manager::connect(argv[1], "open sesame");
  } catch (const parex::AuthenticationError&) {
    std::printf("wrong key refused\n");
  }
  parex::Manager m = parex::Manager::connect(argv[1], "abracadabra");  // the server still serves
  auto queue = m.lookup<parex::Queue<std::string>>("queue");
  auto done = m.lookup<parex::Event>("done");  // both before the server can end
  for (const char* word : {"hello", "from", "another program"}) queue.put(word);
  std::printf("client put 3 items\n");
  return done.wait(std::chrono::seconds(30)) ? 0 : 1;
}
