// Mail flows: the v1 reset and confirmation mails over SMTP (a real SMTP sink on loopback)
// or to the log, the RESET_PASSWORD_URL link, the reset itself, and the /reset-password page;
// the outbox: retries, failures, restarts and shutdown with SMTP servers that defer, refuse,
// hang or are not there, and latch mail list|retry|drop.
#include "support/latch_process.h"

#include <doctest/doctest.h>

#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace latch::test;

namespace {

struct Account {
  std::string username, email, password;
};

struct Link {
  std::string base; // everything before "?token="
  std::string token;
};

// Registers without the confirmation mail, so the first mail in the sink is the reset.
Account register_user(const LatchProcess &latch) {
  Account a{unique("Mail"), "", "password123"};
  a.email = lower(a.username) + "@example.com";
  Reply r = latch.post("/api/v1/register?sendEmail=false",
                       {{"email", a.email}, {"username", a.username}, {"password", a.password}});
  REQUIRE(r.status == 201);
  return a;
}

void request_reset(const LatchProcess &latch, const Account &a) {
  Reply r = latch.post("/api/v1/password-reset", {{"email", a.email}, {"username", a.username}});
  REQUIRE(r.status == 200);
}

// The first http(s) link with a token in a mail or a log.
Link find_link(const std::string &text) {
  static const std::regex link(R"((https?://[^\s?]+)\?token=([A-Za-z0-9_\-]+))");
  std::smatch m;
  if (!std::regex_search(text, m, link)) return {};
  return {m[1].str(), m[2].str()};
}

// The value of a header line ("To: ...") in a raw mail, without the CR.
std::string header_of(const std::string &mail, const std::string &name) {
  std::regex line("(^|\n)" + name + ": ([^\r\n]*)");
  std::smatch m;
  return std::regex_search(mail, m, line) ? m[2].str() : std::string();
}

// Waits until the log holds a whole mail to `to` (the mail is written in pieces, so wait for
// its token link's line to end) and returns the log.
std::string wait_for_logged_mail(const LatchProcess &latch, const std::string &to) {
  const std::regex whole("To: " + std::regex_replace(to, std::regex(R"([.+])"), R"(\$&)") +
                         R"(\n[\s\S]*\?token=[A-Za-z0-9_\-]+\n)");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string log = latch.log();
    if (std::regex_search(log, whole)) return log;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return latch.log();
}

Reply confirm(const LatchProcess &latch, const std::string &token, const std::string &password) {
  return latch.post("/api/v1/password-reset-confirm?token=" + token,
                    {{"new_password", password}, {"new_password_confirm", password}});
}

int login_status(const LatchProcess &latch, const Account &a, const std::string &password) {
  return latch.post("/api/v1/login", {{"email", a.email}, {"password", password}}).status;
}

} // namespace

TEST_CASE(
    "the reset mail goes to the user's address and links to RESET_PASSWORD_URL with the token") {
  SmtpSink sink;
  LatchProcess latch({{},
                      {{"LATCH_SMTP_URL", sink.url()},
                       {"RESET_PASSWORD_URL", "https://app.example.com/reset"},
                       {"LATCH_MAIL_FROM", "noreply@app.example.com"}}});
  Account a = register_user(latch);
  request_reset(latch, a);
  std::string mail = sink.wait_for_message(1);
  REQUIRE(!mail.empty());
  CHECK(header_of(mail, "X-Rcpt-To") == a.email);
  CHECK(header_of(mail, "To") == a.email);
  CHECK(header_of(mail, "From") == "noreply@app.example.com");
  CHECK(header_of(mail, "X-Mail-From") == "noreply@app.example.com");
  CHECK(header_of(mail, "Subject") == "Reset your password");
  Link link = find_link(mail);
  CHECK(link.base == "https://app.example.com/reset");
  CHECK(mail.find("https://app.example.com/reset?token=" + link.token) != std::string::npos);
  // At least 128 bits of randomness, base64url-encoded: 22 characters or more.
  CHECK(link.token.size() >= 22);
  CHECK(link.token == token_from_link(mail));
}

TEST_CASE("by default the reset link points at this server's own /reset-password page") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = register_user(latch);
  request_reset(latch, a);
  std::string mail = sink.wait_for_message(1);
  REQUIRE(!mail.empty());
  Link link = find_link(mail);
  CHECK(link.base == latch.base_url() + "/reset-password");
  CHECK(!link.token.empty());
}

