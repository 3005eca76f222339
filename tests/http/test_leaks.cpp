// Secrets never leak: not to the log, error bodies, caches or MIME sniffers, nor via file modes.
#include "support/latch_process.h"

#include "auth/apis/api.h"
#include "auth/http/routes.h"

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace latch::test;

namespace {

const std::string kJwtSecret = "leak-test-jwt-secret-0123456789-abcdefghijklmnop";
const std::regex kJwt(R"(eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)");

// Everything secret the life cycle handled, by kind, and every answer it got.
struct Record {
  std::vector<std::pair<std::string, std::string>> secrets; // kind, value
  std::deque<std::pair<std::string, Reply>> replies; // what was asked, the answer (stable refs)

  void secret(const std::string &kind, const std::string &value) {
    if (!value.empty()) secrets.emplace_back(kind, value);
  }
  // Keeps the answer and every token in it.
  const Reply &keep(const std::string &what, Reply r) {
    std::string text = r.text;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), kJwt);
         it != std::sregex_iterator(); ++it)
      secret("token issued by " + what, it->str());
    if (r.body.is_object() && r.body.contains("reset_token") && r.body["reset_token"].is_string())
      secret("reset token answered", r.body["reset_token"]);
    replies.emplace_back(what, std::move(r));
    return replies.back().second;
  }
};

// Where mailed links arrive: the SMTP sink, or (without SMTP) the server's log.
class Mailbox {
public:
  explicit Mailbox(const SmtpSink *sink, const LatchProcess &latch) : sink_(sink), latch_(latch) {}

  // Waits for a mail to `to` whose token has not been taken yet and returns that token ("" on
  // time-out). Mails are matched by address, so mails nobody asks for do not get in the way.
  std::string token_for(const std::string &to) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      for (const auto &[address, token] : mails())
        if (address == to && !token.empty() && taken_.insert(token).second) return token;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return {};
  }

private:
  // Every whole mail so far, as (recipient, token of its link).
  std::vector<std::pair<std::string, std::string>> mails() const {
    std::vector<std::pair<std::string, std::string>> out;
    static const std::regex to_line(R"((^|\n)To: ([^\r\n]+))");
    if (sink_) {
      for (int n = 1; n <= sink_->message_count(); ++n) {
        std::string mail = sink_->wait_for_message(n, 50); // it is there: n <= count
        std::smatch m;
        if (std::regex_search(mail, m, to_line))
          out.emplace_back(m[2].str(), token_from_link(mail));
      }
      return out;
    }
    // The log writes "  To: ADDRESS", the subject and the text, the link on a line of its own.
    static const std::regex logged(R"(To: (\S+)\n[\s\S]*?[?&]token=([A-Za-z0-9_\-]+)\n)");
    std::string log = latch_.log();
    for (auto it = std::sregex_iterator(log.begin(), log.end(), logged);
         it != std::sregex_iterator(); ++it)
      out.emplace_back((*it)[1].str(), (*it)[2].str());
    return out;
  }

  const SmtpSink *sink_;
  const LatchProcess &latch_;
  std::set<std::string> taken_;
};

// POST with only a Bearer token (logout, refresh); kept in rec; returns the status.
int bearer_post(const LatchProcess &latch, const std::string &path, const std::string &token,
                Record &rec, const std::string &what) {
  return rec.keep(what, latch.post_raw(path, "", "application/json", token)).status;
}

