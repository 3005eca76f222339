// flask (Flask + flask-jwt-extended): /auth. Bodies {"message": "..."}; token problems are
// flask-jwt-extended's {"msg": "..."}, always with 401.
#include "auth/apis/common.h"

namespace latch::apis::flask {

namespace {

using http::Field;
using http::field;
using http::json;
using http::send_json;

void message(Ctx &ctx, int status, const std::string &text) {
  send_json(ctx.res, status, {{"message", text}});
}

// The tag is the key: "msg" for flask-jwt-extended's answers, else "message".
void say(Ctx &ctx, int status, const std::string &text, const char *key) {
  send_json(ctx.res, status, {{key ? key : "message", text}});
}

// flask-jwt-extended's message for each token error.
const char *jwt_message(const Error &e) {
  switch (e.code) {
  case ErrorCode::token_missing: return "Missing Authorization Header";
  case ErrorCode::token_bad_signature:
    return e.detail == "algorithm" ? "The specified alg value is not allowed"
                                   : "Signature verification failed";
  case ErrorCode::token_expired: return "Token has expired";
  case ErrorCode::token_not_yet_valid:
    return e.detail == "nbf" ? "The token is not yet valid (nbf)"
                             : "The token is not yet valid (iat)";
  case ErrorCode::token_revoked: return "Token has been revoked";
  case ErrorCode::token_wrong_type:
    return e.detail == "refresh" ? "Only refresh tokens are allowed"
                                 : "Only non-refresh tokens are allowed";
  default: return e.detail == "segments" ? "Not enough segments" : "Invalid token"; // malformed
  }
}

Phrase jwt_msg(const Error &e) {
  return {jwt_message(e), "msg"};
}

const CommonErrors kCommon = {
    .say = say,
    .token_phrase = jwt_msg,
    .bad_request = {"Bad request."},
    .body_too_large = {"Request body too large."},
    .unsupported_media_type = {"Content-Type must be application/json."},
    .not_found = {"Not found."},
    .method_not_allowed = {"Method not allowed."},
    .throttled = {"Too many requests. Try again in {retry} seconds."},
    .busy = {"Server busy, try again shortly."},
    .internal = {"Internal server error."},
};

} // namespace

void signup(Ctx &ctx) {
  Field username = field(ctx.body, "username"), email = field(ctx.body, "email"),
        password = field(ctx.body, "password");
  if (!username.present() || !email.present() || !password.present())
    return message(ctx, 400, "Missing required fields.");
  auto made =
      ctx.service.sign_up({username.value, email.value, password.value, "", "", ""}, ctx.caller());
  if (!made) return http::send_error(ctx, made.error());
  message(ctx, 201, "User created.");
}

void login(Ctx &ctx) {
  Field username = field(ctx.body, "username"), password = field(ctx.body, "password");
  if (!username.present() || !password.present()) return message(ctx, 400, "Missing credentials.");
  sign_in(ctx, Identity::username, username.value, password.value,
          [](Ctx &c, const TokenPair &pair) {
            send_json(c.res, 200, {{"access_token", pair.access}, {"refresh_token", pair.refresh}});
          });
}

void refresh(Ctx &ctx) {
  // Only a new access token: the refresh token stays valid until it expires or the session ends.
  auto pair = ctx.service.refresh(ctx.bearer, ctx.api, /*rotate=*/false, ctx.caller());
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
      *user, ctx.config.reset_ttl, answer ? TokenDelivery::mail_and_answer : TokenDelivery::mail,
      ctx.caller());
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
  if (auto s = ctx.service.logout(ctx.claims, ctx.caller()); !s)
    return http::send_error(ctx, s.error());
  message(ctx, 200, "Logged out successfully.");
}

void render_error(Ctx &ctx, const Error &e) {
  switch (e.code) {
  case ErrorCode::missing_field:
  case ErrorCode::invalid_field:
  case ErrorCode::username_length: return message(ctx, 400, "Missing required fields.");
  case ErrorCode::invalid_email: return message(ctx, 400, "Invalid email address.");
  case ErrorCode::weak_password:
    return message(ctx, 400,
                   "Password must be at least " + std::to_string(ctx.config.password_min_length) +
                       " characters.");
  case ErrorCode::password_too_long:
    return message(ctx, 400,
                   "Password must be at most " + std::to_string(ctx.config.password_max_bytes) +
                       " bytes.");
  case ErrorCode::bad_body: return message(ctx, 400, "Invalid JSON body.");
  case ErrorCode::user_exists:
  case ErrorCode::username_taken:
  case ErrorCode::email_taken: return message(ctx, 409, "User already exists.");
  case ErrorCode::invalid_credentials:
  case ErrorCode::user_not_found:
  case ErrorCode::wrong_password:
  case ErrorCode::email_not_verified: return message(ctx, 401, "Invalid credentials.");
  case ErrorCode::one_time_token_invalid: return message(ctx, 401, "Invalid reset token.");
  case ErrorCode::one_time_token_expired: return message(ctx, 401, "Reset token expired.");
  default: return render_common(ctx, e, kCommon);
  }
}

const http::Route kRoutes[] = {
    {"POST", "/auth/signup", Api::flask, open, throttled, json_only, signup, "create a user",
     &signup_doc, hashes},
    {"POST", "/auth/login", Api::flask, open, throttled, json_only, login,
     "sign in by username; answers the token pair", &login_doc, hashes},
    {"POST", "/auth/refresh", Api::flask, refresh_token, unthrottled, none, refresh,
     "a new access token for the Bearer refresh token", &refresh_doc},
    {"POST", "/auth/forget-password", Api::flask, open, throttled, json_only, forget_password,
     "start a password reset (mail, or token in dev mode)", &forget_password_doc},
    {"POST", "/auth/reset-password", Api::flask, open, throttled, json_only, reset_password,
     "set a new password with a reset token", &reset_password_doc, hashes},
    {"POST", "/auth/logout", Api::flask, access_token, unthrottled, none, logout,
     "end the session of the access token", &logout_doc},
};

// /auth is simplejwt's too: its token paths are simplejwt's (auth/apis/simplejwt.cpp).
const PathClaim kClaims[] = {{"/auth", PathClaim::shares}};

// Listed in auth/apis/api.cpp; constant data, whole before any code runs.
extern constinit const ApiRow row = {
    .id = Api::flask,
    .name = "flask",
    .prefix = "/auth",
    .claims = kClaims,
    .routes = kRoutes,
    .render_error = render_error,
    .lifetimes = {.access = 3600, .refresh = 30 * 86400},
    .mails_reset_links = true,
    .doc = &api_doc,
};

} // namespace latch::apis::flask
