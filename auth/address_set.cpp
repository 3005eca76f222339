// IP addresses and CIDR blocks.
#include "auth/address_set.h"

#include <arpa/inet.h>

#include <cstring>

namespace latch {

namespace {

// The 16 bytes of an IPv6 address, or of an IPv4 one as ::ffff:a.b.c.d.
std::optional<std::array<unsigned char, 16>> address_bytes(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  std::array<unsigned char, 16> out{};
  in_addr v4{};
  if (inet_pton(AF_INET, buf, &v4) == 1) {
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    return out;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, buf, &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    return out;
  }
  return std::nullopt;
}

bool is_v4_mapped(const std::array<unsigned char, 16> &b) {
  for (int i = 0; i < 10; ++i)
    if (b[std::size_t(i)] != 0) return false;
  return b[10] == 0xff && b[11] == 0xff;
}

} // namespace

std::optional<AddressSet> AddressSet::parse(const std::vector<std::string> &entries,
                                            std::string *error) {
  AddressSet set;
  for (const std::string &entry : entries) {
    std::string_view text = entry, bits;
    if (auto slash = text.find('/'); slash != std::string_view::npos) {
      bits = text.substr(slash + 1);
      text = text.substr(0, slash);
    }
    auto bytes = address_bytes(text);
    Block block;
    if (bytes) {
      block.bytes = *bytes;
      const int width = is_v4_mapped(*bytes) ? 32 : 128;
      int prefix = width;
      if (entry.find('/') != std::string::npos) {
        prefix = -1;
        if (!bits.empty() && bits.size() <= 3 &&
            bits.find_first_not_of("0123456789") == std::string_view::npos)
          prefix = std::stoi(std::string(bits));
      }
      if (prefix >= 0 && prefix <= width) {
        block.prefix = prefix + (128 - width);
        set.blocks_.push_back(block);
        continue;
      }
    }
    if (error) *error = "'" + entry + "' is not an IP address or CIDR block (like 10.0.0.0/8)";
    return std::nullopt;
  }
  return set;
}

bool AddressSet::contains(std::string_view address) const {
  auto bytes = address_bytes(address);
  if (!bytes) return false;
  for (const Block &b : blocks_) {
    int bits = b.prefix;
    std::size_t i = 0;
    for (; bits >= 8; bits -= 8, ++i)
      if ((*bytes)[i] != b.bytes[i]) break;
    if (bits >= 8) continue; // a whole byte differed
    if (bits == 0) return true;
    const unsigned mask = (0xffu << (8 - bits)) & 0xffu;
    if (((*bytes)[i] & mask) == (b.bytes[i] & mask)) return true;
  }
  return false;
}

std::optional<std::string> canonical_address(std::string_view text) {
  auto bytes = address_bytes(text);
  if (!bytes) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  if (is_v4_mapped(*bytes))
    return std::string(inet_ntop(AF_INET, bytes->data() + 12, buf, sizeof buf));
  return std::string(inet_ntop(AF_INET6, bytes->data(), buf, sizeof buf));
}

} // namespace latch
