// The audit log, black-box: every security event through each API and every admin command is
// one row with its fields, none holds a password or a token, the retention purge, `latch
// audit`, the /metrics counts, and an answered request's event surviving a kill.
#include "support/latch_process.h"

#include <doctest/doctest.h>

#include <pwd.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace latch::test;

namespace {

const std::string kPassword = "audit-password-Kq7!xZ";
const std::string kClient = "198.51.100.23"; // X-Forwarded-For, through --trusted-proxy
const std::string kAgent = "AuditTest/1.0 (+https://example.com)";

std::string os_user() {
  const passwd *pw = getpwuid(getuid());
  return pw ? pw->pw_name : std::to_string(getuid());
}

// A request as a client behind the trusted proxy sends it, with its own request id.
struct Client {
  explicit Client(const LatchProcess &server) : latch(server) {}
  const LatchProcess &latch;
  int n = 0;
  std::string last_id;

  httplib::Headers headers(const std::string &agent = kAgent) {
    last_id = "audit-req-" + std::to_string(++n);
    return {{"X-Forwarded-For", kClient}, {"User-Agent", agent}, {"X-Request-Id", last_id}};
  }
  Reply post(const std::string &path, const json &body, const std::string &bearer = "") {
    return latch.post_raw(path, body.dump(), "application/json", bearer, headers());
  }
  Reply get(const std::string &path) { return latch.get(path, "", headers()); }
};

// `latch audit ARGS --json` on the server's database: the events, newest first.
json audit(const LatchProcess &latch, std::vector<std::string> args = {}) {
  std::vector<std::string> all = {"audit", "--db", latch.db_path(), "--json", "--limit", "10000"};
  all.insert(all.end(), args.begin(), args.end());
  CommandResult r = run_latch(all);
  INFO(r.output);
  REQUIRE(r.status == 0);
  return json::parse(r.output);
}

// The events of one kind (and user id, when given).
std::vector<json> events(const json &log, const std::string &event,
                         const std::optional<std::string> &user_id = std::nullopt) {
  std::vector<json> out;
  for (const auto &e : log)
    if (e["event"] == event && (!user_id || e["user_id"] == *user_id)) out.push_back(e);
  return out;
}

// The one event of that kind (and user): exactly one, or the test fails.
json one(const json &log, const std::string &event,
         const std::optional<std::string> &user_id = std::nullopt) {
  auto found = events(log, event, user_id);
  INFO("event " << event << " user " << user_id.value_or("(any)") << " in " << log.dump(1));
  REQUIRE(found.size() == 1);
  return found.front();
}

// The fields every event of a request carries.
void check_request_fields(const json &e, const std::string &api, const std::string &request_id) {
  INFO(e.dump());
  CHECK(e["api"] == api);
  CHECK(e["address"] == kClient);
  CHECK(e["user_agent"] == kAgent);
  CHECK(e["request_id"] == request_id);
  CHECK(e["actor"] == "");
}

std::string user_of(const std::string &access) {
  return jwt_payload(access)["sub"].get<std::string>();
}

std::string file_bytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

} // namespace

