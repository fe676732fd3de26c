// Test helpers about processes, shared by every suite that starts or kills them: a
// process's state and parent, this process's children, and stderr captured to a string.
#pragma once

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace test {

/// 'R', 'S', 'Z', ... or 0 if there is no such process; its parent's pid in *ppid.
inline char process_state(int pid, int* ppid = nullptr) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return 0;
  const auto close = line.rfind(')');  // the name may contain spaces and parentheses
  if (close == std::string::npos || close + 2 > line.size()) return 0;
  std::istringstream rest(line.substr(close + 2));
  char state = 0;
  int parent = 0;
  rest >> state >> parent;
  if (ppid) *ppid = parent;
  return state;
}

/// Running (not gone, not a zombie).
inline bool process_alive(int pid) {
  const char s = process_state(pid);
  return s != 0 && s != 'Z' && s != 'X';
}

/// Every child of this process, zombies included, sorted: from /proc/self/task/*/children
/// (workers are children of the pool's reactor thread), or a scan of /proc/*/stat where
/// the kernel lacks CONFIG_PROC_CHILDREN.
inline std::vector<int> children() {
  namespace fs = std::filesystem;
  std::vector<int> out;
  std::error_code ec;
  bool listed = false;
  for (fs::directory_iterator it("/proc/self/task", ec), end; !ec && it != end; it.increment(ec)) {
    std::ifstream f(it->path() / "children");
    if (!f) continue;  // a thread that just ended, or no CONFIG_PROC_CHILDREN
    listed = true;
    for (int pid; f >> pid;) out.push_back(pid);
  }
  if (!listed) {
    const int self = static_cast<int>(::getpid());
    for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename();
      if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
      int ppid = 0;
      if (process_state(std::stoi(name), &ppid) && ppid == self) out.push_back(std::stoi(name));
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

/// Redirects this process's stderr (fd 2) to a file until text() is called.
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    file_ = std::tmpfile();
    saved_ = ::dup(2);
    ::dup2(::fileno(file_), 2);
  }
  ~StderrCapture() {
    if (saved_ >= 0) text();
    if (file_) std::fclose(file_);
  }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;
  /// Restores stderr and returns what was written meanwhile.
  std::string text() {
    if (saved_ < 0) return {};
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
    std::string out;
    std::rewind(file_);
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, file_)) > 0;) out.append(buf, n);
    return out;
  }

 private:
  int saved_ = -1;
  std::FILE* file_ = nullptr;
};

}  // namespace test
