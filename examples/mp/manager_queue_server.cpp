// Two programs share a queue through a served, authenticated manager: this one serves.
// Run it, then manager_queue_client with the same address and key. The Python original:
//   queue = Queue()
//   class QueueManager(BaseManager): pass
//   QueueManager.register('get_queue', callable=lambda: queue)
//   m = QueueManager(address=ADDRESS, authkey=b'abracadabra'); m.start()
//   for _ in range(3): print('server got', queue.get())
//
//   usage: manager_queue_server SOCKET_PATH
#include <parex/parex.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  parex::init(argc, argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
    return 2;
  }
  parex::Manager m(parex::ManagerOptions{.address = argv[1], .authkey = "abracadabra"});
  auto queue = m.Queue<std::string>();
  auto done = m.Event();
  m.publish("queue", queue);
  m.publish("done", done);
  std::printf("serving at %s\n", m.address().c_str());
  std::fflush(stdout);  // the line says that clients may come: "queue" is published
  std::fflush(stdout);
  for (int i = 0; i < 3; ++i) std::printf("server got %s\n", queue.get().c_str());
  done.set();  // the client may stop waiting
}
