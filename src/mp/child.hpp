// mp/child.hpp - a Process's child: how it knows it is one, and what it runs.
//
// The child is /proc/self/exe re-executed with argv[1] = process_arg, the marker in the
// environment (process_env), and fd 3 a memfd holding its call:
//   u64 registry digest, varint function id, string name, string parent's name,
//   string authkey, item
// (an item as in wire/records.hpp: varint length, the encoded arguments), then the
// receipts region of mp/pins.hpp ([u64] x slots, u64 slots), which the child fills. The marker is
// written (format_process_marker) and read (parse_process_marker) in child.cpp only.
// Who includes this: mp/process.cpp (parent side), mp/child.cpp, worker/worker.cpp
// (parex::init branches here).
#pragma once

#include <optional>
#include <string>
#include <sys/types.h>

namespace parex::detail {

inline constexpr const char* process_env = "PAREX_PROCESS";
inline constexpr const char* process_arg = "--parex-process";
inline constexpr int process_call_fd = 3;

struct ProcessMarker {
  pid_t parent = 0;
  bool daemon = false;
};
std::string format_process_marker(const ProcessMarker& m);
std::optional<ProcessMarker> parse_process_marker(const char* s);

/// In a child: runs its call and exits (0, or 1 if the function threw). Never returns.
[[noreturn]] void run_process_child(const char* marker);

/// In a daemonic child: `hook` runs (on the thread that watches the parent) once the
/// parent has died, however it died, just before this process kills itself. For what a
/// child must undo even then (a Manager's server removes its socket). One hook; the last
/// set wins; nullptr removes it.
void on_parent_death(void (*hook)() noexcept) noexcept;

/// What current_process() and parent_process() report in this process.
void set_process_identity(std::string name, pid_t parent, std::string parent_name, bool daemon, std::string authkey);

}  // namespace parex::detail
