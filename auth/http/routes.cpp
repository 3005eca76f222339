// THE route table: every route of the five API documents, each API's in its row (a line each
// in auth/apis/<api>.cpp), in the rows' order. `latch routes` prints it and
// tests/http/test_routes.cpp keeps the printed table, this one and README's equal. Each route
// points at what /openapi.json says of it (auth/apis/docs.cpp).
#include "auth/http/routes.h"

#include "auth/apis/api.h"

#include <algorithm>
#include <sstream>
#include <string_view>

namespace latch::http {

const std::vector<Route> &route_table() {
  static const std::vector<Route> table = [] {
    std::vector<Route> all;
    for (const apis::ApiRow &row : apis::api_rows())
      all.insert(all.end(), row.routes.begin(), row.routes.end());
    return all;
  }();
  return table;
}

std::string format_route_table() {
  std::ostringstream out;
  out << "METHOD  PATH                              API        ACCESS   LIMITED  SUMMARY\n";
  for (const Route &r : route_table()) {
    std::string method = r.method, path = r.path, api = api_name(r.api),
                acc = access_name(r.access);
    out << method << std::string(8 - method.size(), ' ') << path
        << std::string(path.size() < 34 ? 34 - path.size() : 1, ' ') << api
        << std::string(11 - api.size(), ' ') << acc << std::string(9 - acc.size(), ' ')
        << (r.throttled ? "yes      " : "no       ") << r.summary << "\n";
  }
  return out.str();
}

namespace {

struct Claim {
  std::string_view prefix;
  apis::PathClaim::Kind kind;
  Api api;
};

// Every row's claims, the most specific first: the longer prefix, then by kind. A row that
// states none owns its prefix.
const std::vector<Claim> &claims() {
  static const std::vector<Claim> all = [] {
    std::vector<Claim> out;
    for (const apis::ApiRow &row : apis::api_rows()) {
      if (row.claims.empty()) out.push_back({row.prefix, apis::PathClaim::owns, row.id});
      for (const apis::PathClaim &claim : row.claims)
        out.push_back({claim.prefix, claim.kind, row.id});
    }
    std::stable_sort(out.begin(), out.end(), [](const Claim &a, const Claim &b) {
      return a.prefix.size() != b.prefix.size() ? a.prefix.size() > b.prefix.size()
                                                : a.kind < b.kind;
    });
    return out;
  }();
  return all;
}

} // namespace

std::optional<Api> api_for_path(const std::string &path, const std::set<Api> &enabled) {
  for (const Route &r : route_table())
    if (path == r.path && enabled.count(r.api)) return r.api;
  for (const Claim &c : claims()) {
    const bool under = path.starts_with(c.prefix) &&
                       (path.size() == c.prefix.size() || path[c.prefix.size()] == '/');
    if (!under) continue;
    if (enabled.count(c.api)) return c.api;
    if (c.kind == apis::PathClaim::owns) return std::nullopt;
  }
  return std::nullopt;
}

} // namespace latch::http
