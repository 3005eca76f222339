// v1 (Go + Gin): /api/v1. Errors as {"error": "..."}.
#include "auth/apis/common.h"

#include "auth/pages.h"

namespace latch::apis::v1 {

namespace {

using http::Field;
using http::field;
using http::json;
using http::send_json;

void error(Ctx &ctx, int status, const std::string &text) {
  send_json(ctx.res, status, {{"error", text}});
}

void say(Ctx &ctx, int status, const std::string &text, const char *) {
  error(ctx, status, text);
}

const CommonErrors kCommon = {
    .say = say,
    .token_missing = {"missing token"},
    .token_invalid = {"invalid token"},
    .bad_request = {"bad request"},
    .body_too_large = {"request body too large"},
    .unsupported_media_type = {"unsupported content type"},
    .not_found = {"not found"},
    .method_not_allowed = {"method not allowed"},
    .throttled = {"too many requests"},
    .busy = {"server busy, try again"},
    .internal = {"internal server error"},
};

bool wants_html(const Ctx &ctx) {
  return ctx.req.get_header_value("Accept").find("text/html") != std::string::npos;
}

// sendEmail comes as a query parameter (or a body field); true unless it says false.
std::optional<bool> send_email_flag(const Ctx &ctx) {
  std::string v;
  if (ctx.req.has_param("sendEmail")) {
    v = lower_ascii(ctx.req.get_param_value("sendEmail"));
  } else if (auto it = ctx.body.find("sendEmail"); it != ctx.body.end() && !it->is_null()) {
    if (it->is_boolean()) return it->get<bool>();
    if (!it->is_string()) return std::nullopt;
    v = lower_ascii(it->get<std::string>());
  } else {
    return true;
  }
  if (v == "true" || v == "1" || v.empty()) return true;
  if (v == "false" || v == "0") return false;
  return std::nullopt;
}

} // namespace

void register_user(Ctx &ctx) {
  Field email = field(ctx.body, "email"), username = field(ctx.body, "username"),
        password = field(ctx.body, "password");
  if (!email.present() || !username.present() || !password.present())
    return error(ctx, 400, "email, username and password are required");
  auto send_email = send_email_flag(ctx);
  if (!send_email) return error(ctx, 400, "sendEmail must be true or false");
  // The user and its confirmation token in one transaction; the mail goes after the commit.
  // The original answered the token itself too, which lets anyone confirm an address they do
  // not own: only in local development (--verify-token-in-response), whatever sendEmail says.
  const bool answer = ctx.config.verify_token_in_response;
  auto made = ctx.service.sign_up(
      {username.value, email.value, password.value, "", "", ""}, ctx.caller(),
      {.session = std::nullopt, .confirm_email = *send_email, .answer_confirmation = answer});
  if (!made) return http::send_error(ctx, made.error());
  json body = {{"message", "registered"}};
  if (made->confirmation_token) body["verifyToken"] = *made->confirmation_token;
  send_json(ctx.res, 201, body);
}

void login(Ctx &ctx) {
  Field email = field(ctx.body, "email"), password = field(ctx.body, "password");
  if (!email.present() || !password.present())
    return error(ctx, 400, "email and password are required");
  sign_in(
      ctx, Identity::email, email.value, password.value,
      [](Ctx &c, const TokenPair &pair) {
        send_json(c.res, 200,
                  {{"access_token", pair.access},
                   {"expires_in", pair.access_ttl},
                   {"refresh_expires_in", pair.refresh_ttl},
                   {"refresh_token", pair.refresh}});
      },
      /*verified_only=*/ctx.config.require_verified_email);
}

void refresh(Ctx &ctx) {
  Field token = field(ctx.body, "refresh_token");
  if (!token.present()) return error(ctx, 400, "refresh_token is required");
  auto pair = ctx.service.refresh(token.value, ctx.api, /*rotate=*/false, ctx.caller());
  if (!pair) return http::send_error(ctx, pair.error());
  send_json(ctx.res, 200, {{"access_token", pair->access}, {"expires_in", pair->access_ttl}});
}

void verify(Ctx &ctx) {
  Field token = field(ctx.body, "token");
  if (!token.present()) return error(ctx, 400, "token is required");
  auto claims = ctx.service.check_token(token.value, std::nullopt);
  if (!claims) return http::send_error(ctx, claims.error());
  send_json(ctx.res, 200, {{"token", claims->payload_json()}});
}

void confirm_email(Ctx &ctx) {
  const std::string token = ctx.req.get_param_value("token");
  Status done = token.empty() ? Status(Error{ErrorCode::missing_field, "token"})
                              : ctx.service.confirm_email(token, ctx.caller());
  if (wants_html(ctx)) {
    ctx.res.status = done ? 200 : 400;
    ctx.res.set_header("Referrer-Policy", "no-referrer");
    std::string text = done            ? "Your email address is confirmed. You can close this page."
                       : token.empty() ? "This link has no confirmation token."
                                       : "This confirmation link is invalid, expired or already "
                                         "used. Sign in and ask for a new one.";
    ctx.res.set_content(pages::verify_email_page(done.ok(), text), "text/html; charset=utf-8");
    return;
  }
  if (!done) {
    if (token.empty()) return error(ctx, 400, "token not provided");
    return error(ctx, 400, "invalid or expired token");
  }
  send_json(ctx.res, 200, {{"message", "email verified"}});
}

void password_reset(Ctx &ctx) {
  Field email = field(ctx.body, "email"), username = field(ctx.body, "username");
  if (!email.present() || !username.present())
    return error(ctx, 400, "email and username are required");
  // The same answer whether or not they match a user, so it tells nobody who has an account.
  auto user = ctx.service.find_user_by_email(email.value);
  // The username as sign-in reads it, so a look-alike spelling names the same user or nobody.
  auto named = user ? ctx.service.find_user_by_username(username.value) : std::nullopt;
  if (user && named && named->id == user->id) {
    // Over the account's mail limit nothing is sent, and the answer is the same 200.
    auto sent = ctx.service.start_password_reset(*user, ctx.config.v1_reset_ttl,
                                                 TokenDelivery::mail, ctx.caller());
    if (!sent && sent.error().code != ErrorCode::rate_limited)
      return http::send_error(ctx, sent.error());
  }
  send_json(ctx.res, 200, {{"message", "if the account exists, a reset link has been sent"}});
}

void password_reset_confirm(Ctx &ctx) {
  std::string token = ctx.req.get_param_value("token");
  if (token.empty())
    if (Field f = field(ctx.body, "token"); f.present()) token = f.value;
  if (token.empty()) return error(ctx, 400, "token not provided");
  Field password = field(ctx.body, "new_password"),
        confirm = field(ctx.body, "new_password_confirm");
  if (!password.present() || !confirm.present())
    return error(ctx, 400, "new_password and new_password_confirm are required");
  if (password.value != confirm.value) return error(ctx, 400, "password not confirm");
  auto done = ctx.service.finish_password_reset(token, password.value, ctx.caller());
  if (!done) return http::send_error(ctx, done.error());
  send_json(ctx.res, 200, json::object());
}

void me(Ctx &ctx) {
  send_json(ctx.res, 200, {{"claims", ctx.claims.payload_json()}});
}

void logout(Ctx &ctx) {
  if (auto s = ctx.service.logout(ctx.claims, ctx.caller()); !s)
    return http::send_error(ctx, s.error());
  send_json(ctx.res, 200, {{"message", "logout successful"}});
}

void render_error(Ctx &ctx, const Error &e) {
  switch (e.code) {
  case ErrorCode::missing_field: return error(ctx, 400, e.detail + " is required");
  case ErrorCode::invalid_field:
  case ErrorCode::username_length: return error(ctx, 400, "invalid " + e.detail);
  case ErrorCode::invalid_email: return error(ctx, 400, "invalid email");
  case ErrorCode::weak_password:
    return error(ctx, 400,
                 "password must be at least " + std::to_string(ctx.config.password_min_length) +
                     " characters");
  case ErrorCode::password_too_long:
    return error(ctx, 400,
                 "password must be at most " + std::to_string(ctx.config.password_max_bytes) +
                     " bytes");
  case ErrorCode::bad_body: return error(ctx, 400, "invalid request body");
  case ErrorCode::user_exists:
  case ErrorCode::username_taken:
  case ErrorCode::email_taken: return error(ctx, 409, "user already exists");
  case ErrorCode::invalid_credentials:
  case ErrorCode::user_not_found:
  case ErrorCode::wrong_password: return error(ctx, 401, "invalid credentials");
  case ErrorCode::email_not_verified: return error(ctx, 401, "email not verified");
  case ErrorCode::one_time_token_invalid:
  case ErrorCode::one_time_token_expired: return error(ctx, 400, "invalid or expired token");
  default: return render_common(ctx, e, kCommon);
  }
}

const http::Route kRoutes[] = {
    {"POST", "/api/v1/register", Api::v1, open, throttled, json_only, register_user,
     "create a user; mails an address confirmation unless sendEmail=false", &register_user_doc,
     hashes},
    {"POST", "/api/v1/login", Api::v1, open, throttled, json_only, login,
     "sign in by email; answers tokens and lifetimes", &login_doc, hashes},
    {"POST", "/api/v1/refresh", Api::v1, open, unthrottled, json_only, refresh,
     "a new access token for a refresh token", &refresh_doc},
    {"POST", "/api/v1/verify", Api::v1, open, unthrottled, json_only, verify,
     "check a token of either type; answers its claims", &verify_doc},
    // The original service's router serves the check here; its document says /verify. Both.
    {"POST", "/api/v1/verify-token", Api::v1, open, unthrottled, json_only, verify,
     "POST /api/v1/verify at the path the original service served it", &verify_doc},
    {"GET", "/api/v1/verify", Api::v1, open, throttled, none, confirm_email,
     "confirm an email address (the mailed link)", &confirm_email_doc},
    {"POST", "/api/v1/password-reset", Api::v1, open, throttled, json_only, password_reset,
     "mail a reset link if email and username match a user", &password_reset_doc},
    {"POST", "/api/v1/password-reset-confirm", Api::v1, open, throttled, json_only,
     password_reset_confirm, "set a new password with ?token=", &password_reset_confirm_doc,
     hashes},
    {"GET", "/api/v1/authorized/me", Api::v1, access_token, unthrottled, none, me,
     "the claims of the access token", &me_doc},
    {"POST", "/api/v1/logout", Api::v1, access_token, unthrottled, none, logout,
     "end the session of the access token", &logout_doc},
};

// Listed in auth/apis/api.cpp; constant data, whole before any code runs.
extern constinit const ApiRow row = {
    .id = Api::v1,
    .name = "v1",
    .prefix = "/api/v1",
    .routes = kRoutes,
    .render_error = render_error,
    .lifetimes = {.access = 3600, .refresh = 259200},
    .mails_reset_links = true,
    .doc = &api_doc,
};

} // namespace latch::apis::v1