TEST_CASE("the registration mail links to GET /api/v1/verify on this server") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a{unique("Mail"), "", "password123"};
  a.email = lower(a.username) + "@example.com";
  REQUIRE(latch
              .post("/api/v1/register",
                    {{"email", a.email}, {"username", a.username}, {"password", a.password}})
              .status == 201);
  std::string mail = sink.wait_for_message(1);
  REQUIRE(!mail.empty());
  CHECK(header_of(mail, "To") == a.email);
  Link link = find_link(mail);
  CHECK(link.base == latch.base_url() + "/api/v1/verify");
  CHECK(latch.get("/api/v1/verify?token=" + link.token).status == 200);
}

namespace {

// The sink holds exactly `n` messages: a mail to a second account is sent after every mail
// asked for before it (one queue, one sender), so once it has arrived nothing else is coming.
std::vector<std::string> all_mail_after_barrier(const SmtpSink &sink, const LatchProcess &latch,
                                                int n) {
  Account barrier = register_user(latch);
  request_reset(latch, barrier);
  std::string last = sink.wait_for_message(n);
  REQUIRE(!last.empty());
  CHECK(header_of(last, "To") == barrier.email);
  CHECK(sink.message_count() == n);
  std::vector<std::string> mails;
  for (int i = 1; i <= n; ++i)
    mails.push_back(sink.wait_for_message(i));
  return mails;
}

} // namespace

TEST_CASE("ten reset requests in a row for one account deliver exactly one mail") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = register_user(latch);
  for (int i = 0; i < 10; ++i) {
    Reply r = latch.post("/api/v1/password-reset", {{"email", a.email}, {"username", a.username}});
    // The same answer whether a mail went or not: it tells nobody anything.
    CHECK(r.status == 200);
    CHECK(r.body == json{{"message", "if the account exists, a reset link has been sent"}});
  }
  auto mails = all_mail_after_barrier(sink, latch, 2);
  CHECK(header_of(mails[0], "To") == a.email);
  CHECK(!token_from_link(mails[0]).empty());
}

TEST_CASE("the mail limit holds across APIs: after a v1 reset mail, flask answers 429") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = register_user(latch);
  request_reset(latch, a);
  for (int i = 0; i < 3; ++i) {
    Reply flask = latch.post("/auth/forget-password", {{"email", a.email}});
    CHECK(flask.status == 429);
    REQUIRE(flask.body["message"].is_string());
    CHECK(flask.body["message"].get<std::string>().rfind("Too many requests. Try again in ", 0) ==
          0);
    const std::string wait = flask.header("Retry-After");
    REQUIRE(!wait.empty());
    CHECK(std::stoi(wait) >= 1);
    CHECK(std::stoi(wait) <= 60);
    request_reset(latch, a); // v1 still answers 200, and sends nothing either
  }
  // flask's own answer for an unknown address stays the documented 404.
  CHECK(latch.post("/auth/forget-password", {{"email", "nobody@example.com"}}).status == 404);
  auto mails = all_mail_after_barrier(sink, latch, 2);
  CHECK(header_of(mails[0], "To") == a.email);
}