TEST_CASE("every security event through the APIs is one audit row with its fields, and none "
          "holds a password or a token") {
  LatchProcess latch(
      {{"--trusted-proxy", "127.0.0.1", "--max-failed-logins", "3", "--refresh-reuse-interval", "0",
        "--reset-token-in-response", "--verify-token-in-response", "--require-verified-email"},
       {}});
  Client c{latch};
  std::vector<std::string> secrets = {kPassword};
  auto keep = [&](const Reply &r) {
    for (const char *k : {"access", "refresh", "accessToken", "refreshToken", "access_token",
                          "refresh_token", "token", "reset_token", "verifyToken"})
      if (r.body.is_object() && r.body.contains(k) && r.body[k].is_string())
        secrets.push_back(r.body[k]);
  };

  // picflux: sign-up, sign-in, a wrong password, refresh, reuse, logout.
  const std::string ann = unique("ann"), ann_email = lower(ann) + "@example.com";
  Reply up = c.post("/api/auth/signup",
                    {{"username", ann}, {"email", ann_email}, {"password", kPassword}});
  REQUIRE(up.status / 100 == 2);
  const std::string up_id = c.last_id;
  Reply in = c.post("/api/auth/signin", {{"email", ann_email}, {"password", kPassword}});
  REQUIRE(in.status == 200);
  keep(up);
  keep(in);
  const std::string in_id = c.last_id;
  const std::string ann_id = user_of(in.body["access_token"]);
  const std::string wrong = "not-the-password-" + ann;
  secrets.push_back(wrong);
  CHECK(c.post("/api/auth/signin", {{"email", ann_email}, {"password", wrong}}).status == 401);
  const std::string wrong_id = c.last_id;
  const std::string refresh0 = in.body["refresh_token"];
  Reply rotated = c.post("/api/auth/refresh", json::object(), refresh0);
  REQUIRE(rotated.status == 200);
  keep(rotated);
  CHECK(c.post("/api/auth/refresh", json::object(), refresh0).status == 401); // reuse
  const std::string reuse_id = c.last_id;
  Reply again = c.post("/api/auth/signin", {{"email", ann_email}, {"password", kPassword}});
  REQUIRE(again.status == 200);
  keep(again);
  CHECK(c.post("/api/auth/logout", json::object(), again.body["access_token"]).status / 100 == 2);
  const std::string logout_id = c.last_id;

  // flask: an unknown user; a lockout; a password reset.
  const std::string ghost = unique("ghost");
  CHECK(c.post("/auth/login", {{"username", ghost}, {"password", kPassword}}).status == 401);
  const std::string ghost_id = c.last_id;
  const std::string bob = unique("bob"), bob_email = lower(bob) + "@example.com";
  REQUIRE(c.post("/auth/signup", {{"username", bob}, {"email", bob_email}, {"password", kPassword}})
                  .status /
              100 ==
          2);
  for (int i = 0; i < 3; ++i)
    CHECK(c.post("/auth/login", {{"username", bob}, {"password", wrong}}).status == 401);
  Reply locked = c.post("/auth/login", {{"username", bob}, {"password", wrong}});
  CHECK(locked.status == 429);
  const std::string locked_id = c.last_id;
  Reply forgot = c.post("/auth/forget-password", {{"email", bob_email}});
  REQUIRE(forgot.status == 200);
  keep(forgot);
  const std::string forgot_id = c.last_id;
  const std::string new_password = "bob-new-password-9Xv";
  secrets.push_back(new_password);
  REQUIRE(c.post("/auth/reset-password",
                 {{"reset_token", forgot.body["reset_token"]}, {"new_password", new_password}})
              .status == 200);
  const std::string reset_id = c.last_id;

  // v1: unverified refused, then confirmed.
  const std::string cid = unique("cid"), cid_email = lower(cid) + "@example.com";
  Reply reg = c.post("/api/v1/register",
                     {{"email", cid_email}, {"username", cid}, {"password", kPassword}});
  REQUIRE(reg.status == 201);
  keep(reg);
  CHECK(c.post("/api/v1/login", {{"email", cid_email}, {"password", kPassword}}).status == 401);
  const std::string unverified_id = c.last_id;
  REQUIRE(c.get("/api/v1/verify?token=" + reg.body["verifyToken"].get<std::string>()).status ==
          200);
  const std::string confirmed_id = c.last_id;
  Reply v1in = c.post("/api/v1/login", {{"email", cid_email}, {"password", kPassword}});
  REQUIRE(v1in.status == 200);
  keep(v1in);

  // simplejwt and envelope sign-ups, an envelope sign-in.
  const std::string dee = unique("dee"), eve = unique("eve");
  Reply sj = c.post("/auth/register", {{"username", dee}, {"password", kPassword}});
  REQUIRE(sj.status / 100 == 2);
  keep(sj);
  const std::string sj_id = c.last_id;
  REQUIRE(c.post("/api/v1/auth/signUp", {{"username", eve},
                                         {"email", lower(eve) + "@example.com"},
                                         {"password", kPassword},
                                         {"display_name", "Eve"}})
              .status == 200);
  Reply env = c.post("/api/v1/auth/login", {{"identity", eve}, {"password", kPassword}});
  REQUIRE(env.status == 200);
  keep(env);
  const std::string env_id = c.last_id;

  const json log = audit(latch);
  // sign_up: one per API's sign-up.
  CHECK(events(log, "sign_up").size() == 5);
  check_request_fields(one(log, "sign_up", ann_id), "picflux", up_id);
  auto sign_ins = events(log, "sign_in", ann_id);
  REQUIRE(sign_ins.size() == 2);
  check_request_fields(sign_ins.back(), "picflux", in_id); // newest first
  json failed = one(log, "sign_in_failed", ann_id);
  check_request_fields(failed, "picflux", wrong_id);
  CHECK(failed["detail"] == "wrong_password");
  CHECK(failed["identifier"] == ""); // a known user is named by id
  json reuse = one(log, "refresh_reuse", ann_id);
  check_request_fields(reuse, "picflux", reuse_id);
  check_request_fields(one(log, "logout", ann_id), "picflux", logout_id);

  // The unknown user: no id, the identifier tried.
  json unknown;
  for (const auto &e : events(log, "sign_in_failed"))
    if (e["detail"] == "unknown_user") unknown = e;
  REQUIRE(unknown.is_object());
  check_request_fields(unknown, "flask", ghost_id);
  CHECK(unknown["user_id"].is_null());
  CHECK(unknown["identifier"] == ghost);

  // bob: three wrong passwords, the lock started once, then refused as locked out.
  const std::string bob_id = one(log, "password_reset_completed")["user_id"];
  auto bob_failed = events(log, "sign_in_failed", bob_id);
  REQUIRE(bob_failed.size() == 4);
  CHECK(bob_failed[0]["detail"] == "locked_out");
  check_request_fields(bob_failed[0], "flask", locked_id);
  for (std::size_t i = 1; i < 4; ++i)
    CHECK(bob_failed[i]["detail"] == "wrong_password");
  json lock = one(log, "lockout_started", bob_id);
  CHECK(lock["api"] == "flask");
  CHECK(lock["address"] == kClient);
  check_request_fields(one(log, "password_reset_requested", bob_id), "flask", forgot_id);
  check_request_fields(one(log, "password_reset_completed", bob_id), "flask", reset_id);

  // v1.
  json unverified;
  for (const auto &e : events(log, "sign_in_failed"))
    if (e["detail"] == "unverified") unverified = e;
  REQUIRE(unverified.is_object());
  check_request_fields(unverified, "v1", unverified_id);
  const std::string cid_id = unverified["user_id"];
  check_request_fields(one(log, "email_confirmed", cid_id), "v1", confirmed_id);
  CHECK(one(log, "sign_in", cid_id)["api"] == "v1");

  // simplejwt, envelope.
  bool simplejwt_seen = false;
  for (const auto &e : events(log, "sign_up"))
    if (e["request_id"] == sj_id) {
      simplejwt_seen = true;
      CHECK(e["api"] == "simplejwt");
    }
  CHECK(simplejwt_seen);
  bool envelope_seen = false;
  for (const auto &e : events(log, "sign_in"))
    if (e["request_id"] == env_id) {
      envelope_seen = true;
      check_request_fields(e, "envelope", env_id);
    }
  CHECK(envelope_seen);

  // Nothing else: every row above, and only those.
  CHECK(log.size() == 5 + 4 + 1 + 4 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1);

  // No password, token or link anywhere: the audit output, the database and its WAL, the
  // server's stdout and stderr.
  std::vector<std::pair<std::string, std::string>> places = {
      {"latch audit --json", log.dump()},
      {"latch audit", run_latch({"audit", "--db", latch.db_path(), "--limit", "10000"}).output},
      {"stdout", latch.output()},
      {"stderr", latch.log()}};
  if (!on_postgres(latch.db_path())) {
    places.emplace_back("auth.db", file_bytes(latch.db_path()));
    places.emplace_back("auth.db-wal", file_bytes(latch.db_path() + "-wal"));
  }
  REQUIRE(secrets.size() > 10);
  for (const auto &[where, text] : places) {
    CHECK(!text.empty());
    for (const auto &secret : secrets) {
      INFO(where << " holds " << secret);
      CHECK(text.find(secret) == std::string::npos);
    }
  }
}

