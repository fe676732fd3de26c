// src/mp/manager_server.hpp - the function a Manager's server process runs (a registered
// function, started as a parex::Process).
#pragma once

#include <parex/detail/mp/manager_link.hpp>
#include <parex/mp/connection.hpp>

#include <cstdint>
#include <string>

namespace parex::detail {
/// Listens at `address` (empty: a socket in a private directory it makes), sends the
/// address it got (or "!" and the error) on `ready`, then serves until a client asks it to
/// shut down, its owner (parent) dies, or SIGTERM; it removes its socket (and directory)
/// on each of those ends.
void manager_serve(std::string address, std::string authkey, std::uint64_t max_connections,
                   std::uint64_t max_message_bytes, Connection ready);
}  // namespace parex::detail