TEST_CASE("flask forget-password past the mail limit answers 429 and mails nothing more") {
  SmtpSink sink;
  LatchProcess latch({{"--apis", "flask,v1"}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = register_user(latch);
  CHECK(latch.post("/auth/forget-password", {{"email", a.email}}).status == 200);
  for (int i = 0; i < 9; ++i) {
    Reply r = latch.post("/auth/forget-password", {{"email", a.email}});
    CHECK(r.status == 429);
    CHECK(!r.header("Retry-After").empty());
  }
  auto mails = all_mail_after_barrier(sink, latch, 2);
  CHECK(header_of(mails[0], "To") == a.email);
}

TEST_CASE("a username of Unicode spaces and a phishing sentence never appears in any mail") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  const std::string phishing = "Your account is suspended. Call +1-555-0100 now";
  std::string spaced = "\u2003\u2003";
  for (char c : phishing)
    spaced += c == ' ' ? std::string("\u2002") : std::string(1, c);
  spaced += "\u3000";
  const std::string email = lower(unique("mark")) + "@example.com";
  // Spaces of any kind are refused in a username...
  CHECK(latch
            .post("/api/v1/register",
                  {{"email", email}, {"username", spaced}, {"password", "password123"}})
            .status == 400);
  // ...but the sentence fits in one without.
  std::string username = phishing;
  std::replace(username.begin(), username.end(), ' ', '-');
  Reply reg = latch.post("/api/v1/register",
                         {{"email", email}, {"username", username}, {"password", "password123"}});
  REQUIRE(reg.status == 201); // confirmation mail
  REQUIRE(latch.post("/api/v1/password-reset", {{"email", email}, {"username", username}}).status ==
          200); // reset mail
  auto mails = all_mail_after_barrier(sink, latch, 3);
  const std::string host = "127.0.0.1:" + std::to_string(latch.port());
  for (int i = 0; i < 3; ++i) {
    const std::string &mail = mails[static_cast<std::size_t>(i)];
    CAPTURE(mail);
    for (const std::string &bad : {std::string("suspended"), std::string("555-0100"), username})
      CHECK(mail.find(bad) == std::string::npos);
    CHECK(mail.find("Latch at " + host) != std::string::npos);
  }
  // Each mail names the account by the address it goes to, and nothing else.
  CHECK(header_of(mails[0], "Subject") == "Confirm your email address");
  CHECK(header_of(mails[1], "Subject") == "Reset your password");
  CHECK(header_of(mails[0], "To") == email);
  CHECK(header_of(mails[1], "To") == email);
  CHECK(mails[0].find("with the address " + email) != std::string::npos);
  CHECK(mails[1].find("the account for " + email) != std::string::npos);
}

TEST_CASE("the username in a reset request matches whatever its case") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = register_user(latch);
  Reply r =
      latch.post("/api/v1/password-reset", {{"email", a.email}, {"username", lower(a.username)}});
  REQUIRE(r.status == 200);
  std::string mail = sink.wait_for_message(1);
  CHECK(header_of(mail, "To") == a.email);
}

TEST_CASE("the mailed token sets the new password exactly once") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = register_user(latch);
  request_reset(latch, a);
  std::string token = token_from_link(sink.wait_for_message(1));
  REQUIRE(!token.empty());
  Reply first = confirm(latch, token, "newpassword1");
  CHECK(first.status == 200);
  CHECK(first.body == json::object());
  Reply second = confirm(latch, token, "newpassword2");
  CHECK(second.status == 400);
  CHECK(second.body == json{{"error", "invalid or expired token"}});
  // The second attempt changed nothing.
  CHECK(login_status(latch, a, "newpassword1") == 200);
  CHECK(login_status(latch, a, "newpassword2") == 401);
}

TEST_CASE(
    "after a reset the old password fails, the new one works and earlier sessions are ended") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = register_user(latch);
  Reply before = latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}});
  REQUIRE(before.status == 200);
  std::string access = before.body["access_token"], refresh = before.body["refresh_token"];
  // A session of another API ends too.
  Reply envelope =
      latch.post("/api/v1/auth/login", {{"identity", a.email}, {"password", a.password}});
  REQUIRE(envelope.status == 200);
  std::string envelope_access = envelope.body["data"][0];
  REQUIRE(latch.get("/api/v1/authorized/me", access).status == 200);

  request_reset(latch, a);
  std::string token = token_from_link(sink.wait_for_message(1));
  REQUIRE(!token.empty());
  REQUIRE(confirm(latch, token, "newpassword1").status == 200);

  Reply old_login = latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}});
  CHECK(old_login.status == 401);
  CHECK(old_login.body == json{{"error", "invalid credentials"}});
  CHECK(login_status(latch, a, "newpassword1") == 200);

  Reply me = latch.get("/api/v1/authorized/me", access);
  CHECK(me.status == 401);
  CHECK(me.body == json{{"error", "invalid token"}});
  CHECK(latch.get("/api/v1/authorized/me", envelope_access).status == 401);
  Reply refreshed = latch.post("/api/v1/refresh", {{"refresh_token", refresh}});
  CHECK(refreshed.status == 401);
  CHECK(refreshed.body == json{{"error", "invalid token"}});
  CHECK(latch.post("/api/v1/verify", {{"token", access}}).status == 401);
}

