// docs/04-connections.md: connection::wait on a Pipe end and a Process's sentinel;
// reduction::send_handle passing a file descriptor to a child over a Unix socket.
#include <parex/parex.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

using namespace std::chrono_literals;

void talk(parex::Connection conn) {
  conn.send(std::string("hello"));
  conn.recv<std::string>();  // "bye": the child ends only after it
}
PAREX_REGISTER(talk);

void write_through(std::string address) {
  parex::Connection conn = parex::connection::Client(address);
  int fd = parex::reduction::recv_handle(conn);        // this process's own descriptor
  const char text[] = "written by the child through a descriptor it was sent\n";
  if (::write(fd, text, std::strlen(text)) < 0) std::perror("write");
  ::close(fd);
}
PAREX_REGISTER(write_through);

int wait_demo() {
  auto [mine, theirs] = parex::Pipe();
  parex::Process p(talk, theirs);
  p.start();
  theirs.close();                                      // only the child holds that end now
  auto ready = parex::connection::wait({mine, p.sentinel()}, 10s);  // the message, not the end
  std::cout << (ready.at(0).connection() == &mine) << ' ' << mine.recv<std::string>() << '\n';
  mine.send(std::string("bye"));
  parex::connection::wait({p.sentinel()});             // returns once the child has ended
  p.join();
  return ready.size() == 1 && p.exitcode() == 0 ? 0 : 1;
}

int send_handle_demo() {
  int fds[2];
  if (::pipe(fds) != 0) return 2;
  parex::connection::Listener listener;                // a fresh abstract Unix socket name
  parex::Process child(write_through, listener.address().path);
  child.start();
  parex::Connection conn = listener.accept();
  parex::reduction::send_handle(conn, fds[1], child.pid());  // the child gets its own copy
  ::close(fds[1]);                                     // so EOF comes once the child closes it
  char buf[256];
  ssize_t n = 0, got = 0;
  while ((n = ::read(fds[0], buf + got, sizeof buf - 1 - got)) > 0) got += n;
  ::close(fds[0]);
  buf[got] = '\0';
  std::cout << buf;
  child.join();
  return got > 0 && child.exitcode() == 0 ? 0 : 3;
}

int main(int argc, char** argv) {
  parex::init(argc, argv);
  if (int rc = wait_demo()) return rc;
  return send_handle_demo();
}