// Sign-up, sign-in, a wrong password, refresh, verify, reset request and confirmation, and
// logout on every API, as a client would do them. Checks only what the life cycle needs.
void life_cycle(const LatchProcess &latch, Mailbox &mail, Record &rec) {
  { // picflux
    std::string user = unique("leakpf"), email = lower(user) + "@example.com";
    std::string pw = "Pf-Secret-7731", wrong = "Pf-Wrong-4419";
    rec.secret("password", pw);
    rec.secret("wrong password", wrong);
    const Reply &up = rec.keep(
        "picflux signup",
        latch.post("/api/auth/signup", {{"email", email}, {"username", user}, {"password", pw}}));
    REQUIRE(up.status == 201);
    const Reply &in = rec.keep(
        "picflux signin", latch.post("/api/auth/signin", {{"email", email}, {"password", pw}}));
    REQUIRE(in.status == 200);
    CHECK(rec.keep("picflux wrong password",
                   latch.post("/api/auth/signin", {{"email", email}, {"password", wrong}}))
              .status == 401);
    std::string refresh = in.body["refresh_token"];
    const Reply &rotated = rec.keep(
        "picflux refresh", latch.post_raw("/api/auth/refresh", "", "application/json", refresh));
    REQUIRE(rotated.status == 200);
    // The old refresh token again at once: a second tab, answered with the rotation's token.
    REQUIRE(rec.keep("picflux refresh second tab",
                     latch.post_raw("/api/auth/refresh", "", "application/json", refresh))
                .status == 200);
    REQUIRE(rec.keep("picflux refresh again",
                     latch.post_raw("/api/auth/refresh", "", "application/json",
                                    rotated.body["refresh_token"]))
                .status == 200);
    // The first refresh token, two rotations back: reuse, which revokes the session (and may
    // be logged).
    CHECK(rec.keep("picflux refresh reuse",
                   latch.post_raw("/api/auth/refresh", "", "application/json", refresh))
              .status == 401);
    const Reply &again =
        rec.keep("picflux signin again",
                 latch.post("/api/auth/signin", {{"email", email}, {"password", pw}}));
    REQUIRE(again.status == 200);
    CHECK(bearer_post(latch, "/api/auth/logout", again.body["access_token"], rec,
                      "picflux logout") == 200);
    CHECK(bearer_post(latch, "/api/auth/logout", again.body["access_token"], rec,
                      "picflux logout again") == 401);
  }
  { // simplejwt
    std::string user = unique("leaksj");
    std::string pw = "Sj-Secret-5502", wrong = "Sj-Wrong-8830";
    rec.secret("password", pw);
    rec.secret("wrong password", wrong);
    REQUIRE(rec.keep("simplejwt register",
                     latch.post("/auth/register", {{"username", user}, {"password", pw}}))
                .status == 201);
    const Reply &in = rec.keep(
        "simplejwt token", latch.post_form("/auth/token", "username=" + user + "&password=" + pw));
    REQUIRE(in.status == 200);
    CHECK(rec.keep("simplejwt wrong password",
                   latch.post("/auth/token", {{"username", user}, {"password", wrong}}))
              .status == 401);
    const Reply &fresh =
        rec.keep("simplejwt token/refresh",
                 latch.post("/auth/token/refresh", {{"refresh", in.body["refresh"]}}));
    REQUIRE(fresh.status == 200);
    CHECK(rec.keep("simplejwt token/verify",
                   latch.post("/auth/token/verify", {{"token", fresh.body["access"]}}))
              .status == 200);
    CHECK(rec.keep("simplejwt token/verify bad",
                   latch.post("/auth/token/verify", {{"token", "not.a.token"}}))
              .status == 401);
    CHECK(rec.keep("simplejwt getuser", latch.get("/auth/getuser", fresh.body["access"])).status ==
          200);
    // The rotated refresh token again at once: a second tab, answered with the rotation's.
    REQUIRE(rec.keep("simplejwt refresh second tab",
                     latch.post("/auth/token/refresh", {{"refresh", in.body["refresh"]}}))
                .status == 200);
    REQUIRE(rec.keep("simplejwt refresh again",
                     latch.post("/auth/token/refresh", {{"refresh", fresh.body["refresh"]}}))
                .status == 200);
    // The first refresh token, two rotations back: reuse, which revokes the session (and may
    // be logged).
    CHECK(rec.keep("simplejwt refresh reuse",
                   latch.post("/auth/token/refresh", {{"refresh", in.body["refresh"]}}))
              .status == 401);
  }
  { // flask
    std::string user = unique("leakfl"), email = lower(user) + "@example.com";
    std::string pw = "Fl-Secret-6614", wrong = "Fl-Wrong-2207", pw2 = "Fl-Renewed-9021";
    rec.secret("password", pw);
    rec.secret("wrong password", wrong);
    rec.secret("new password", pw2);
    REQUIRE(rec.keep("flask signup",
                     latch.post("/auth/signup",
                                {{"username", user}, {"email", email}, {"password", pw}}))
                .status == 201);
    const Reply &in =
        rec.keep("flask login", latch.post("/auth/login", {{"username", user}, {"password", pw}}));
    REQUIRE(in.status == 200);
    CHECK(rec.keep("flask wrong password",
                   latch.post("/auth/login", {{"username", user}, {"password", wrong}}))
              .status == 401);
    CHECK(bearer_post(latch, "/auth/refresh", in.body["refresh_token"], rec, "flask refresh") ==
          200);
    const Reply &forget =
        rec.keep("flask forget-password", latch.post("/auth/forget-password", {{"email", email}}));
    REQUIRE(forget.status == 200);
    std::string reset;
    if (forget.body.contains("reset_token")) { // --reset-token-in-response; kept by keep()
      reset = forget.body["reset_token"];
    } else {
      reset = mail.token_for(email);
      rec.secret("reset token", reset);
    }
    REQUIRE(!reset.empty());
    CHECK(rec.keep("flask reset-password",
                   latch.post("/auth/reset-password",
                              {{"reset_token", reset}, {"new_password", pw2}}))
              .status == 200);
    CHECK(rec.keep("flask reset-password reuse",
                   latch.post("/auth/reset-password",
                              {{"reset_token", reset}, {"new_password", pw2}}))
              .status == 401);
    const Reply &in2 = rec.keep("flask login after reset",
                                latch.post("/auth/login", {{"username", user}, {"password", pw2}}));
    REQUIRE(in2.status == 200);
    CHECK(bearer_post(latch, "/auth/logout", in2.body["access_token"], rec, "flask logout") == 200);
    CHECK(bearer_post(latch, "/auth/logout", in2.body["access_token"], rec, "flask logout again") ==
          401);
  }
  { // v1
    std::string user = unique("leakv1"), email = lower(user) + "@example.com";
    std::string pw = "V1-Secret-3348", wrong = "V1-Wrong-1176", pw2 = "V1-Renewed-4490";
    rec.secret("password", pw);
    rec.secret("wrong password", wrong);
    rec.secret("new password", pw2);
    REQUIRE(rec.keep("v1 register",
                     latch.post("/api/v1/register",
                                {{"email", email}, {"username", user}, {"password", pw}}))
                .status == 201);
    std::string confirm = mail.token_for(email);
    REQUIRE(!confirm.empty());
    rec.secret("email confirmation token", confirm);
    CHECK(rec.keep("v1 GET verify", latch.get("/api/v1/verify?token=" + confirm)).status == 200);
    const Reply &in =
        rec.keep("v1 login", latch.post("/api/v1/login", {{"email", email}, {"password", pw}}));
    REQUIRE(in.status == 200);
    CHECK(rec.keep("v1 wrong password",
                   latch.post("/api/v1/login", {{"email", email}, {"password", wrong}}))
              .status == 401);
    CHECK(rec.keep("v1 refresh",
                   latch.post("/api/v1/refresh", {{"refresh_token", in.body["refresh_token"]}}))
              .status == 200);
    CHECK(rec.keep("v1 verify", latch.post("/api/v1/verify", {{"token", in.body["access_token"]}}))
              .status == 200);
    CHECK(rec.keep("v1 me", latch.get("/api/v1/authorized/me", in.body["access_token"])).status ==
          200);
    CHECK(rec.keep("v1 password-reset",
                   latch.post("/api/v1/password-reset", {{"email", email}, {"username", user}}))
              .status == 200);
    std::string reset = mail.token_for(email);
    REQUIRE(!reset.empty());
    rec.secret("reset token", reset);
    CHECK(rec.keep("v1 password-reset-confirm",
                   latch.post("/api/v1/password-reset-confirm?token=" + reset,
                              {{"new_password", pw2}, {"new_password_confirm", pw2}}))
              .status == 200);
    CHECK(rec.keep("v1 password-reset-confirm reuse",
                   latch.post("/api/v1/password-reset-confirm?token=" + reset,
                              {{"new_password", pw2}, {"new_password_confirm", pw2}}))
              .status == 400);
    const Reply &in2 = rec.keep("v1 login after reset",
                                latch.post("/api/v1/login", {{"email", email}, {"password", pw2}}));
    REQUIRE(in2.status == 200);
    CHECK(rec.keep("v1 refresh after reset",
                   latch.post("/api/v1/refresh", {{"refresh_token", in.body["refresh_token"]}}))
              .status == 401);
    CHECK(bearer_post(latch, "/api/v1/logout", in2.body["access_token"], rec, "v1 logout") == 200);
    CHECK(
        rec.keep("v1 me after logout", latch.get("/api/v1/authorized/me", in2.body["access_token"]))
            .status == 401);
  }
  { // envelope
    std::string user = unique("leakev"), email = lower(user) + "@example.com";
    std::string pw = "Ev-Secret-8857!", wrong = "Ev-Wrong-6623!";
    rec.secret("password", pw);
    rec.secret("wrong password", wrong);
    REQUIRE(
        rec.keep("envelope signUp", latch.post("/api/v1/auth/signUp", {{"username", user},
                                                                       {"email", email},
                                                                       {"password", pw},
                                                                       {"display_name", "Leak"}}))
            .status == 200);
    const Reply &in =
        rec.keep("envelope login",
                 latch.post("/api/v1/auth/login", {{"identity", email}, {"password", pw}}));
    REQUIRE(in.status == 200);
    CHECK(rec.keep("envelope wrong password",
                   latch.post("/api/v1/auth/login", {{"identity", user}, {"password", wrong}}))
              .status == 401);
    CHECK(rec.keep("envelope unknown user",
                   latch.post("/api/v1/auth/login",
                              {{"identity", "nobody-" + user}, {"password", wrong}}))
              .status == 404);
    // Its token (no refresh token in envelope) logs out elsewhere.
    CHECK(bearer_post(latch, "/api/v1/logout", in.body["data"][0], rec,
                      "envelope token logout via v1") == 200);
  }
}

