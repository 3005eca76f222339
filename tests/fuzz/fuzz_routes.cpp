// libFuzzer: every route end to end through Dispatcher::dispatch; never a 500, always valid JSON.
#include "auth/config.h"
#include "auth/http/dispatch.h"
#include "auth/http/routes.h"
#include "auth/mail.h"
#include "auth/password.h"
#include "auth/service.h"
#include "auth/tokens.h"
#include "db/sqlite_store.h"

#include "fuzz_request.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace latch;

// Input: the first line names the route as `latch routes` prints it ("POST /api/auth/signup";
// a line that names none picks one by its bytes, so mutations still reach every route), then
// one byte the Content-Type (fuzz::kContentTypes, '0'..'7'), one byte - '0' the credentials
// (low three bits, see credentials()) plus 8: Accept: text/html and 16: the next line is the
// query string. The rest is the body. In the query and the body $ACCESS and $REFRESH become
// tokens of a fresh session of the start-up user, $RESET a reset token and $VERIFY an email
// confirmation token of a second user. LATCH_FUZZ_VERBOSE=1 in the environment prints each
// request's route and answer. Seeds (tests/fuzz/corpus/fuzz_routes) are named API_route; a
// unit test (tests/unit/test_api_rows.cpp) keeps one for every route of the table.

namespace {

constexpr std::int64_t kNow = 1'700'000'000; // a fixed clock, so runs repeat
const char *const kSecret = "fuzz-routes-secret-0123456789abcdef-0123";
const char *const kPassword = "fuzz-password-1";

Config make_config() {
  Config c;
  c.port = 0;
  c.argon2.memory_kib = 8; // libsodium's minimum: hashing costs microseconds
  c.argon2.iterations = 1;
  c.hash_concurrency = 1;
  c.rate_limit = 0;        // off: every input is from the same address
  c.max_failed_logins = 0; // off: the fuzzer fails sign-ins all day
  c.mail_limit = 0;        // off: the clock never moves and every $RESET mails one account
  c.jwt_secret = kSecret;
  return c;
}

db::User must_sign_up(AuthService &service, const char *username, const char *email) {
  auto user = service.sign_up({username, std::string(email), kPassword, "", "", ""});
  if (!user) fuzz::fail("start-up sign-up failed", user.error().detail);
  return user.value().user;
}

// Everything main.cpp builds, once per process, on an in-memory database.
struct World {
  Config config = make_config();
  db::SqliteStore store{":memory:"};
  PasswordHasher hasher{config.argon2, config.hash_concurrency, config.hash_queue};
  TokenCodec codec{kSecret};
  // Never started: the outbox is emptied every 20,000 inputs, each mail dropped as sent.
  Mailer mailer{store, [](const Mail &, std::stop_token) { return Delivery{}; }, MailPolicy{},
                [] { return kNow; }};
  AuthService service{config, store, hasher, codec, mailer, [] { return kNow; }};
  http::Dispatcher dispatcher{config, service};
  db::User user = must_sign_up(service, "fuzzer", "fuzzer@example.com");
  db::User resetter = must_sign_up(service, "resetter", "resetter@example.com");
  std::string revoked_access; // an access token whose session was logged out

  World() { revoke_one(); }

  // Logs out a fresh session, so revoked_access is a blacklisted token of a session ended.
  void revoke_one() {
    auto pair = service.start_session(user, Api::v1);
    if (!pair) fuzz::fail("session for logout failed");
    auto claims = service.check_token(pair->access, TokenType::access);
    if (!claims || !service.logout(claims.value())) fuzz::fail("logout failed");
    revoked_access = pair->access;
  }

  // Every input adds sessions and tokens (the clock never moves, so none expire): drop them
  // all now and then, or a long run outgrows libFuzzer's memory limit. Users stay.
  void forget_sessions() {
    store.purge_expired(kNow + 100LL * 365 * 86400, kNow);
    revoke_one();
  }

  // A fresh session of user for api: {access, refresh}.
  std::pair<std::string, std::string> fresh_tokens(Api api) {
    auto pair = service.start_session(user, api);
    if (!pair) fuzz::fail("start_session failed", pair.error().detail);
    std::string refresh = pair->refresh;
    if (refresh.empty()) refresh = fresh_tokens(Api::v1).second; // envelope has none
    return {pair->access, refresh};
  }
};

World &world() {
  static World &w = *new World(); // never destroyed: no exit-time ordering to get wrong
  return w;
}

void replace_all(std::string &text, const std::string &from, const std::string &to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at))
    text.replace(at, from.size(), to), at += to.size();
}

