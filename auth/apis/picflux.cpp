// picflux (NestJS): /api/auth. Errors as NestJS's {"statusCode", "message", "error"}, with
// class-validator's wording for invalid bodies.
#include "auth/apis/common.h"

namespace latch::apis::picflux {

namespace {

using http::Field;
using http::field;
using http::json;
using http::send_json;

void nest_error(Ctx &ctx, int status, const json &message, const char *error) {
  json body = {{"statusCode", status}, {"message", message}};
  if (error) body["error"] = error;
  send_json(ctx.res, status, body);
}

void say(Ctx &ctx, int status, const std::string &message, const char *error) {
  nest_error(ctx, status, message, error);
}

// NestJS's words for the errors every API answers alike; the tag is its "error".
const CommonErrors kCommon = {
    .say = say,
    .token_missing = {"Unauthorized"},
    .token_invalid = {"Unauthorized"},
    .one_time_tokens_as_tokens = true,
    .bad_request = {"Bad Request", "Bad Request"},
    .body_too_large = {"request entity too large", "Payload Too Large"},
    .unsupported_media_type = {"Unsupported Media Type", "Unsupported Media Type"},
    .not_found = {"Cannot {method} {path}", "Not Found"},
    // NestJS answers a path it serves with another method as one it does not know.
    .method_not_allowed = {"Cannot {method} {path}", "Not Found", 404},
    .throttled = {"ThrottlerException: Too Many Requests"},
    .busy = {"Service Unavailable", "Service Unavailable"},
    .internal = {"Internal server error"},
};

void bad_request(Ctx &ctx, const std::vector<std::string> &messages) {
  nest_error(ctx, 400, messages, "Bad Request");
}

void send_pair(Ctx &ctx, int status, const TokenPair &pair) {
  send_json(ctx.res, status, {{"access_token", pair.access}, {"refresh_token", pair.refresh}});
}

// @IsEmail() @IsNotEmpty()
void check_email(const Field &f, std::vector<std::string> &errors) {
  if (!f.present()) errors.push_back("email should not be empty");
  if (!f.present() || !valid_email(lower_ascii(f.value)))
    errors.push_back("email must be an email");
}

} // namespace

void signup(Ctx &ctx) {
  Field email = field(ctx.body, "email"), username = field(ctx.body, "username"),
        password = field(ctx.body, "password");
  std::vector<std::string> errors;
  check_email(email, errors);
  // @IsString() @Length(4, 30)
  if (username.state == Field::missing || username.state == Field::wrong_type)
    errors.push_back("username must be a string");
  size_t ulen = utf8_length(username.value);
  if (ulen < 4) errors.push_back("username must be longer than or equal to 4 characters");
  if (ulen > 30) errors.push_back("username must be shorter than or equal to 30 characters");
  // @IsString() @MinLength(min) @MaxLength(30)
  if (password.state == Field::missing || password.state == Field::wrong_type)
    errors.push_back("password must be a string");
  size_t plen = utf8_length(password.value);
  if (plen < ctx.config.password_min_length)
    errors.push_back("password must be longer than or equal to " +
                     std::to_string(ctx.config.password_min_length) + " characters");
  if (plen > 30) errors.push_back("password must be shorter than or equal to 30 characters");
  if (!errors.empty()) return bad_request(ctx, errors);

  auto made = ctx.service.sign_up({username.value, email.value, password.value, "", "", ""},
                                  ctx.caller(), {.session = ctx.api});
  if (!made) return http::send_error(ctx, made.error());
  send_pair(ctx, 201, *made->tokens);
}

void signin(Ctx &ctx) {
  Field email = field(ctx.body, "email"), password = field(ctx.body, "password");
  std::vector<std::string> errors;
  check_email(email, errors);
  if (password.state == Field::missing || password.state == Field::wrong_type)
    errors.push_back("password must be a string");
  if (!password.present()) errors.push_back("password should not be empty");
  if (!errors.empty()) return bad_request(ctx, errors);

  sign_in(ctx, Identity::email, email.value, password.value,
          [](Ctx &c, const TokenPair &pair) { send_pair(c, 200, pair); });
}

void logout(Ctx &ctx) {
  // The access token authenticates; the documented email/password body is ignored.
  if (auto s = ctx.service.logout(ctx.claims, ctx.caller()); !s)
    return http::send_error(ctx, s.error());
  ctx.res.status = 200;
}

void refresh(Ctx &ctx) {
  auto pair = ctx.service.refresh(ctx.bearer, ctx.api, /*rotate=*/true, ctx.caller());
  if (!pair) return http::send_error(ctx, pair.error());
  send_pair(ctx, 200, pair.value());
}

void render_error(Ctx &ctx, const Error &e) {
  switch (e.code) {
  case ErrorCode::missing_field:
  case ErrorCode::invalid_field: return bad_request(ctx, {e.detail + " is invalid"});
  case ErrorCode::invalid_email: return bad_request(ctx, {"email must be an email"});
  case ErrorCode::weak_password:
    return bad_request(ctx, {"password must be longer than or equal to " +
                             std::to_string(ctx.config.password_min_length) + " characters"});
  case ErrorCode::password_too_long:
    return bad_request(ctx, {"password must be shorter than or equal to " +
                             std::to_string(ctx.config.password_max_bytes) + " characters"});
  case ErrorCode::username_length:
    return bad_request(ctx, {"username must be shorter than or equal to 30 characters"});
  case ErrorCode::bad_body: return nest_error(ctx, 400, "Invalid request body", "Bad Request");
  case ErrorCode::user_exists:
  case ErrorCode::username_taken:
  case ErrorCode::email_taken:
    return nest_error(ctx, 409, "Username or email is already in use", "Conflict");
  case ErrorCode::invalid_credentials:
  case ErrorCode::user_not_found:
  case ErrorCode::wrong_password:
  case ErrorCode::email_not_verified:
    return nest_error(ctx, 401, "Invalid credentials", "Unauthorized");
  default: return render_common(ctx, e, kCommon);
  }
}

const http::Route kRoutes[] = {
    {"POST", "/api/auth/signup", Api::picflux, open, throttled, json_form, signup,
     "create a user; answers the token pair", &signup_doc, hashes},
    {"POST", "/api/auth/signin", Api::picflux, open, throttled, json_form, signin,
     "sign in by email; answers the token pair", &signin_doc, hashes},
    {"POST", "/api/auth/logout", Api::picflux, access_token, unthrottled, none, logout,
     "end the session of the access token", &logout_doc},
    {"POST", "/api/auth/refresh", Api::picflux, refresh_token, unthrottled, none, refresh,
     "rotate the Bearer refresh token; answers a new pair", &refresh_doc},
};

// Listed in auth/apis/api.cpp; constant data, whole before any code runs.
extern constinit const ApiRow row = {
    .id = Api::picflux,
    .name = "picflux",
    .prefix = "/api/auth",
    .routes = kRoutes,
    .render_error = render_error,
    .lifetimes = {.access = 15 * 60, .refresh = 14 * 86400},
    .doc = &api_doc,
};

} // namespace latch::apis::picflux