// Waits until the server has written everything it is going to write about the requests (mail
// is delivered by a queue, so its log lines may trail the answer).
std::string settled_log(const LatchProcess &latch) {
  std::string log = latch.log();
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::string now = latch.log();
    if (now == log && i >= 10) break;
    log = now;
  }
  return log;
}

void check_log_has_no(const std::string &log, const Record &rec, bool tokens_too) {
  REQUIRE(!rec.secrets.empty());
  int checked = 0;
  for (const auto &[kind, value] : rec.secrets) {
    bool mailed = kind == "reset token" || kind == "email confirmation token";
    if (mailed && !tokens_too) continue;
    ++checked;
    CHECK_MESSAGE(log.find(value) == std::string::npos, "the log contains a ", kind, ": ", value);
  }
  std::smatch m;
  CHECK_MESSAGE(!std::regex_search(log, m, kJwt), "the log contains a JWT: ", m.str());
  CHECK_MESSAGE(log.find(kJwtSecret) == std::string::npos, "the log contains the JWT secret");
  CHECK_MESSAGE(log.find("$argon2") == std::string::npos, "the log contains a password hash");
  MESSAGE(checked, " secrets looked for in ", log.size(), " bytes of log");
}

void check_headers(const Record &rec) {
  for (const auto &[what, r] : rec.replies) {
    INFO(what, " answered ", r.status, " ", r.text.substr(0, 200));
    CHECK(r.status != 0);
    CHECK(r.header("X-Content-Type-Options") == "nosniff");
    bool carries_token =
        std::regex_search(r.text, kJwt) || r.text.find("reset_token") != std::string::npos;
    if (carries_token) CHECK(r.header("Cache-Control").find("no-store") != std::string::npos);
  }
  MESSAGE(rec.replies.size(), " responses checked for nosniff and no-store");
}

