// simplejwt (Django REST framework + djangorestframework-simplejwt): /auth. Field errors as
// {"field": ["..."]}, the rest as {"detail": "...", "code": "..."}.
#include "auth/apis/apis.h"

namespace latch::apis::simplejwt {

namespace {

using http::Field;
using http::field;
using http::json;
using http::send_json;

void detail(Ctx &ctx, int status, const std::string &text, const char *code = nullptr) {
  json body = {{"detail", text}};
  if (code) body["code"] = code;
  send_json(ctx.res, status, body);
}

void token_not_valid(Ctx &ctx) {
  ctx.res.set_header("WWW-Authenticate", "Bearer realm=\"api\"");
  detail(ctx, 401, "Token is invalid or expired", "token_not_valid");
}

// DRF's CharField(required=True, allow_blank=False) messages, one list per field.
bool require(const Field &f, const char *name, json &errors) {
  switch (f.state) {
  case Field::ok: return true;
  case Field::missing: errors[name] = {"This field is required."}; break;
  case Field::blank: errors[name] = {"This field may not be blank."}; break;
  case Field::wrong_type: errors[name] = {"Not a valid string."}; break;
  }
  return false;
}

std::string too_short(const Ctx &ctx) {
  return "This password is too short. It must contain at least " +
         std::to_string(ctx.config.password_min_length) + " characters.";
}

std::string too_long(const Ctx &ctx) {
  return "Ensure this field has no more than " + std::to_string(ctx.config.password_max_bytes) +
         " characters.";
}

void send_pair(Ctx &ctx, int status, const TokenPair &pair) {
  send_json(ctx.res, status, {{"refresh", pair.refresh}, {"access", pair.access}});
}

} // namespace

void token(Ctx &ctx) {
  Field username = field(ctx.body, "username"), password = field(ctx.body, "password");
  json errors = json::object();
  require(username, "username", errors);
  require(password, "password", errors);
  if (!errors.empty()) return send_json(ctx.res, 400, errors);

  auto user =
      ctx.service.sign_in(Identity::username, username.value, password.value, ctx.caller());
  if (!user) return http::send_error(ctx, user.error());
  auto pair = ctx.service.start_session(user.value(), Api::simplejwt);
  if (!pair) return http::send_error(ctx, pair.error());
  send_pair(ctx, 200, pair.value());
}

void token_refresh(Ctx &ctx) {
  Field refresh = field(ctx.body, "refresh");
  json errors = json::object();
  if (!require(refresh, "refresh", errors)) return send_json(ctx.res, 400, errors);
  // ROTATE_REFRESH_TOKENS with BLACKLIST_AFTER_ROTATION: every refresh token is single use.
  auto pair = ctx.service.refresh(refresh.value, Api::simplejwt, /*rotate=*/true);
  if (!pair) return http::send_error(ctx, pair.error());
  send_pair(ctx, 200, pair.value());
}

void token_verify(Ctx &ctx) {
  Field token = field(ctx.body, "token");
  json errors = json::object();
  if (!require(token, "token", errors)) return send_json(ctx.res, 400, errors);
  // As SimpleJWT's TokenVerifyView: either token type verifies.
  auto claims = ctx.service.check_token(token.value, std::nullopt);
  if (!claims) return http::send_error(ctx, claims.error());
  send_json(ctx.res, 200, json::object());
}

void register_user(Ctx &ctx) {
  Field username = field(ctx.body, "username"), password = field(ctx.body, "password"),
        email = field(ctx.body, "email");
  json errors = json::object();
  require(username, "username", errors);
  if (require(password, "password", errors)) {
    if (auto bad = ctx.service.check_password(password.value))
      errors["password"] = {*bad == ErrorCode::weak_password ? too_short(ctx) : too_long(ctx)};
  }
  std::optional<std::string> email_value;
  if (email.state == Field::wrong_type) errors["email"] = {"Not a valid string."};
  if (email.present()) {
    if (!valid_email(lower_ascii(email.value))) errors["email"] = {"Enter a valid email address."};
    email_value = email.value;
  }
  if (!errors.empty()) return send_json(ctx.res, 400, errors);

  auto made = ctx.service.sign_up({username.value, email_value, password.value, "", "", ""},
                                  ctx.caller(), {.session = Api::simplejwt});
  if (!made) return http::send_error(ctx, made.error());
  send_pair(ctx, 201, *made->tokens);
}

void getuser(Ctx &ctx) { send_json(ctx.res, 200, {{"username", ctx.claims.username}}); }

void render_error(Ctx &ctx, const Error &e) {
  switch (e.code) {
  case ErrorCode::missing_field:
    return send_json(ctx.res, 400, {{e.detail, {"This field is required."}}});
  case ErrorCode::invalid_field:
    return send_json(ctx.res, 400, {{e.detail.empty() ? "non_field_errors" : e.detail,
                                     {"Enter a valid value."}}});
  case ErrorCode::invalid_email:
    return send_json(ctx.res, 400, {{"email", {"Enter a valid email address."}}});
  case ErrorCode::weak_password: return send_json(ctx.res, 400, {{"password", {too_short(ctx)}}});
  case ErrorCode::password_too_long:
    return send_json(ctx.res, 400, {{"password", {too_long(ctx)}}});
  case ErrorCode::username_length:
    return send_json(ctx.res, 400, {{"username", {"Ensure this field has no more than 150 characters."}}});
  case ErrorCode::bad_body: return detail(ctx, 400, "JSON parse error - " + e.detail, "parse_error");
  case ErrorCode::bad_request:
    return detail(ctx, e.status ? e.status : 400, "Malformed request.", "parse_error");
  case ErrorCode::unsupported_media_type:
    return detail(ctx, 415, "Unsupported media type \"" + e.detail + "\" in request.",
                  "unsupported_media_type");
  case ErrorCode::user_exists:
  case ErrorCode::username_taken:
  case ErrorCode::email_taken: return detail(ctx, 409, "User already exists");
  case ErrorCode::invalid_credentials:
  case ErrorCode::user_not_found:
  case ErrorCode::wrong_password:
  case ErrorCode::email_not_verified:
    return detail(ctx, 401, "No active account found with the given credentials");
  case ErrorCode::token_missing:
    ctx.res.set_header("WWW-Authenticate", "Bearer realm=\"api\"");
    return detail(ctx, 401, "Authentication credentials were not provided.");
  case ErrorCode::token_malformed:
  case ErrorCode::token_bad_signature:
  case ErrorCode::token_expired:
  case ErrorCode::token_not_yet_valid:
  case ErrorCode::token_revoked:
  case ErrorCode::token_wrong_type:
  case ErrorCode::one_time_token_invalid:
  case ErrorCode::one_time_token_expired: return token_not_valid(ctx);
  case ErrorCode::rate_limited:
  case ErrorCode::account_locked:
    return detail(ctx, 429,
                  "Request was throttled. Expected available in " +
                      std::to_string(std::max(1, e.retry_after)) + " seconds.",
                  "throttled");
  case ErrorCode::busy:
    return detail(ctx, 503, "Service temporarily unavailable, try again later.",
                  "service_unavailable");
  case ErrorCode::body_too_large: return detail(ctx, 413, "Request body too large.");
  case ErrorCode::not_found: return detail(ctx, 404, "Not found.", "not_found");
  case ErrorCode::method_not_allowed:
    return detail(ctx, 405, "Method \"" + ctx.req.method + "\" not allowed.", "method_not_allowed");
  case ErrorCode::internal: break;
  }
  detail(ctx, 500, "A server error occurred.", "error");
}

} // namespace latch::apis::simplejwt
