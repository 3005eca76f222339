// THE route table: every public route of the five APIs, as data (each API's in its row).
#pragma once

#include "auth/http/context.h"

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace latch::http {

const std::vector<Route> &route_table();

// The table as `latch routes` prints it.
std::string format_route_table();

// Which API's error shape answers a request to path (for 404s, 413s and the like): the API of
// the route at path, else the one the rows' claims give (apis::PathClaim).
std::optional<Api> api_for_path(const std::string &path, const std::set<Api> &enabled);

} // namespace latch::http