TEST_CASE("a reset token expires after LATCH_V1_RESET_TOKEN_TTL") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}, {"LATCH_V1_RESET_TOKEN_TTL", "1"}}});
  Account a = register_user(latch);
  request_reset(latch, a);
  std::string token = token_from_link(sink.wait_for_message(1));
  REQUIRE(!token.empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  Reply r = confirm(latch, token, "newpassword1");
  CHECK(r.status == 400);
  CHECK(r.body == json{{"error", "invalid or expired token"}});
  CHECK(login_status(latch, a, a.password) == 200);
  CHECK(login_status(latch, a, "newpassword1") == 401);
}

TEST_CASE("without LATCH_SMTP_URL the reset mail is written to the server log") {
  LatchProcess latch;
  Account a = register_user(latch);
  request_reset(latch, a);
  std::string log = wait_for_logged_mail(latch, a.email);
  CHECK(log.find("To: " + a.email) != std::string::npos);
  CHECK(log.find("Subject: Reset your password") != std::string::npos);
  Link link = find_link(log);
  CHECK(link.base == latch.base_url() + "/reset-password");
  REQUIRE(!link.token.empty());
  // The logged token is the real one.
  CHECK(confirm(latch, link.token, "newpassword1").status == 200);
  CHECK(login_status(latch, a, "newpassword1") == 200);
}

TEST_CASE("without LATCH_SMTP_URL the registration mail is written to the server log") {
  LatchProcess latch;
  Account a{unique("Mail"), "", "password123"};
  a.email = lower(a.username) + "@example.com";
  REQUIRE(latch
              .post("/api/v1/register",
                    {{"email", a.email}, {"username", a.username}, {"password", a.password}})
              .status == 201);
  std::string log = wait_for_logged_mail(latch, a.email);
  CHECK(log.find("Subject: Confirm your email address") != std::string::npos);
  std::string token = token_from_link(log);
  REQUIRE(!token.empty());
  CHECK(latch.get("/api/v1/verify?token=" + token).status == 200);
}

