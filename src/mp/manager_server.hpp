// src/mp/manager_server.hpp - the function a Manager's server process runs (a registered
// function, started as a parex::Process).
#pragma once

#include <parex/detail/mp/manager_link.hpp>
#include <parex/mp/connection.hpp>

#include <cstdint>
#include <string>

namespace parex::detail {
/// Runs the initializer (registered id + 1, 0 for none; its encoded arguments) first,
/// then listens at `address` (empty: a socket in a private directory it makes), sends the
/// address it got on `ready` ("!" and the error if it could not listen, "?" and the
/// encoded exception if the initializer threw), then serves until a client asks it to
/// shut down, its owner (parent) dies, or SIGTERM; it removes its socket (and directory)
/// on each of those ends.
void manager_serve(std::string address, std::string authkey, std::uint64_t max_connections,
                   std::uint64_t max_message_bytes, std::uint32_t initializer, std::string initializer_args,
                   Connection ready);
}  // namespace parex::detail
