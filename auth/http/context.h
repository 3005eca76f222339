// What a route handler sees (Ctx), the route record, and the one error path to the wire.
#pragma once

#include "auth/config.h"
#include "auth/result.h"
#include "auth/service.h"
#include "auth/tokens.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <string>

namespace latch::http {

using nlohmann::json;

// Who may call a route.
enum class Access {
  open,          // anyone
  access_token,  // Authorization: Bearer <access token>, checked before the handler runs
  refresh_token, // Authorization: Bearer <refresh token>, handed to the handler to spend
};
const char *access_name(Access a);

// Which request bodies a route takes.
enum class BodyKind {
  none,
  json_only,       // application/json
  json_form,       // JSON or application/x-www-form-urlencoded
  json_form_multi, // JSON, urlencoded or multipart/form-data (Django REST framework)
};

struct Ctx;
using Handler = void (*)(Ctx &);
struct RouteDoc; // auth/http/route_doc.h

struct Route {
  const char *method;
  const char *path;
  Api api;
  Access access;
  bool throttled; // sign-in, sign-up and reset routes: per-address rate limit
  BodyKind body;
  Handler handler;
  const char *summary;
  const RouteDoc *doc; // request fields, query parameters and answers, for /openapi.json
  bool hashes = false; // hashes a password (sign-in, sign-up, new password): heavy work
};

struct Ctx {
  Ctx(const httplib::Request &request, httplib::Response &response, AuthService &svc,
      const Config &cfg, Api owner, const Route *matched = nullptr)
      : req(request), res(response), service(svc), config(cfg), api(owner), route(matched) {}

  const httplib::Request &req;
  httplib::Response &res;
  AuthService &service;
  const Config &config;
  Api api;
  const Route *route = nullptr; // null for requests no route matched
  json body = json::object();   // the parsed body, always an object
  std::string bearer;           // the raw token for refresh_token routes
  Claims claims;                // the verified access token for access_token routes
  std::string client_address;
  bool hash_line_full = false; // the connection loop's line for hashing was full (Caller)

  // Who asks, for the core's limits and the audit log.
  Caller caller() const;
};

// Sends a JSON body. Strings that are not UTF-8 are replaced, never thrown on.
void send_json(httplib::Response &res, int status, const json &body);

// Renders an Error in the API's own shape (Retry-After included); the only way errors leave.
void send_error(Ctx &ctx, const Error &error);

// A body field read as a string. Missing and null read as missing; numbers, objects and
// arrays as wrong_type; a string of only whitespace as blank.
struct Field {
  enum State { missing, wrong_type, blank, ok } state = missing;
  std::string value;
  bool present() const { return state == ok; }
};
Field field(const json &body, const char *name);

} // namespace latch::http
