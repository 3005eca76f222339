// The admin console at /_/: its JSON API under /_/api/ (admin sessions by cookie, CSRF
// tokens, the users' pages and actions through AuthService) and its static pages.
#pragma once

#include "auth/config.h"
#include "auth/service.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <string>
#include <string_view>

namespace latch::http {

// One embedded file of the console's browser side.
struct ConsoleFile {
  std::string content_type; // "text/html; charset=utf-8", "text/javascript; charset=utf-8", ...
  std::string body;
};
// The console's static files by their path ("/_/" is the page, "/_/console.js" ...), embedded
// in the binary. Defined by auth/http/console_files.cpp, the browser side's one entry point.
const std::map<std::string, ConsoleFile> &console_files();

class Console {
public:
  Console(const Config &config, AuthService &service);

  // Whether path is the console's: "/_" and everything under "/_/".
  static bool owns(std::string_view path);
  // Whether the request hashes a password (the heavy lane): the sign-in, a new password.
  static bool hashes(std::string_view method, std::string_view path);

  // Answers a request for a path the console owns: 404 (the answer of a server without a
  // console) until an admin exists.
  void serve(const httplib::Request &req, httplib::Response &res);

private:
  struct Call;
  void api(Call &call);
  void serve_file(const httplib::Request &req, httplib::Response &res);

  const Config &config_;
  AuthService &service_;
  const std::chrono::steady_clock::time_point started_;
  const bool secure_cookie_;
};

} // namespace latch::http