TEST_CASE("every admin command that writes is one audit row naming the OS user who ran it") {
  LatchProcess latch;
  const std::string db = latch.db_path();
  const std::string actor = "cli:" + os_user();
  // Each command's output, kept: the passwords it makes are printed once, and must be nowhere
  // in the log.
  std::string printed;
  auto admin = [&](std::vector<std::string> args) {
    args.push_back("--db");
    args.push_back(db);
    CommandResult r = run_latch(args);
    INFO(r.output);
    REQUIRE(r.status == 0);
    printed += r.output;
  };
  const std::string name = unique("fay"), email = lower(name) + "@example.com";
  admin({"user", "add", name, "--email", email});
  admin({"user", "set-password", name});
  admin({"user", "verify-email", name});
  admin({"user", "rename", name, name + "x"});
  admin({"sessions", "revoke", name + "x"});
  admin({"sessions", "revoke", "--all"});
  admin({"secret", "rotate"});
  admin({"mail", "retry", "--all"});
  admin({"mail", "drop", "--all"});
  admin({"purge"});
  TempDir dir;
  const std::string file = dir.file("users.jsonl");
  admin({"user", "export", file});
  admin({"user", "delete", name + "x"});
  admin({"user", "import", file}); // the deleted user back, with the hash it had
  const json log = audit(latch);
  const std::string id = one(log, "admin_add_user")["user_id"];
  for (const char *event :
       {"admin_add_user", "admin_set_password", "admin_verify_email", "admin_rename_user",
        "admin_revoke_sessions", "admin_revoke_all_sessions", "admin_rotate_key",
        "admin_retry_mail", "admin_drop_mail", "admin_purge", "admin_delete_user",
        "admin_import_users"}) {
    json e = one(log, event);
    INFO(e.dump());
    CHECK(e["actor"] == actor);
    CHECK(e["api"] == "");
    CHECK(e["address"] == "");
  }
  for (const char *event : {"admin_add_user", "admin_set_password", "admin_verify_email",
                            "admin_rename_user", "admin_revoke_sessions", "admin_delete_user"})
    CHECK(one(log, event)["user_id"] == id);
  CHECK(one(log, "admin_rename_user")["detail"] == name + " -> " + name + "x");
  CHECK(one(log, "admin_import_users")["detail"] == "1 imported, 0 skipped");
  CHECK(log.size() == 12);
  // The generated passwords, printed as "password: ...".
  std::istringstream lines(printed);
  int passwords = 0;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("password: ", 0) == 0) {
      ++passwords;
      INFO(line);
      CHECK(log.dump().find(line.substr(10)) == std::string::npos);
    }
  CHECK(passwords == 2);
}