int mode_of(const std::string &path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

// The routes `latch routes` lists, as (method, path).
std::vector<std::pair<std::string, std::string>> all_routes() {
  CommandResult out = run_latch({"routes"});
  std::vector<std::pair<std::string, std::string>> rows;
  std::istringstream lines(out.output);
  std::string line, method, path;
  std::getline(lines, line);
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    if (words >> method >> path) rows.emplace_back(method, path);
  }
  return rows;
}

// What an error body must never show: SQL, the store, C++ internals, file paths.
std::string internal_detail(const std::string &body, const std::string &db_path) {
  const std::string low = lower(body);
  for (const char *word :
       {"sql",          "exception", "what()",     "std::",          ".cpp",
        ".hpp",         ".h:",       "constraint", "no such table",  "database is locked",
        "syntax error", "/tmp/",     "/work/",     "/usr/",          "stoi",
        "basic_string", "nlohmann",  "httplib",    "json.exception", "parse_error."})
    if (low.find(word) != std::string::npos) return word;
  for (const char *word : {"SELECT", "INSERT", "UPDATE ", "DELETE ", "FROM ", "WHERE "})
    if (body.find(word) != std::string::npos) return word;
  if (body.find(db_path) != std::string::npos) return "the database path";
  return {};
}

} // namespace

