// simplejwt (Django REST framework + djangorestframework-simplejwt): /auth. Field errors as
// {"field": ["..."]}, the rest as {"detail": "...", "code": "..."}.
#include "auth/apis/common.h"

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

void say(Ctx &ctx, int status, const std::string &text, const char *code) {
  detail(ctx, status, text, code);
}

// DRF's and SimpleJWT's words for the errors every API answers alike; the tag is its "code".
const CommonErrors kCommon = {
    .say = say,
    .token_challenge = "Bearer realm=\"api\"",
    .token_missing = {"Authentication credentials were not provided."},
    .token_invalid = {"Token is invalid or expired", "token_not_valid"},
    .one_time_tokens_as_tokens = true,
    .bad_request = {"Malformed request.", "parse_error"},
    .body_too_large = {"Request body too large."},
    .unsupported_media_type = {"Unsupported media type \"{detail}\" in request.",
                               "unsupported_media_type"},
    .not_found = {"Not found.", "not_found"},
    .method_not_allowed = {"Method \"{method}\" not allowed.", "method_not_allowed"},
    .throttled = {"Request was throttled. Expected available in {retry} seconds.", "throttled"},
    .busy = {"Service temporarily unavailable, try again later.", "service_unavailable"},
    .internal = {"A server error occurred.", "error"},
};

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

  sign_in(ctx, Identity::username, username.value, password.value,
          [](Ctx &c, const TokenPair &pair) { send_pair(c, 200, pair); });
}

void token_refresh(Ctx &ctx) {
  Field refresh = field(ctx.body, "refresh");
  json errors = json::object();
  if (!require(refresh, "refresh", errors)) return send_json(ctx.res, 400, errors);
  // ROTATE_REFRESH_TOKENS with BLACKLIST_AFTER_ROTATION: every refresh token is single use.
  auto pair = ctx.service.refresh(refresh.value, ctx.api, /*rotate=*/true, ctx.caller());
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
                                  ctx.caller(), {.session = ctx.api});
  if (!made) return http::send_error(ctx, made.error());
  send_pair(ctx, 201, *made->tokens);
}

void getuser(Ctx &ctx) {
  send_json(ctx.res, 200, {{"username", ctx.claims.username}});
}

void render_error(Ctx &ctx, const Error &e) {
  switch (e.code) {
  case ErrorCode::missing_field:
    return send_json(ctx.res, 400, {{e.detail, {"This field is required."}}});
  case ErrorCode::invalid_field:
    return send_json(
        ctx.res, 400,
        {{e.detail.empty() ? "non_field_errors" : e.detail, {"Enter a valid value."}}});
  case ErrorCode::invalid_email:
    return send_json(ctx.res, 400, {{"email", {"Enter a valid email address."}}});
  case ErrorCode::weak_password: return send_json(ctx.res, 400, {{"password", {too_short(ctx)}}});
  case ErrorCode::password_too_long:
    return send_json(ctx.res, 400, {{"password", {too_long(ctx)}}});
  case ErrorCode::username_length:
    return send_json(ctx.res, 400,
                     {{"username", {"Ensure this field has no more than 150 characters."}}});
  case ErrorCode::bad_body:
    return detail(ctx, 400, "JSON parse error - " + e.detail, "parse_error");
  case ErrorCode::user_exists:
  case ErrorCode::username_taken:
  case ErrorCode::email_taken: return detail(ctx, 409, "User already exists");
  case ErrorCode::invalid_credentials:
  case ErrorCode::user_not_found:
  case ErrorCode::wrong_password:
  case ErrorCode::email_not_verified:
    return detail(ctx, 401, "No active account found with the given credentials");
  default: return render_common(ctx, e, kCommon);
  }
}

const http::Route kRoutes[] = {
    {"POST", "/auth/token", Api::simplejwt, open, throttled, json_form_multi, token,
     "sign in by username; answers {refresh, access}", &token_doc, hashes},
    {"POST", "/auth/token/refresh", Api::simplejwt, open, unthrottled, json_form_multi,
     token_refresh, "rotate a refresh token; answers {refresh, access}", &token_refresh_doc},
    {"POST", "/auth/token/verify", Api::simplejwt, open, unthrottled, json_form_multi, token_verify,
     "check a token of either type; answers {}", &token_verify_doc},
    {"POST", "/auth/register", Api::simplejwt, open, throttled, json_form_multi, register_user,
     "create a user; answers {refresh, access}", &register_user_doc, hashes},
    {"GET", "/auth/getuser", Api::simplejwt, access_token, unthrottled, none, getuser,
     "the caller's username", &getuser_doc},
};

// /auth is flask's too: the token paths are simplejwt's, the rest flask's while it is on.
const PathClaim kClaims[] = {{"/auth/token", PathClaim::shares}, {"/auth", PathClaim::fallback}};

// Listed in auth/apis/api.cpp; constant data, whole before any code runs.
extern constinit const ApiRow row = {
    .id = Api::simplejwt,
    .name = "simplejwt",
    .prefix = "/auth",
    .claims = kClaims,
    .routes = kRoutes,
    .render_error = render_error,
    .lifetimes = {.access = 5 * 60, .refresh = 86400},
    .doc = &api_doc,
};

} // namespace latch::apis::simplejwt
