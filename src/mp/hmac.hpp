// src/mp/hmac.hpp - SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104) for the Manager's
// challenge-response: the key never crosses the socket, only HMACs of fresh random
// challenges. Small and dependency-free; checked against RFC 4231's vectors in the tests.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace parex::detail {

using Digest256 = std::array<std::uint8_t, 32>;

Digest256 sha256(std::span<const std::uint8_t> data) noexcept;
Digest256 hmac_sha256(std::string_view key, std::span<const std::uint8_t> message);
/// Compares in time that does not depend on where the digests differ.
bool digests_equal(const Digest256& a, const Digest256& b) noexcept;

}  // namespace parex::detail
