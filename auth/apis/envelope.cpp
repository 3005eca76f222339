// envelope (Express): /api/v1/auth. Every answer, errors included, is the envelope
// {"code", "requestTime", "message", "apiVersion", "data": [...]} with HTTP status = code.
#include "auth/apis/common.h"

#include <chrono>
#include <ctime>

namespace latch::apis::envelope {

namespace {

using http::Field;
using http::field;
using http::json;

// ISO 8601 UTC with milliseconds, as JavaScript's Date.prototype.toISOString.
std::string request_time() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

void reply(Ctx &ctx, int code, const std::string &message, json data = json::array()) {
  http::send_json(ctx.res, code,
                  {{"code", code},
                   {"requestTime", request_time()},
                   {"message", message},
                   {"apiVersion", ctx.config.api_version},
                   {"data", std::move(data)}});
}

void say(Ctx &ctx, int status, const std::string &message, const char *) {
  reply(ctx, status, message);
}

const CommonErrors kCommon = {
    .say = say,
    .token_missing = {"Unauthorized"},
    .token_invalid = {"Unauthorized"},
    .one_time_tokens_as_tokens = true,
    .bad_request = {"Bad request"},
    .body_too_large = {"Payload too large"},
    .unsupported_media_type = {"Unsupported media type"},
    .not_found = {"Not found"},
    .method_not_allowed = {"Method not allowed"},
    .throttled = {"Too many requests"},
    .busy = {"Server busy"},
    // Never the internal cause: the original put "err" here, which leaks details.
    .internal = {"Server error"},
};

// At least 8 characters with a lower-case letter, an upper-case letter, a digit and one
// of !@#$%^&* (and never below the server-wide minimum).
bool strong_password(const Ctx &ctx, const std::string &pw) {
  auto has = [&](auto pred) { return std::any_of(pw.begin(), pw.end(), pred); };
  return utf8_length(pw) >= std::max<std::size_t>(8, ctx.config.password_min_length) &&
         pw.size() <= ctx.config.password_max_bytes &&
         has([](unsigned char c) { return std::islower(c); }) &&
         has([](unsigned char c) { return std::isupper(c); }) &&
         has([](unsigned char c) { return std::isdigit(c); }) &&
         has([](char c) { return std::string_view("!@#$%^&*").find(c) != std::string_view::npos; });
}

} // namespace

void login(Ctx &ctx) {
  Field identity = field(ctx.body, "identity"), password = field(ctx.body, "password");
  if (!identity.present() || !password.present())
    return reply(ctx, 400, "Identity and password are required");
  sign_in(
      ctx, Identity::email_or_username, identity.value, password.value,
      [](Ctx &c, const TokenPair &pair) { reply(c, 200, "Success", json::array({pair.access})); });
}

void sign_up(Ctx &ctx) {
  if (ctx.body.empty()) return reply(ctx, 400, "User is empty");
  for (const char *name : {"username", "email", "password", "display_name"}) {
    Field f = field(ctx.body, name);
    if (f.state == Field::missing) return reply(ctx, 400, std::string(name) + " is required");
    if (!f.present()) return reply(ctx, 400, std::string(name) + " is not valid");
  }
  for (const char *name : {"phone_number", "profile_picture"})
    if (Field f = field(ctx.body, name); f.state == Field::wrong_type)
      return reply(ctx, 400, std::string(name) + " is not valid");
  NewUser u;
  u.username = field(ctx.body, "username").value;
  u.email = field(ctx.body, "email").value;
  u.password = field(ctx.body, "password").value;
  u.display_name = field(ctx.body, "display_name").value;
  u.phone_number = field(ctx.body, "phone_number").value;
  u.profile_picture = field(ctx.body, "profile_picture").value;
  if (!valid_email(lower_ascii(*u.email))) return reply(ctx, 400, "Email is not valid");
  if (!strong_password(ctx, u.password)) return reply(ctx, 400, "Password is not valid");

  auto made = ctx.service.sign_up(u, ctx.caller());
  if (!made) return http::send_error(ctx, made.error());
  const db::User &user = made->user;
  reply(ctx, 200, "Success",
        json::array({{{"uuid", user.id},
                      {"display_name", user.display_name},
                      {"username", user.username},
                      {"email", user.email.value_or("")},
                      {"profile_picture", user.profile_picture}}}));
}

void render_error(Ctx &ctx, const Error &e) {
  switch (e.code) {
  case ErrorCode::missing_field: return reply(ctx, 400, e.detail + " is required");
  case ErrorCode::invalid_field:
  case ErrorCode::username_length: return reply(ctx, 400, e.detail + " is not valid");
  case ErrorCode::invalid_email: return reply(ctx, 400, "Email is not valid");
  case ErrorCode::weak_password:
  case ErrorCode::password_too_long: return reply(ctx, 400, "Password is not valid");
  case ErrorCode::bad_body: return reply(ctx, 400, "Invalid JSON body");
  case ErrorCode::user_exists:
  case ErrorCode::username_taken:
  case ErrorCode::email_taken: return reply(ctx, 409, "User already exists");
  case ErrorCode::user_not_found: return reply(ctx, 404, "User not found");
  case ErrorCode::invalid_credentials:
  case ErrorCode::wrong_password:
  case ErrorCode::email_not_verified: return reply(ctx, 401, "Invalid password");
  default: return render_common(ctx, e, kCommon);
  }
}

const http::Route kRoutes[] = {
    {"POST", "/api/v1/auth/login", Api::envelope, open, throttled, json_only, login,
     "sign in by email or username; answers data: [token]", &login_doc, hashes},
    {"POST", "/api/v1/auth/signUp", Api::envelope, open, throttled, json_only, sign_up,
     "create a user; answers data: [user]", &sign_up_doc, hashes},
};

// Listed in auth/apis/api.cpp; constant data, whole before any code runs.
extern constinit const ApiRow row = {
    .id = Api::envelope,
    .name = "envelope",
    .prefix = "/api/v1/auth", // inside v1's /api/v1: the longer prefix answers its paths
    .routes = kRoutes,
    .render_error = render_error,
    .lifetimes = {.access = 3600, .refresh = 0}, // a sign-in answers an access token only
    .doc = &api_doc,
};

} // namespace latch::apis::envelope