// $ACCESS, $REFRESH, $RESET and $VERIFY become real tokens, made only when used.
void substitute(std::string &text, Api api) {
  World &w = world();
  if (text.find("$ACCESS") != std::string::npos || text.find("$REFRESH") != std::string::npos) {
    auto [access, refresh] = w.fresh_tokens(api);
    replace_all(text, "$ACCESS", access);
    replace_all(text, "$REFRESH", refresh);
  }
  if (text.find("$RESET") != std::string::npos) {
    auto token = w.service.start_password_reset(w.resetter, w.config.reset_ttl,
                                                TokenDelivery::mail_and_answer);
    if (!token) fuzz::fail("start_password_reset failed");
    replace_all(text, "$RESET", token.value());
  }
  if (text.find("$VERIFY") != std::string::npos) {
    auto token = w.service.start_email_verification(w.resetter, TokenDelivery::mail_and_answer);
    if (!token) fuzz::fail("start_email_verification failed");
    replace_all(text, "$VERIFY", token.value());
  }
}

// The Authorization header for credentials mode 0..7; garbage is the token of mode 3. True
// when the header carries a valid token of the kind the route asks for.
bool credentials(httplib::Request &req, const http::Route &route, unsigned mode,
                 const std::string &garbage) {
  World &w = world();
  const bool wants_refresh = route.access == http::Access::refresh_token;
  std::string header;
  bool valid = false;
  switch (mode) {
  case 0: return false; // no header
  case 1: header = "Bearer " + w.fresh_tokens(route.api).first; break;
  case 2: header = "Bearer " + w.fresh_tokens(route.api).second; break;
  case 3: header = "Bearer " + garbage; break;
  case 4: { // a real access token with the last signature character changed
    std::string token = w.fresh_tokens(route.api).first;
    token.back() = token.back() == 'A' ? 'B' : 'A';
    header = "Bearer " + token;
    break;
  }
  case 5: header = "Basic ZnV6emVyOmZ1enotcGFzc3dvcmQtMQ=="; break;
  case 6: header = "Bearer " + w.revoked_access; break;
  default: { // the right kind of token, odd spelling and spacing
    auto [access, refresh] = w.fresh_tokens(route.api);
    header = "bEaReR   " + (wants_refresh ? refresh : access) + "  ";
    valid = true;
    break;
  }
  }
  req.set_header("Authorization", header);
  return valid || (mode == 1 && route.access == http::Access::access_token) ||
         (mode == 2 && wants_refresh);
}

// The route the line names ("METHOD /path"), else one picked by the line's bytes.
const http::Route &route_named(const std::string &line) {
  const auto &routes = http::route_table();
  unsigned sum = 0;
  for (const http::Route &r : routes)
    if (line == std::string(r.method) + " " + r.path) return r;
  for (unsigned char c : line)
    sum += c;
  return routes[sum % routes.size()];
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  std::string rest(reinterpret_cast<const char *>(data), size);
  const http::Route &route = route_named(fuzz::take_line(rest));
  if (rest.size() < 2) return 0;
  const std::string content_type =
      fuzz::kContentTypes[static_cast<unsigned char>(rest[0]) % fuzz::kContentTypes.size()];
  const auto flags = static_cast<unsigned char>(rest[1] - '0');
  rest.erase(0, 2);

  httplib::Request req;
  req.method = route.method;
  req.path = route.path;
  req.remote_addr = "127.0.0.1";
  req.remote_port = 40000;
  if (flags & 16) {
    std::string query = fuzz::take_line(rest);
    substitute(query, route.api);
    httplib::detail::parse_query_text(query, req.params);
  }
  if (flags & 8) req.set_header("Accept", "text/html,application/xhtml+xml");
  const std::string garbage = (flags & 7) == 3 ? fuzz::take_line(rest) : std::string();
  const bool valid_token = credentials(req, route, flags & 7, garbage);
  substitute(rest, route.api);
  fuzz::set_body(req, content_type, std::move(rest));

  httplib::Response res;
  world().dispatcher.dispatch(route, req, res);
  static unsigned inputs = 0;
  if (++inputs % 20000 == 0) {
    world().forget_sessions();
    world().mailer.send_due();
  }

  const std::string where = std::string(route.method) + " " + route.path + " -> " +
                            std::to_string(res.status) + " " + res.body;
  static const bool verbose = std::getenv("LATCH_FUZZ_VERBOSE") != nullptr; // for reproducers
  if (verbose) std::fprintf(stderr, "%s\n", where.c_str());
  if (res.status < 100 || res.status > 599) fuzz::fail("no HTTP status set", where);
  if (res.status == 500) fuzz::fail("500 Internal Server Error", where);
  if (fuzz::lower(res.get_header_value("Content-Type")).rfind("application/json", 0) == 0 &&
      http::json::parse(res.body, nullptr, /*allow_exceptions=*/false).is_discarded())
    fuzz::fail("a JSON response that is not JSON", where);
  if (route.access != http::Access::open && !valid_token && res.status < 300)
    fuzz::fail("a protected route answered 2xx without a valid token of its kind", where);
  return 0;
}