TEST_CASE("latch audit filters by user, event and time, prints text or JSON, and refuses bad "
          "flags") {
  LatchProcess latch({{"--trusted-proxy", "127.0.0.1"}, {}});
  Client c{latch};
  const std::string a = unique("gil"), a_email = lower(a) + "@example.com";
  const std::string b = unique("hal"), b_email = lower(b) + "@example.com";
  for (const auto &[name, mail] : {std::pair{a, a_email}, std::pair{b, b_email}})
    REQUIRE(
        c.post("/api/auth/signup", {{"username", name}, {"email", mail}, {"password", kPassword}})
                .status /
            100 ==
        2);
  Reply in = c.post("/api/auth/signin", {{"email", a_email}, {"password", kPassword}});
  REQUIRE(in.status == 200);
  const std::string a_id = user_of(in.body["access_token"]);
  CHECK(c.post("/api/auth/signin", {{"email", b_email}, {"password", "wrong-" + b}}).status == 401);

  CHECK(audit(latch).size() == 4);
  // --user by username, by email and by id: the same events.
  for (const std::string &who : {a, a_email, a_id}) {
    const json mine = audit(latch, {"--user", who});
    INFO(who);
    REQUIRE(mine.size() == 2);
    CHECK(mine[0]["event"] == "sign_in"); // newest first
    CHECK(mine[1]["event"] == "sign_up");
  }
  const json failed = audit(latch, {"--event", "sign_in_failed"});
  REQUIRE(failed.size() == 1);
  CHECK(failed[0]["detail"] == "wrong_password");
  CHECK(audit(latch, {"--event", "sign_in", "--user", b}).empty());
  CHECK(audit(latch, {"--since", "1h"}).size() == 4);
  CHECK(audit(latch, {"--limit", "1"}).size() == 1);
  // A deleted user's events stay, found by its id.
  REQUIRE(run_latch({"user", "delete", a, "--db", latch.db_path()}).status == 0);
  CHECK(audit(latch, {"--user", a_id}).size() == 3); // with admin_delete_user

  CommandResult text = run_latch({"audit", "--db", latch.db_path(), "--event", "sign_in_failed"});
  CHECK(text.status == 0);
  CHECK(text.output.find("TIME") == 0);
  CHECK(text.output.find("sign_in_failed") != std::string::npos);
  CHECK(text.output.find("wrong_password") != std::string::npos);
  CHECK(text.output.find(kClient) != std::string::npos);

  CHECK(run_latch({"audit", "--db", latch.db_path(), "--since", "soon"}).status == 2);
  CHECK(run_latch({"audit", "--db", latch.db_path(), "--limit", "0"}).status == 2);
  CHECK(run_latch({"audit", "--db", latch.db_path(), "--color"}).status == 2);
}

