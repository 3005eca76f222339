// One row per API, the only list of the APIs: config, --help, routing, errors and docs read it.
#pragma once

#include "auth/config.h"
#include "auth/result.h"

#include <set>
#include <span>
#include <vector>

namespace latch::http {
struct Ctx;    // auth/http/context.h
struct Route;  // auth/http/context.h
struct ApiDoc; // auth/http/route_doc.h
} // namespace latch::http

namespace latch::apis {

// A path prefix whose paths no route serves (404, 405, 413...) answer in an API's shape.
struct PathClaim {
  enum Kind {
    owns,     // paths at or under it are this API's alone: with the API off, no API's shape
    shares,   // the API answers here while it is on; while it is off, a shorter claim decides
    fallback, // the API answers here only while no API that shares the prefix is on
  };
  const char *prefix;
  Kind kind;
};

// What the server knows of an API beyond its handlers. Each API's handler file defines its
// row (with its routes) and auth/apis/api.cpp lists the rows, in the order of the Api ids.
// Plain data, so config.cpp reads it without the HTTP layer's headers.
struct ApiRow {
  Api id;
  const char *name;   // --apis, --NAME-access-ttl, LATCH_NAME_*, `latch routes`, OpenAPI tag
  const char *prefix; // SPEC.md's prefix: every route of the API is under it
  // Where paths no route serves answer in its shape; none stated: the API owns its prefix.
  std::span<const PathClaim> claims = {};
  std::span<const http::Route> routes;              // in the order `latch routes` prints them
  void (*render_error)(http::Ctx &, const Error &); // called by http::send_error only
  Lifetimes lifetimes; // defaults; refresh 0: no refresh token, and no --NAME-refresh-ttl
  bool mails_reset_links = false; // to RESET_PASSWORD_URL, whose default page is then served
  const http::ApiDoc *doc;        // /openapi.json: its framework (the tag's text) and wire shapes
};

// Every row, in the order of the Api ids.
const std::vector<ApiRow> &api_rows();
const ApiRow &api_row(Api api);

// Whether an API that mails reset links is among these (the /reset-password page is served).
bool reset_links_mailed(const std::set<Api> &apis);

} // namespace latch::apis
