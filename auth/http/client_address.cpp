// Trusted proxies and X-Forwarded-For.
#include "auth/http/client_address.h"

#include <string_view>
#include <vector>

namespace latch::http {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

} // namespace

std::string client_address(const httplib::Request &req, const AddressSet &trusted) {
  if (trusted.empty() || !trusted.contains(req.remote_addr)) return req.remote_addr;
  // Every line, in order, as one comma-separated list.
  std::vector<std::string_view> hops;
  auto [from, to] = req.headers.equal_range("X-Forwarded-For");
  for (auto it = from; it != to; ++it) {
    std::string_view line = it->second;
    for (std::size_t start = 0;;) {
      const std::size_t comma = line.find(',', start);
      hops.push_back(trim(line.substr(start, comma - start)));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  }
  std::string candidate = req.remote_addr;
  for (auto hop = hops.rbegin(); hop != hops.rend(); ++hop) {
    auto address = canonical_address(*hop);
    if (!address) break; // not an address: nothing from here on can be believed
    candidate = std::move(*address);
    if (!trusted.contains(candidate)) break;
  }
  return candidate;
}

} // namespace latch::http
