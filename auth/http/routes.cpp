// THE route table. Every route of the five API documents is one line here; `latch routes`
// prints it and tests/http/test_routes.cpp keeps the printed table, this one and README's equal. Each row points
// at what /openapi.json says of the route (auth/apis/docs.cpp).
#include "auth/http/routes.h"

#include "auth/apis/apis.h"
#include "auth/apis/docs.h"

#include <sstream>

namespace latch::http {

namespace a = latch::apis;

const std::vector<Route> &route_table() {
  using enum Access;
  using enum BodyKind;
  constexpr bool throttled = true, unthrottled = false;
  constexpr bool hashes = true; // the handler hashes a password: it takes a hashing slot
  static const std::vector<Route> table = {
      // picflux (NestJS): /api/auth
      {"POST", "/api/auth/signup", Api::picflux, open, throttled, json_form, a::picflux::signup,
       "create a user; answers the token pair", &a::picflux::signup_doc, hashes},
      {"POST", "/api/auth/signin", Api::picflux, open, throttled, json_form, a::picflux::signin,
       "sign in by email; answers the token pair", &a::picflux::signin_doc, hashes},
      {"POST", "/api/auth/logout", Api::picflux, access_token, unthrottled, none,
       a::picflux::logout, "end the session of the access token", &a::picflux::logout_doc},
      {"POST", "/api/auth/refresh", Api::picflux, refresh_token, unthrottled, none,
       a::picflux::refresh, "rotate the Bearer refresh token; answers a new pair",
       &a::picflux::refresh_doc},

      // simplejwt (Django REST framework + SimpleJWT): /auth
      {"POST", "/auth/token", Api::simplejwt, open, throttled, json_form_multi,
       a::simplejwt::token, "sign in by username; answers {refresh, access}",
       &a::simplejwt::token_doc, hashes},
      {"POST", "/auth/token/refresh", Api::simplejwt, open, unthrottled, json_form_multi,
       a::simplejwt::token_refresh, "rotate a refresh token; answers {refresh, access}",
       &a::simplejwt::token_refresh_doc},
      {"POST", "/auth/token/verify", Api::simplejwt, open, unthrottled, json_form_multi,
       a::simplejwt::token_verify, "check a token of either type; answers {}",
       &a::simplejwt::token_verify_doc},
      {"POST", "/auth/register", Api::simplejwt, open, throttled, json_form_multi,
       a::simplejwt::register_user, "create a user; answers {refresh, access}",
       &a::simplejwt::register_user_doc, hashes},
      {"GET", "/auth/getuser", Api::simplejwt, access_token, unthrottled, none,
       a::simplejwt::getuser, "the caller's username", &a::simplejwt::getuser_doc},

      // flask (Flask + flask-jwt-extended): /auth
      {"POST", "/auth/signup", Api::flask, open, throttled, json_only, a::flask::signup,
       "create a user", &a::flask::signup_doc, hashes},
      {"POST", "/auth/login", Api::flask, open, throttled, json_only, a::flask::login,
       "sign in by username; answers the token pair", &a::flask::login_doc, hashes},
      {"POST", "/auth/refresh", Api::flask, refresh_token, unthrottled, none, a::flask::refresh,
       "a new access token for the Bearer refresh token", &a::flask::refresh_doc},
      {"POST", "/auth/forget-password", Api::flask, open, throttled, json_only,
       a::flask::forget_password, "start a password reset (mail, or token in dev mode)",
       &a::flask::forget_password_doc},
      {"POST", "/auth/reset-password", Api::flask, open, throttled, json_only, a::flask::reset_password,
       "set a new password with a reset token", &a::flask::reset_password_doc, hashes},
      {"POST", "/auth/logout", Api::flask, access_token, unthrottled, none, a::flask::logout,
       "end the session of the access token", &a::flask::logout_doc},

      // v1 (Go + Gin): /api/v1
      {"POST", "/api/v1/register", Api::v1, open, throttled, json_only, a::v1::register_user,
       "create a user; mails an address confirmation unless sendEmail=false",
       &a::v1::register_user_doc, hashes},
      {"POST", "/api/v1/login", Api::v1, open, throttled, json_only, a::v1::login,
       "sign in by email; answers tokens and lifetimes", &a::v1::login_doc, hashes},
      {"POST", "/api/v1/refresh", Api::v1, open, unthrottled, json_only, a::v1::refresh,
       "a new access token for a refresh token", &a::v1::refresh_doc},
      {"POST", "/api/v1/verify", Api::v1, open, unthrottled, json_only, a::v1::verify,
       "check a token of either type; answers its claims", &a::v1::verify_doc},
      {"GET", "/api/v1/verify", Api::v1, open, throttled, none, a::v1::confirm_email,
       "confirm an email address (the mailed link)", &a::v1::confirm_email_doc},
      {"POST", "/api/v1/password-reset", Api::v1, open, throttled, json_only, a::v1::password_reset,
       "mail a reset link if email and username match a user", &a::v1::password_reset_doc},
      {"POST", "/api/v1/password-reset-confirm", Api::v1, open, throttled, json_only,
       a::v1::password_reset_confirm, "set a new password with ?token=",
       &a::v1::password_reset_confirm_doc, hashes},
      {"GET", "/api/v1/authorized/me", Api::v1, access_token, unthrottled, none, a::v1::me,
       "the claims of the access token", &a::v1::me_doc},
      {"POST", "/api/v1/logout", Api::v1, access_token, unthrottled, none, a::v1::logout,
       "end the session of the access token", &a::v1::logout_doc},

      // envelope (Express): /api/v1/auth
      {"POST", "/api/v1/auth/login", Api::envelope, open, throttled, json_only, a::envelope::login,
       "sign in by email or username; answers data: [token]", &a::envelope::login_doc, hashes},
      {"POST", "/api/v1/auth/signUp", Api::envelope, open, throttled, json_only, a::envelope::sign_up,
       "create a user; answers data: [user]", &a::envelope::sign_up_doc, hashes},
  };
  return table;
}

std::string format_route_table() {
  std::ostringstream out;
  out << "METHOD  PATH                              API        ACCESS   LIMITED  SUMMARY\n";
  for (const Route &r : route_table()) {
    std::string method = r.method, path = r.path, api = api_name(r.api), acc = access_name(r.access);
    out << method << std::string(8 - method.size(), ' ') << path
        << std::string(path.size() < 34 ? 34 - path.size() : 1, ' ') << api
        << std::string(11 - api.size(), ' ') << acc << std::string(9 - acc.size(), ' ')
        << (r.throttled ? "yes      " : "no       ") << r.summary << "\n";
  }
  return out.str();
}

std::optional<Api> api_for_path(const std::string &path, const std::set<Api> &enabled) {
  for (const Route &r : route_table())
    if (path == r.path && enabled.count(r.api)) return r.api;
  auto under = [&](const char *prefix) {
    std::string p = prefix;
    return path == p || path.rfind(p + "/", 0) == 0;
  };
  auto pick = [&](Api api) { return enabled.count(api) ? std::optional<Api>(api) : std::nullopt; };
  if (under("/api/v1/auth")) return pick(Api::envelope);
  if (under("/api/v1")) return pick(Api::v1);
  if (under("/api/auth")) return pick(Api::picflux);
  if (under("/auth")) {
    // simplejwt and flask share /auth: token paths are simplejwt's, the rest flask's.
    if (under("/auth/token") && enabled.count(Api::simplejwt)) return Api::simplejwt;
    if (enabled.count(Api::flask)) return Api::flask;
    return pick(Api::simplejwt);
  }
  return std::nullopt;
}

} // namespace latch::http
