// IP addresses and CIDR blocks: trusted proxies, and what X-Forwarded-For may hold.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace latch {

// A set of IP addresses and CIDR blocks (`--trusted-proxy 10.0.0.1,192.168.0.0/16,::1`).
class AddressSet {
public:
  // nullopt and *error set when an entry is neither an address nor a block.
  static std::optional<AddressSet> parse(const std::vector<std::string> &entries,
                                         std::string *error = nullptr);
  bool empty() const { return blocks_.empty(); }
  bool contains(std::string_view address) const;

private:
  struct Block {
    std::array<unsigned char, 16> bytes{}; // IPv4 as IPv4-mapped IPv6
    int prefix = 128;                      // bits that must match
  };
  std::vector<Block> blocks_;
};

// An IP address in its canonical text form (inet_ntop), or nullopt for anything else: what
// X-Forwarded-For holds is checked before it is believed or used as a key.
std::optional<std::string> canonical_address(std::string_view text);

} // namespace latch