TEST_CASE("GET /reset-password serves an HTML form with two password inputs calling "
          "password-reset-confirm") {
  LatchProcess latch;
  Reply r = latch.get("/reset-password?token=abc");
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type").rfind("text/html", 0) == 0);
  CHECK(r.text.find("<form") != std::string::npos);
  size_t inputs = 0;
  for (size_t at = r.text.find("type=\"password\""); at != std::string::npos;
       at = r.text.find("type=\"password\"", at + 1))
    ++inputs;
  CHECK(inputs == 2);
  CHECK(r.text.find("data-api=\"v1\"") != std::string::npos);
  // The token is in the URL: it must not leak to other sites through Referer.
  CHECK(r.header("Referrer-Policy") == "no-referrer");
  CHECK(latch.get("/reset-password").status == 200);

  // Script and style are same-origin files: nothing inline, and a CSP that allows nothing inline.
  CHECK(r.header("Content-Security-Policy") ==
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'");
  CHECK(r.text.find("<script src=\"/reset-password.js\"></script>") != std::string::npos);
  CHECK(r.text.find("<link rel=\"stylesheet\" href=\"/reset-password.css\">") != std::string::npos);
  CHECK(r.text.find("<script>") == std::string::npos);
  CHECK(r.text.find("<style") == std::string::npos);
  CHECK(r.text.find(" style=") == std::string::npos);
  CHECK_FALSE(std::regex_search(r.text, std::regex(R"(\son[a-z]+=)"))); // no onclick= and friends
  Reply js = latch.get("/reset-password.js");
  CHECK(js.status == 200);
  CHECK(js.header("Content-Type").rfind("text/javascript", 0) == 0);
  CHECK(js.text.find("/api/v1/password-reset-confirm?token=") != std::string::npos);
  CHECK(js.text.find("new_password_confirm") != std::string::npos);
  Reply css = latch.get("/reset-password.css");
  CHECK(css.status == 200);
  CHECK(css.header("Content-Type").rfind("text/css", 0) == 0);
  CHECK(css.text.find("prefers-color-scheme") != std::string::npos);

  // With flask alone the page posts to flask's reset-password.
  LatchProcess flask({{"--apis", "flask"}, {}});
  Reply page = flask.get("/reset-password?token=abc");
  CHECK(page.text.find("data-api=\"flask\"") != std::string::npos);
  CHECK(flask.get("/reset-password.js").text.find("/auth/reset-password") != std::string::npos);
}

TEST_CASE("with TLS the mailed links say https, and a request's Host header never names the host") {
  TempDir dir;
  const std::string cert = dir.file("cert.pem"), key = dir.file("key.pem");
  std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                    "-days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
                    key + " -out " + cert + " 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  SmtpSink sink;
  LatchProcess latch({{"--tls-cert", cert, "--tls-key", key}, {{"LATCH_SMTP_URL", sink.url()}}});
  httplib::SSLClient tls("127.0.0.1", latch.port());
  tls.set_ca_cert_path(cert.c_str());
  tls.enable_server_certificate_verification(true);
  Account a{unique("Tls"), "", "password123"};
  a.email = lower(a.username) + "@example.com";
  auto reg =
      tls.Post("/api/v1/register?sendEmail=false",
               json{{"email", a.email}, {"username", a.username}, {"password", a.password}}.dump(),
               "application/json");
  REQUIRE(reg);
  REQUIRE(reg->status == 201);
  // A reset link to the attacker's host would hand them the token: the Host header is ignored.
  auto reset =
      tls.Post("/api/v1/password-reset", {{"Host", "evil.example"}},
               json{{"email", a.email}, {"username", a.username}}.dump(), "application/json");
  REQUIRE(reset);
  REQUIRE(reset->status == 200);
  std::string mail = sink.wait_for_message(1);
  REQUIRE(!mail.empty());
  Link link = find_link(mail);
  CHECK(link.base == "https://127.0.0.1:" + std::to_string(latch.port()) + "/reset-password");
  CHECK(mail.find("evil.example") == std::string::npos);
}

TEST_CASE("mail on with no --public-url on a public listening address: a warning at start") {
  SmtpSink sink;
  const std::string warning = "no --public-url";
  {
    LatchProcess latch({{"--addr", "0.0.0.0:0"}, {{"LATCH_SMTP_URL", sink.url()}}});
    const std::string log = latch.log();
    CHECK(log.find("warning") != std::string::npos);
    CHECK(log.find(warning) != std::string::npos);
    CHECK(log.find("Host header") != std::string::npos);
    CHECK(latch.get("/healthz").status == 200); // a warning, not a refusal
  }
  // Not with --public-url, nor on loopback, nor without mail (links then go to the log).
  LatchProcess named({{"--addr", "0.0.0.0:0", "--public-url", "https://auth.example.com"},
                      {{"LATCH_SMTP_URL", sink.url()}}});
  CHECK(named.log().find(warning) == std::string::npos);
  LatchProcess loopback({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  CHECK(loopback.log().find(warning) == std::string::npos);
  LatchProcess no_mail({{"--addr", "0.0.0.0:0"}, {}});
  CHECK(no_mail.log().find(warning) == std::string::npos);
}

// --- the outbox ---------------------------------------------------------------------------

namespace {

// Waits up to timeout for the server's log to contain text; returns the log.
std::string wait_for_log(const LatchProcess &latch, const std::string &text,
                         std::chrono::seconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string log = latch.log();
    if (log.find(text) != std::string::npos) return log;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return latch.log();
}

// Waits up to 20 s for /metrics to read "name value"; true when it does.
bool wait_for_metric(const LatchProcess &latch, const std::string &name, int value) {
  const std::string line = "\n" + name + " " + std::to_string(value) + "\n";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (("\n" + latch.get("/metrics").text).find(line) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string smtp_url(int port) {
  return "smtp://127.0.0.1:" + std::to_string(port);
}

// `latch mail ARGS --db` on the server's database.
CommandResult mail_command(const LatchProcess &latch, std::vector<std::string> args) {
  args.insert(args.begin(), "mail");
  args.insert(args.end(), {"--db", latch.db_path()});
  return run_latch(args);
}

json outbox(const LatchProcess &latch) {
  CommandResult r = mail_command(latch, {"list", "--json"});
  REQUIRE(r.status == 0);
  json rows = json::parse(r.output, nullptr, false);
  REQUIRE(rows.is_array());
  return rows;
}

} // namespace

TEST_CASE("a mail the SMTP server defers with 451 arrives after a retry, and its link works") {
  SmtpSink sink(SmtpSink::Mode::tempfail_once);
  LatchProcess latch({{"--mail-retry", "1", "--metrics"}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = register_user(latch);
  request_reset(latch, a);
  std::string mail = sink.wait_for_message(1, 20000);
  REQUIRE(!mail.empty());
  CHECK(header_of(mail, "X-Rcpt-To") == a.email);
  const std::string log = latch.log();
  CHECK(log.find("to example.com not sent: SMTP 451; next attempt in 1 s") != std::string::npos);
  CHECK(log.find(a.email) == std::string::npos); // the domain only, never the address
  CHECK(wait_for_metric(latch, "latch_mail_sent_total", 1));
  CHECK(wait_for_metric(latch, "latch_mail_queued", 0));
  CHECK(wait_for_metric(latch, "latch_mail_failed_total", 0));
  CHECK(confirm(latch, token_from_link(mail), "newpassword1").status == 200);
  CHECK(login_status(latch, a, "newpassword1") == 200);
  CHECK(sink.message_count() == 1);
}

TEST_CASE("a mail refused with 550 is given up: one log line with the domain and the code, and "
          "counted as failed") {
  SmtpSink sink(SmtpSink::Mode::reject);
  LatchProcess latch({{"--mail-retry", "1", "--metrics"}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = register_user(latch);
  request_reset(latch, a);
  const std::string log = wait_for_log(latch, "failed permanently");
  CHECK(log.find("latch: mail to example.com failed permanently: SMTP 550") != std::string::npos);
  CHECK(log.find(a.email) == std::string::npos);
  CHECK(wait_for_metric(latch, "latch_mail_failed_total", 1));
  CHECK(wait_for_metric(latch, "latch_mail_queued", 0));
  CHECK(wait_for_metric(latch, "latch_mail_sent_total", 0));
  // Not tried again: a second's backoff later, still one attempt and one failure.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  json rows = outbox(latch);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["state"] == "failed");
  CHECK(rows[0]["attempts"] == 1);
  CHECK(sink.message_count() == 0);
}

TEST_CASE("with no SMTP server listening the mail waits, and arrives once one starts on that "
          "port") {
  const int port = unused_port();
  LatchProcess latch({{"--mail-retry", "1", "--mail-retry-max", "1", "--metrics"},
                      {{"LATCH_SMTP_URL", smtp_url(port)}}});
  Account a = register_user(latch);
  request_reset(latch, a);
  CHECK(wait_for_log(latch, "to example.com not sent: ").find("next attempt in 1 s") !=
        std::string::npos);
  CHECK(wait_for_metric(latch, "latch_mail_queued", 1));
  json rows = outbox(latch);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["state"] != "failed");
  CHECK(rows[0]["to"] == a.email);
  CHECK(rows[0]["attempts"].get<int>() >= 1);
  CHECK(!rows[0]["last_error"].get<std::string>().empty());

  SmtpSink sink(SmtpSink::Mode::accept, port);
  std::string mail = sink.wait_for_message(1, 20000);
  REQUIRE(!mail.empty());
  CHECK(header_of(mail, "To") == a.email);
  CHECK(confirm(latch, token_from_link(mail), "newpassword1").status == 200);
  CHECK(wait_for_metric(latch, "latch_mail_queued", 0));
  CHECK(wait_for_metric(latch, "latch_mail_sent_total", 1));
  CHECK(outbox(latch).empty());
}

TEST_CASE("SIGTERM with mail queued to a hung SMTP server exits at once; the mail goes after a "
          "restart") {
  TempDir dir;
  const std::string db = dir.file("auth.db");
  std::set<std::string> addresses;
  {
    SmtpSink hung(SmtpSink::Mode::hang);
    // Each attempt may take a minute: waiting for the queue would take 8 minutes.
    LatchProcess latch({{"--mail-timeout", "60"}, {{"LATCH_SMTP_URL", hung.url()}}}, db);
    for (int i = 0; i < 8; ++i) {
      Account a = register_user(latch);
      request_reset(latch, a);
      addresses.insert(a.email);
    }
    REQUIRE(hung.wait_for_connection(1)); // the sender is waiting for the server's greeting
    // stop() gives it 15 s, then kills it: exiting by itself, with status 0, is the point.
    const int status = latch.stop();
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  SmtpSink sink;
  LatchProcess again({{}, {{"LATCH_SMTP_URL", sink.url()}}}, db);
  REQUIRE(!sink.wait_for_message(8, 20000).empty());
  std::set<std::string> received;
  for (int i = 1; i <= 8; ++i)
    received.insert(header_of(sink.wait_for_message(i), "To"));
  CHECK(received == addresses);
}

TEST_CASE("a reset link that expired while its mail waited is not sent") {
  const int port = unused_port();
  LatchProcess latch({{"--mail-retry", "1", "--mail-retry-max", "1", "--metrics"},
                      {{"LATCH_SMTP_URL", smtp_url(port)}, {"LATCH_V1_RESET_TOKEN_TTL", "1"}}});
  Account a = register_user(latch);
  request_reset(latch, a);
  const std::string log = wait_for_log(latch, "dropped unsent");
  CHECK(log.find("to example.com dropped unsent: its link expired while it waited") !=
        std::string::npos);
  CHECK(wait_for_metric(latch, "latch_mail_dropped_total", 1));
  CHECK(outbox(latch).empty());

  // Then the server comes: a later mail (a confirmation, whose link lives a day) arrives, alone.
  SmtpSink sink(SmtpSink::Mode::accept, port);
  Account b{unique("Mail"), "", "password123"};
  b.email = lower(b.username) + "@example.com";
  REQUIRE(latch
              .post("/api/v1/register",
                    {{"email", b.email}, {"username", b.username}, {"password", b.password}})
              .status == 201);
  std::string mail = sink.wait_for_message(1, 20000);
  REQUIRE(!mail.empty());
  CHECK(header_of(mail, "To") == b.email);
  CHECK(wait_for_metric(latch, "latch_mail_sent_total", 1));
  CHECK(sink.message_count() == 1);
}

TEST_CASE("latch mail list shows the outbox without the mail's text; retry sends again; drop "
          "deletes") {
  SmtpSink sink(SmtpSink::Mode::reject);
  LatchProcess latch({{"--metrics"}, {{"LATCH_SMTP_URL", sink.url()}}});
  CHECK(mail_command(latch, {"list"}).output.find("the outbox is empty") != std::string::npos);
  Account a = register_user(latch);
  request_reset(latch, a);
  REQUIRE(wait_for_metric(latch, "latch_mail_failed_total", 1));

  CommandResult json_list = mail_command(latch, {"list", "--json"});
  CHECK(json_list.status == 0);
  json rows = json::parse(json_list.output, nullptr, false);
  REQUIRE(rows.is_array());
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["state"] == "failed");
  CHECK(rows[0]["to"] == a.email);
  CHECK(rows[0]["subject"] == "Reset your password");
  CHECK(rows[0]["attempts"] == 1);
  CHECK(rows[0]["last_error"] == "SMTP 550");
  CHECK(rows[0]["link_live"] == true);
  CommandResult text = mail_command(latch, {"list"});
  CHECK(text.status == 0);
  for (const CommandResult *r : {&json_list, &text}) {
    CHECK(r->output.find("token=") == std::string::npos); // never the link
    CHECK(r->output.find("reset-password") == std::string::npos);
  }
  CHECK(text.output.find(a.email) != std::string::npos);
  CHECK(text.output.find("failed") != std::string::npos);
  CHECK(text.output.find("SMTP 550") != std::string::npos);

  const std::string id = std::to_string(rows[0]["id"].get<long long>());
  CommandResult retried = mail_command(latch, {"retry", id});
  CHECK(retried.status == 0);
  CHECK(retried.output.find("due now") != std::string::npos);
  CHECK(wait_for_metric(latch, "latch_mail_failed_total", 2)); // tried again, refused again

  CHECK(mail_command(latch, {"retry", "999"}).status == 3);
  CHECK(mail_command(latch, {"drop", "999"}).status == 3);
  CommandResult dropped = mail_command(latch, {"drop", id});
  CHECK(dropped.status == 0);
  CHECK(dropped.output.find("dropped mail " + id) != std::string::npos);
  CHECK(outbox(latch).empty());
  CHECK(mail_command(latch, {"drop", id}).status == 3);
  CHECK(sink.message_count() == 0);
}
