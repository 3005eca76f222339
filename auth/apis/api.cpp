// The list of the API rows (each defined in its API's handler file), and what reads it by id.
// A new API: its id in config.h's Api, its handler file with its row, and its row named here.
#include "auth/apis/api.h"

#include <string>

namespace latch {

namespace apis {

namespace picflux {
extern const ApiRow row;
} // namespace picflux
namespace simplejwt {
extern const ApiRow row;
} // namespace simplejwt
namespace flask {
extern const ApiRow row;
} // namespace flask
namespace v1 {
extern const ApiRow row;
} // namespace v1
namespace envelope {
extern const ApiRow row;
} // namespace envelope

// In the order of the Api ids: api_row() finds a row by its id's number, and std::set<Api>
// orders the APIs as the rows (tests/unit/test_api_rows.cpp checks both).
const std::vector<ApiRow> &api_rows() {
  static const std::vector<ApiRow> rows = {picflux::row, simplejwt::row, flask::row, v1::row,
                                           envelope::row};
  return rows;
}

const ApiRow &api_row(Api api) {
  return api_rows().at(static_cast<std::size_t>(api));
}

bool reset_links_mailed(const std::set<Api> &apis) {
  for (Api api : apis)
    if (api_row(api).mails_reset_links) return true;
  return false;
}

} // namespace apis

const char *api_name(Api api) {
  return apis::api_row(api).name;
}

std::optional<Api> api_from_name(const std::string &name) {
  for (const apis::ApiRow &row : apis::api_rows())
    if (name == row.name) return row.id;
  return std::nullopt;
}

std::set<Api> all_apis() {
  std::set<Api> out;
  for (const apis::ApiRow &row : apis::api_rows())
    out.insert(row.id);
  return out;
}

std::map<Api, Lifetimes> default_lifetimes() {
  std::map<Api, Lifetimes> out;
  for (const apis::ApiRow &row : apis::api_rows())
    out[row.id] = row.lifetimes;
  return out;
}

} // namespace latch
