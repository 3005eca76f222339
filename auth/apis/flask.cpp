// flask (Flask + flask-jwt-extended): /auth. Bodies {"message": "..."}; token problems are
// flask-jwt-extended's {"msg": "..."}, always with 401.
#include "auth/apis/apis.h"

namespace latch::apis::flask {

namespace {

using http::Field;
using http::field;
using http::json;
using http::send_json;

void message(Ctx &ctx, int status, const std::string &text) {
  send_json(ctx.res, status, {{"message", text}});
}

void msg(Ctx &ctx, const std::string &text) { send_json(ctx.res, 401, {{"msg", text}}); }

} // namespace

void signup(Ctx &ctx) {
  Field username = field(ctx.body, "username"), email = field(ctx.body, "email"),
        password = field(ctx.body, "password");
  if (!username.present() || !email.present() || !password.present())
    return message(ctx, 400, "Missing required fields.");
  auto made = ctx.service.sign_up({username.value, email.value, password.value, "", "", ""},
                                  ctx.caller());
  if (!made) return http::send_error(ctx, made.error());
  message(ctx, 201, "User created.");
}

void login(Ctx &ctx) {
  Field username = field(ctx.body, "username"), password = field(ctx.body, "password");
  if (!username.present() || !password.present()) return message(ctx, 400, "Missing credentials.");
  auto user =
      ctx.service.sign_in(Identity::username, username.value, password.value, ctx.caller());
  if (!user) return http::send_error(ctx, user.error());
  auto pair = ctx.service.start_session(user.value(), Api::flask);
  if (!pair) return http::send_error(ctx, pair.error());
  send_json(ctx.res, 200, {{"access_token", pair->access}, {"refresh_token", pair->refresh}});
}

void refresh(Ctx &ctx) {
  // Only a new access token: the refresh token stays valid until it expires or the session ends.
  auto pair = ctx.service.refresh(ctx.bearer, Api::flask, /*rotate=*/false);
  if (!pair) return http::send_error(ctx, pair.error());
  send_json(ctx.res, 200, {{"access_token", pair->access}});
}

void forget_password(Ctx &ctx) {
  Field email = field(ctx.body, "email");
  if (!email.present()) return message(ctx, 400, "Email required.");
  auto user = ctx.service.find_user_by_email(email.value);
  if (!user) return message(ctx, 404, "No user with that email.");
  // The documented answer carries a token itself; that is only safe in local development.
  const bool answer = ctx.config.reset_token_in_response;
  auto token = ctx.service.start_password_reset(
      *user, ctx.config.reset_ttl, answer ? TokenDelivery::mail_and_answer : TokenDelivery::mail);
  if (!token) return http::send_error(ctx, token.error());
  if (answer) return send_json(ctx.res, 200, {{"reset_token", token.value()}});
  message(ctx, 200, "Password reset link sent.");
}

void reset_password(Ctx &ctx) {
  Field token = field(ctx.body, "reset_token"), password = field(ctx.body, "new_password");
  if (!token.present() || !password.present())
    return message(ctx, 400, "Token and new password required.");
  auto done = ctx.service.finish_password_reset(token.value, password.value, ctx.caller());
  if (!done) return http::send_error(ctx, done.error());
  message(ctx, 200, "Password reset successful.");
}

void logout(Ctx &ctx) {
  if (auto s = ctx.service.logout(ctx.claims); !s) return http::send_error(ctx, s.error());
  message(ctx, 200, "Logged out successfully.");
}

void render_error(Ctx &ctx, const Error &e) {
  switch (e.code) {
  case ErrorCode::missing_field:
  case ErrorCode::invalid_field:
  case ErrorCode::username_length: return message(ctx, 400, "Missing required fields.");
  case ErrorCode::invalid_email: return message(ctx, 400, "Invalid email address.");
  case ErrorCode::weak_password:
    return message(ctx, 400, "Password must be at least " +
                                 std::to_string(ctx.config.password_min_length) + " characters.");
  case ErrorCode::password_too_long:
    return message(ctx, 400, "Password must be at most " +
                                 std::to_string(ctx.config.password_max_bytes) + " bytes.");
  case ErrorCode::bad_body: return message(ctx, 400, "Invalid JSON body.");
  case ErrorCode::bad_request: return message(ctx, e.status ? e.status : 400, "Bad request.");
  case ErrorCode::unsupported_media_type:
    return message(ctx, 415, "Content-Type must be application/json.");
  case ErrorCode::user_exists:
  case ErrorCode::username_taken:
  case ErrorCode::email_taken: return message(ctx, 409, "User already exists.");
  case ErrorCode::invalid_credentials:
  case ErrorCode::user_not_found:
  case ErrorCode::wrong_password:
  case ErrorCode::email_not_verified: return message(ctx, 401, "Invalid credentials.");
  case ErrorCode::one_time_token_invalid: return message(ctx, 401, "Invalid reset token.");
  case ErrorCode::one_time_token_expired: return message(ctx, 401, "Reset token expired.");
  case ErrorCode::token_missing: return msg(ctx, "Missing Authorization Header");
  case ErrorCode::token_malformed:
    return msg(ctx, e.detail == "segments" ? "Not enough segments" : "Invalid token");
  case ErrorCode::token_bad_signature:
    return msg(ctx, e.detail == "algorithm" ? "The specified alg value is not allowed"
                                            : "Signature verification failed");
  case ErrorCode::token_expired: return msg(ctx, "Token has expired");
  case ErrorCode::token_not_yet_valid:
    return msg(ctx, e.detail == "nbf" ? "The token is not yet valid (nbf)"
                                      : "The token is not yet valid (iat)");
  case ErrorCode::token_revoked: return msg(ctx, "Token has been revoked");
  case ErrorCode::token_wrong_type:
    return msg(ctx, e.detail == "refresh" ? "Only refresh tokens are allowed"
                                          : "Only non-refresh tokens are allowed");
  case ErrorCode::rate_limited:
  case ErrorCode::account_locked:
    return message(ctx, 429, "Too many requests. Try again in " +
                                 std::to_string(std::max(1, e.retry_after)) + " seconds.");
  case ErrorCode::busy: return message(ctx, 503, "Server busy, try again shortly.");
  case ErrorCode::body_too_large: return message(ctx, 413, "Request body too large.");
  case ErrorCode::not_found: return message(ctx, 404, "Not found.");
  case ErrorCode::method_not_allowed: return message(ctx, 405, "Method not allowed.");
  case ErrorCode::internal: break;
  }
  message(ctx, 500, "Internal server error.");
}

} // namespace latch::apis::flask
