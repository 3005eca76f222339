// picflux (NestJS): /api/auth. Errors as NestJS's {"statusCode", "message", "error"}, with
// class-validator's wording for invalid bodies.
#include "auth/apis/apis.h"

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

void bad_request(Ctx &ctx, const std::vector<std::string> &messages) {
  nest_error(ctx, 400, messages, "Bad Request");
}

void send_pair(Ctx &ctx, int status, const TokenPair &pair) {
  send_json(ctx.res, status, {{"access_token", pair.access}, {"refresh_token", pair.refresh}});
}

// @IsEmail() @IsNotEmpty()
void check_email(const Field &f, std::vector<std::string> &errors) {
  if (!f.present()) errors.push_back("email should not be empty");
  if (!f.present() || !valid_email(lower_ascii(f.value))) errors.push_back("email must be an email");
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
                                  ctx.caller(), {.session = Api::picflux});
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

  auto user = ctx.service.sign_in(Identity::email, email.value, password.value, ctx.caller());
  if (!user) return http::send_error(ctx, user.error());
  auto pair = ctx.service.start_session(user.value(), Api::picflux);
  if (!pair) return http::send_error(ctx, pair.error());
  send_pair(ctx, 200, pair.value());
}

void logout(Ctx &ctx) {
  // The access token authenticates; the documented email/password body is ignored.
  if (auto s = ctx.service.logout(ctx.claims); !s) return http::send_error(ctx, s.error());
  ctx.res.status = 200;
}

void refresh(Ctx &ctx) {
  auto pair = ctx.service.refresh(ctx.bearer, Api::picflux, /*rotate=*/true);
  if (!pair) return http::send_error(ctx, pair.error());
  send_pair(ctx, 200, pair.value());
}

void render_error(Ctx &ctx, const Error &e) {
  switch (e.code) {
  case ErrorCode::missing_field:
  case ErrorCode::invalid_field:
    return bad_request(ctx, {e.detail + " is invalid"});
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
  case ErrorCode::bad_request:
    return nest_error(ctx, e.status ? e.status : 400, "Bad Request", "Bad Request");
  case ErrorCode::unsupported_media_type:
    return nest_error(ctx, 415, "Unsupported Media Type", "Unsupported Media Type");
  case ErrorCode::user_exists:
  case ErrorCode::username_taken:
  case ErrorCode::email_taken:
    return nest_error(ctx, 409, "Username or email is already in use", "Conflict");
  case ErrorCode::invalid_credentials:
  case ErrorCode::user_not_found:
  case ErrorCode::wrong_password:
  case ErrorCode::email_not_verified:
    return nest_error(ctx, 401, "Invalid credentials", "Unauthorized");
  case ErrorCode::token_missing:
  case ErrorCode::token_malformed:
  case ErrorCode::token_bad_signature:
  case ErrorCode::token_expired:
  case ErrorCode::token_not_yet_valid:
  case ErrorCode::token_revoked:
  case ErrorCode::token_wrong_type:
  case ErrorCode::one_time_token_invalid:
  case ErrorCode::one_time_token_expired:
    return nest_error(ctx, 401, "Unauthorized", nullptr);
  case ErrorCode::rate_limited:
  case ErrorCode::account_locked:
    return nest_error(ctx, 429, "ThrottlerException: Too Many Requests", nullptr);
  case ErrorCode::busy: return nest_error(ctx, 503, "Service Unavailable", "Service Unavailable");
  case ErrorCode::body_too_large:
    return nest_error(ctx, 413, "request entity too large", "Payload Too Large");
  case ErrorCode::not_found:
  case ErrorCode::method_not_allowed:
    return nest_error(ctx, 404, "Cannot " + ctx.req.method + " " + ctx.req.path, "Not Found");
  case ErrorCode::internal: break;
  }
  nest_error(ctx, 500, "Internal server error", nullptr);
}

} // namespace latch::apis::picflux