TEST_CASE("with SMTP configured, a full life cycle on every API leaves no password, token or JWT "
          "in the log") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}, {"LATCH_JWT_SECRET", kJwtSecret}}});
  Mailbox mail(&sink, latch);
  Record rec;
  life_cycle(latch, mail, rec);
  CHECK(sink.message_count() == 3); // v1 confirmation, flask reset, v1 reset
  check_log_has_no(settled_log(latch), rec, /*tokens_too=*/true);
  check_headers(rec);
}

TEST_CASE("without SMTP the log carries the mailed links but still no password and no JWT") {
  LatchProcess latch({{}, {{"LATCH_JWT_SECRET", kJwtSecret}}});
  Mailbox mail(nullptr, latch);
  Record rec;
  life_cycle(latch, mail, rec);
  std::string log = settled_log(latch);
  // By design (SPEC: without SMTP each mail is written to the log), so the links are there...
  CHECK(log.find("?token=") != std::string::npos);
  // ...but nothing else secret is.
  check_log_has_no(log, rec, /*tokens_too=*/false);
  check_headers(rec);
}

TEST_CASE("a reset token answered in the body is no-store and never reaches the log") {
  SmtpSink sink;
  LatchProcess latch({{"--reset-token-in-response"},
                      {{"LATCH_SMTP_URL", sink.url()}, {"LATCH_JWT_SECRET", kJwtSecret}}});
  Mailbox mail(&sink, latch);
  Record rec;
  life_cycle(latch, mail, rec);
  bool seen = false;
  for (const auto &[what, r] : rec.replies)
    if (what == "flask forget-password") {
      seen = true;
      CHECK(r.body.contains("reset_token"));
      CHECK(r.header("Cache-Control").find("no-store") != std::string::npos);
    }
  CHECK(seen);
  check_log_has_no(settled_log(latch), rec, /*tokens_too=*/true);
  check_headers(rec);
}

TEST_CASE("every response on every route carries nosniff, errors and oddities included") {
  LatchProcess latch;
  Record rec;
  auto routes = all_routes();
  REQUIRE(routes.size() == latch::http::route_table().size());
  const std::string big(1 << 20, 'x');
  for (const auto &[method, path] : routes) {
    const std::string r = method + " " + path;
    if (method == "POST") {
      rec.keep(r + " malformed JSON", latch.post_raw(path, "{\"a\":", "application/json"));
      rec.keep(r + " empty JSON", latch.post(path, json::object()));
      rec.keep(r + " text/plain", latch.post_raw(path, "hello", "text/plain"));
      rec.keep(r + " bad token", latch.post_raw(path, "{}", "application/json", "not.a.token"));
      rec.keep(r + " 1 MB body (413)",
               latch.post_raw(path, "{\"a\":\"" + big + "\"}", "application/json"));
      rec.keep(r + " GET (405)", latch.get(path));
    } else {
      rec.keep(r + " no token", latch.get(path));
      rec.keep(r + " bad token", latch.get(path, "not.a.token"));
      rec.keep(r + " POST (405)", latch.post(path, json::object()));
      rec.keep(r + " URI too long (414)", latch.get(path + "?token=" + std::string(20000, 'a')));
    }
  }
  // A path no route serves under each prefix an API answers at, and outside them all.
  std::set<std::string> nowhere = {"/nowhere", "/"};
  for (const latch::apis::ApiRow &row : latch::apis::api_rows())
    for (const latch::apis::PathClaim &claim : row.claims)
      nowhere.insert(std::string(claim.prefix) + "/nowhere");
  for (const std::string &path : nowhere) {
    rec.keep("GET " + path + " (404)", latch.get(path));
    rec.keep("POST " + path + " (404)", latch.post(path, json::object()));
  }
  rec.keep("GET /reset-password (the page)", latch.get("/reset-password"));
  rec.keep("GET /api/v1/verify as HTML",
           latch.get("/api/v1/verify?token=nope", "", {{"Accept", "text/html"}}));
  std::set<int> statuses;
  for (const auto &[what, r] : rec.replies)
    statuses.insert(r.status);
  for (int expected : {200, 400, 401, 404, 405, 413, 415})
    CHECK_MESSAGE(statuses.count(expected), "no ", expected, " was seen");
  check_headers(rec);
}