TEST_CASE("events older than --audit-retention are purged with the rest, younger ones stay") {
  LatchProcess latch;
  const std::string name = unique("ivy"), email = lower(name) + "@example.com";
  REQUIRE(latch.post("/api/auth/signup",
                     {{"username", name}, {"email", email}, {"password", kPassword}})
                  .status /
              100 ==
          2);
  REQUIRE(latch.post("/api/auth/signin", {{"email", email}, {"password", kPassword}}).status ==
          200);
  REQUIRE(audit(latch).size() == 2);
  CommandResult kept =
      run_latch({"purge", "--db", latch.db_path()}, {{"LATCH_AUDIT_RETENTION", "1h"}});
  REQUIRE(kept.status == 0);
  CHECK(kept.output.find("audit events: 0") != std::string::npos);
  CHECK(events(audit(latch), "sign_in").size() == 1);
  // Two seconds on, a one-second retention lets both go (not the purge's own event).
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  CommandResult purged =
      run_latch({"purge", "--db", latch.db_path()}, {{"LATCH_AUDIT_RETENTION", "1s"}});
  REQUIRE(purged.status == 0);
  INFO(purged.output);
  CHECK(purged.output.find("audit events: 3") != std::string::npos); // with the first purge's
  const json left = audit(latch);
  REQUIRE(left.size() == 1);
  CHECK(left[0]["event"] == "admin_purge");
  // The flag as the server reads it.
  CHECK(run_latch({"serve", "--audit-retention", "soon"}).status == 2);
}

TEST_CASE("/metrics counts audit events by kind") {
  LatchProcess latch({{"--metrics"}, {}});
  const std::string name = unique("jon"), email = lower(name) + "@example.com";
  REQUIRE(latch.post("/api/auth/signup",
                     {{"username", name}, {"email", email}, {"password", kPassword}})
                  .status /
              100 ==
          2);
  for (int i = 0; i < 2; ++i)
    CHECK(latch.post("/api/auth/signin", {{"email", email}, {"password", "wrong"}}).status == 401);
  REQUIRE(latch.post("/api/auth/signin", {{"email", email}, {"password", kPassword}}).status ==
          200);
  const std::string m = latch.get("/metrics").text;
  INFO(m);
  CHECK(m.find("# TYPE latch_audit_events_total counter") != std::string::npos);
  CHECK(m.find("latch_audit_events_total{event=\"sign_up\"} 1\n") != std::string::npos);
  CHECK(m.find("latch_audit_events_total{event=\"sign_in_failed\"} 2\n") != std::string::npos);
  CHECK(m.find("latch_audit_events_total{event=\"sign_in\"} 1\n") != std::string::npos);
  CHECK(m.find("latch_audit_events_total{event=\"logout\"}") == std::string::npos);
}

TEST_CASE("an answered request's audit event survives the server being killed at once") {
  LatchProcess latch;
  const std::string name = unique("kim"), email = lower(name) + "@example.com";
  REQUIRE(latch.post("/api/auth/signup",
                     {{"username", name}, {"email", email}, {"password", kPassword}})
                  .status /
              100 ==
          2);
  CHECK(latch.post("/api/auth/signin", {{"email", email}, {"password", "wrong"}}).status == 401);
  latch.stop(9); // SIGKILL: nothing is flushed on the way out
  const json log = audit(latch);
  CHECK(events(log, "sign_up").size() == 1);
  CHECK(one(log, "sign_in_failed")["detail"] == "wrong_password");
}

TEST_CASE("a hostile user agent and identifier are kept truncated and printable") {
  LatchProcess latch({{"--trusted-proxy", "127.0.0.1"}, {}});
  const std::string long_agent(5000, 'A');
  Reply r = latch.post_raw("/auth/login",
                           json{{"username", std::string("eve\x1b[31m") + std::string(900, 'x')},
                                {"password", kPassword}}
                               .dump(),
                           "application/json", "", {{"User-Agent", long_agent}});
  CHECK(r.status == 401);
  const json log = audit(latch);
  REQUIRE(log.size() == 1);
  const json &first = log[0];
  CHECK(first["user_agent"].get<std::string>() == std::string(256, 'A'));
  const std::string id = first["identifier"];
  CHECK(id.size() == 256);
  CHECK(id.rfind("eve?[31m", 0) == 0);
}