TEST_CASE("the database file and its -wal and -shm files are mode 0600, whatever the umask") {
  if (skip_on_postgres("the modes of the SQLite file and its -wal and -shm")) return;
  for (mode_t mask : {mode_t(022), mode_t(0)}) {
    INFO("umask ", mask);
    mode_t old = ::umask(mask);
    auto latch = std::make_unique<LatchProcess>();
    ::umask(old);
    // Writes, so the WAL and its index exist.
    std::string user = unique("mode");
    REQUIRE(latch
                ->post("/api/v1/register?sendEmail=false", {{"email", lower(user) + "@example.com"},
                                                            {"username", user},
                                                            {"password", "Passw0rd!23"}})
                .status == 201);
    REQUIRE(latch
                ->post("/api/v1/login",
                       {{"email", lower(user) + "@example.com"}, {"password", "Passw0rd!23"}})
                .status == 200);
    const std::string db = latch->db_path();
    CHECK(mode_of(db) == 0600);
    int present = 0;
    for (const std::string suffix : {"-wal", "-shm", "-journal"}) {
      int mode = mode_of(db + suffix);
      if (mode < 0) continue;
      ++present;
      CHECK_MESSAGE(mode == 0600, db, suffix, " has mode ", mode);
    }
    CHECK(present >= 1); // WAL mode: -wal and -shm exist while the server runs
    latch->stop();
    CHECK(mode_of(db) == 0600);
  }
}

TEST_CASE("error bodies never carry SQL, exceptions, C++ internals or file paths") {
  LatchProcess latch;
  struct Bad {
    std::string what;
    std::function<Reply()> send;
  };
  std::vector<Bad> bad;
  auto routes = all_routes();
  REQUIRE(routes.size() == latch::http::route_table().size());
  // Bodies that reach every POST route's parser or its field checks.
  struct Body {
    std::string name, text, type;
  };
  const std::string json_type = "application/json";
  const std::vector<Body> bodies = {
      {"truncated JSON", "{\"username\":\"a", json_type},
      {"trailing garbage", "{}garbage", json_type},
      {"a JSON array", "[1,2]", json_type},
      {"deep nesting", std::string(20000, '[') + std::string(20000, ']'), json_type},
      {"invalid UTF-8", "{\"username\":\"\xff\xfe\",\"password\":\"\xc0\xaf\"}", json_type},
      {"wrong types",
       json{{"username", 1},
            {"email", json::array()},
            {"password", json::object()},
            {"token", true},
            {"refresh", 2},
            {"refresh_token", 3},
            {"identity", 4},
            {"reset_token", 5},
            {"new_password", 6}}
           .dump(),
       json_type},
      {"NoSQL operators",
       json{{"username", {{"$ne", nullptr}}},
            {"email", {{"$ne", nullptr}}},
            {"password", {{"$gt", ""}}},
            {"identity", {{"$ne", nullptr}}}}
           .dump(),
       json_type},
      {"SQL in every field",
       json{{"username", "x' OR 1=1 --"},
            {"email", "' OR 1=1 --@example.com"},
            {"password", "\"; DROP TABLE users; --"},
            {"identity", "' OR '1'='1"},
            {"token", "' OR 1=1 --"},
            {"refresh", "'--"},
            {"refresh_token", "'--"},
            {"reset_token", "'--"},
            {"new_password", "'; --"},
            {"new_password_confirm", "'; --"},
            {"display_name", "'"}}
           .dump(),
       json_type},
      {"text/plain", "hi", "text/plain"},
      {"application/xml", "<a/>", "application/xml"},
      {"1 MB body", "{\"a\":\"" + std::string(1 << 20, 'x') + "\"}", json_type},
  };
  for (const auto &[method, path] : routes) {
    const std::string p = path;
    const std::string r = method + " " + path;
    if (method == "POST") {
      for (const Body &b : bodies)
        bad.push_back(
            {r + " <- " + b.name, [&latch, p, b] { return latch.post_raw(p, b.text, b.type); }});
      bad.push_back({r + " <- a forged token", [&latch, p] {
                       return latch.post_raw(
                           p, "{}", "application/json",
                           "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiInIE9SIDE9MSAtLSJ9.c2ln");
                     }});
      bad.push_back({r + " <- GET (405)", [&latch, p] { return latch.get(p); }});
    } else {
      bad.push_back({r + " <- no token", [&latch, p] { return latch.get(p); }});
      bad.push_back({r + " <- SQL as the token", [&latch, p] {
                       return latch.get(p + "?token=%27%20OR%201%3D1%20--", "' OR 1=1 --");
                     }});
      bad.push_back(
          {r + " <- invalid UTF-8 token", [&latch, p] { return latch.get(p + "?token=%FF%FE"); }});
      bad.push_back({r + " <- POST (405)", [&latch, p] { return latch.post(p, json::object()); }});
    }
  }
  bad.push_back(
      {"GET /api/auth/nowhere (404)", [&latch] { return latch.get("/api/auth/nowhere"); }});
  int errors = 0;
  for (const Bad &b : bad) {
    Reply r = b.send();
    INFO(b.what, " answered ", r.status, " ", r.text.substr(0, 300));
    // v1 password-reset answers 200 to any well-formed request, SQL text included.
    bool may_pass = b.what == "POST /api/v1/password-reset <- SQL in every field";
    CHECK((r.status >= 400 || (may_pass && r.status == 200)));
    CHECK(r.status < 500);
    if (r.status >= 400) ++errors;
    std::string found = internal_detail(r.text, latch.db_path());
    CHECK_MESSAGE(found.empty(), "the body shows \"", found, "\"");
  }
  MESSAGE(errors, " error bodies checked");
}

TEST_CASE("when the store fails, the 500 in each API's shape says nothing about why") {
  LatchProcess latch;
  std::string user = unique("store");
  std::string email = lower(user) + "@example.com";
  REQUIRE(latch
              .post("/api/v1/register?sendEmail=false",
                    {{"email", email}, {"username", user}, {"password", "Passw0rd!23"}})
              .status == 201);

  // Take the users table away behind the server's back, so every query of it fails inside.
  sql_exec(latch.db_path(), "ALTER TABLE users RENAME TO users_moved_away");

  const std::string pw = "Store-Secret-2291!";
  struct Call {
    std::string what, path;
    json body;
  };
  std::string fresh = unique("st");
  const std::vector<Call> calls = {
      {"picflux signin", "/api/auth/signin", {{"email", email}, {"password", pw}}},
      {"picflux signup",
       "/api/auth/signup",
       {{"email", lower(fresh) + "a@example.com"}, {"username", fresh + "a"}, {"password", pw}}},
      {"simplejwt token", "/auth/token", {{"username", user}, {"password", pw}}},
      {"simplejwt register", "/auth/register", {{"username", fresh + "b"}, {"password", pw}}},
      {"flask login", "/auth/login", {{"username", user}, {"password", pw}}},
      {"flask signup",
       "/auth/signup",
       {{"username", fresh + "c"}, {"email", lower(fresh) + "c@example.com"}, {"password", pw}}},
      {"flask forget-password", "/auth/forget-password", {{"email", email}}},
      {"v1 login", "/api/v1/login", {{"email", email}, {"password", pw}}},
      {"v1 register",
       "/api/v1/register?sendEmail=false",
       {{"email", lower(fresh) + "d@example.com"}, {"username", fresh + "d"}, {"password", pw}}},
      {"v1 password-reset", "/api/v1/password-reset", {{"email", email}, {"username", user}}},
      {"envelope login", "/api/v1/auth/login", {{"identity", user}, {"password", pw}}},
      {"envelope signUp",
       "/api/v1/auth/signUp",
       {{"username", fresh + "e"},
        {"email", lower(fresh) + "e@example.com"},
        {"password", pw},
        {"display_name", "S"}}},
  };
  int server_errors = 0;
  for (const Call &c : calls) {
    Reply r = latch.post(c.path, c.body);
    INFO(c.what, " answered ", r.status, " ", r.text);
    CHECK(r.status >= 400); // it cannot succeed without its table
    if (r.status >= 500) ++server_errors;
    CHECK(r.body.is_object());
    CHECK(r.header("X-Content-Type-Options") == "nosniff");
    std::string found = internal_detail(r.text, latch.db_path());
    CHECK_MESSAGE(found.empty(), "the body shows \"", found, "\"");
  }
  CHECK(server_errors > 0); // the failure really happened inside
  MESSAGE(server_errors, " of ", calls.size(), " requests failed inside the store");

  sql_exec(latch.db_path(), "ALTER TABLE users_moved_away RENAME TO users");
  // The operator learns what failed from the log; the password still never appears there.
  std::string log = settled_log(latch);
  CHECK(log.find("database error") != std::string::npos);
  CHECK(log.find(pw) == std::string::npos);
  CHECK(!std::regex_search(log, kJwt));
  // And the server recovers once the table is back.
  CHECK(latch.post("/api/v1/login", {{"email", email}, {"password", "Passw0rd!23"}}).status == 200);
}
