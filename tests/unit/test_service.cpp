// Unit tests for auth/service: the auth core over a real SQLite store, with a fake clock.
#include "auth/secure.h"
#include "auth/service.h"
#include "db/sqlite_store.h"

#include "support/temp_dir.h"

#include <doctest/doctest.h>

#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <vector>

using namespace latch;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kStart = 1'700'000'000;
const std::string kAddress = "203.0.113.1"; // where the tests sign in from
const std::string kCodecSecret = "service-test-secret-0123456789abcdef-xyz";

PasswordParams params(std::uint32_t memory_kib, std::uint32_t iterations) {
  PasswordParams p;
  p.memory_kib = memory_kib;
  p.iterations = iterations;
  return p;
}

// Everything an AuthService needs, wired to a temp database, a recording mailer and a clock
// the test moves by hand.
struct Harness {
  latch::test::TempDir dir;
  std::string db_path = dir.file("auth.db");
  Config config;
  db::SqliteStore store{db_path};
  PasswordHasher hasher;
  TokenCodec codec{kCodecSecret};
  std::mutex mails_mutex;
  std::vector<Mail> sent;
  // Never started: mails() sends what the outbox holds, in the test's thread, at its clock.
  Mailer mailer{store,
                [this](const Mail &m, std::stop_token) {
                  std::lock_guard lock(mails_mutex);
                  sent.push_back(m);
                  return Delivery{};
                },
                MailPolicy{}, [this] { return clock; }};
  std::int64_t clock = kStart;
  // The clock windows are measured by: the wall clock unless a test steps the two apart.
  std::optional<std::int64_t> elapsed;
  AuthService service;

  explicit Harness(const std::function<void(Config &)> &tweak = {})
      : config(make_config(tweak)), hasher(config.argon2, 4, 64),
        service(
            config, store, hasher, codec, mailer, [this] { return clock; }, nullptr,
            [this] { return elapsed ? *elapsed : clock; }) {}

  static Config make_config(const std::function<void(Config &)> &tweak) {
    Config c;
    c.argon2 = params(64, 1);
    if (tweak) tweak(c);
    return c;
  }

  std::vector<Mail> mails() {
    mailer.send_due();
    std::lock_guard lock(mails_mutex);
    return sent;
  }

  db::User sign_up(const std::string &username, std::optional<std::string> email,
                   const std::string &password = "password123") {
    NewUser u;
    u.username = username;
    u.email = std::move(email);
    u.password = password;
    auto r = service.sign_up(u);
    REQUIRE_MESSAGE(r.ok(), "sign_up failed: " << r.error().detail);
    return r.value().user;
  }

  long long count(const std::string &sql) {
    sqlite3 *db = nullptr;
    REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt *st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
    long long n = -1;
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
  }
};

// The token in a mail's first link ("" if none).
std::string token_in(const Mail &mail) {
  static const std::regex token(R"([?&]token=([A-Za-z0-9_\-]+))");
  std::smatch m;
  return std::regex_search(mail.body, m, token) ? m[1].str() : std::string();
}

template <class T> ErrorCode error_of(const Result<T> &r) {
  REQUIRE_FALSE(r.ok());
  return r.error().code;
}

} // namespace

TEST_CASE("sign_up stores a user with a UUID, a lower-case email and an argon2id hash") {
  Harness h;
  NewUser in;
  in.username = "Alice";
  in.email = "Alice@Example.COM";
  in.password = "password123";
  in.display_name = "Alice A.";
  auto r = h.service.sign_up(in);
  REQUIRE(r.ok());
  CHECK(r->user.id.size() == 36);
  CHECK(r->user.id[14] == '4');
  CHECK(r->user.username == "Alice");
  CHECK(r->user.email == std::optional<std::string>("alice@example.com"));
  CHECK(r->user.password_hash.rfind("$argon2id$v=19$m=64,t=1,p=1$", 0) == 0);
  CHECK(r->user.created_at == kStart);
  CHECK(r->user.updated_at == kStart);

  auto stored = h.store.find_user_by_id(r->user.id);
  REQUIRE(stored.has_value());
  CHECK(stored->email == std::optional<std::string>("alice@example.com"));
  CHECK(stored->display_name == "Alice A.");
  CHECK(stored->password_hash == r->user.password_hash);
  CHECK(stored->password_hash.find("password123") == std::string::npos);
}

TEST_CASE("sign_up refuses taken names and addresses in any case, and bad input") {
  Harness h;
  h.sign_up("alice", "alice@example.com");
  NewUser u;
  u.password = "password123";

  u.username = "ALICE";
  u.email = "new@example.com";
  CHECK(error_of(h.service.sign_up(u)) == ErrorCode::user_exists);
  u.username = "bob";
  u.email = "ALICE@example.com";
  CHECK(error_of(h.service.sign_up(u)) == ErrorCode::user_exists);

  u.email = "not-an-email";
  CHECK(error_of(h.service.sign_up(u)) == ErrorCode::invalid_email);
  u.email = "bob@example.com";
  u.password = "short";
  CHECK(error_of(h.service.sign_up(u)) == ErrorCode::weak_password);
  u.password = std::string(h.config.password_max_bytes + 1, 'x');
  CHECK(error_of(h.service.sign_up(u)) == ErrorCode::password_too_long);
  u.password = "password123";
  u.username = "bob smith";
  CHECK(error_of(h.service.sign_up(u)) == ErrorCode::invalid_field);
  u.username = "";
  CHECK(error_of(h.service.sign_up(u)) == ErrorCode::invalid_field);

  u.username = "bob";
  CHECK(h.service.sign_up(u).ok());
  CHECK(h.store.list_users().size() == 2);
}

TEST_CASE("a user signs in by email, by username, and by username in another case") {
  Harness h;
  db::User alice = h.sign_up("Alice", "alice@example.com");

  auto by_email = h.service.sign_in(Identity::email, "alice@example.com", "password123", kAddress);
  REQUIRE(by_email.ok());
  CHECK(by_email->id == alice.id);

  auto by_upper_email =
      h.service.sign_in(Identity::email, "ALICE@Example.com", "password123", kAddress);
  REQUIRE(by_upper_email.ok());
  CHECK(by_upper_email->id == alice.id);

  auto by_name = h.service.sign_in(Identity::username, "Alice", "password123", kAddress);
  REQUIRE(by_name.ok());
  CHECK(by_name->id == alice.id);

  auto by_lower_name = h.service.sign_in(Identity::username, "alice", "password123", kAddress);
  REQUIRE(by_lower_name.ok());
  CHECK(by_lower_name->id == alice.id);

  auto either_name =
      h.service.sign_in(Identity::email_or_username, "ALICE", "password123", kAddress);
  REQUIRE(either_name.ok());
  CHECK(either_name->id == alice.id);
  auto either_email =
      h.service.sign_in(Identity::email_or_username, "alice@example.com", "password123", kAddress);
  REQUIRE(either_email.ok());
  CHECK(either_email->id == alice.id);
}

TEST_CASE("a user without an email signs in by username") {
  Harness h;
  db::User u = h.sign_up("djangouser", std::nullopt);
  CHECK_FALSE(u.email.has_value());
  auto r = h.service.sign_in(Identity::username, "djangouser", "password123", kAddress);
  REQUIRE(r.ok());
  CHECK(r->id == u.id);
}

TEST_CASE("an unknown user is user_not_found and a wrong password is wrong_password") {
  Harness h;
  h.sign_up("alice", "alice@example.com");
  CHECK(error_of(h.service.sign_in(Identity::email, "nobody@example.com", "password123",
                                   kAddress)) == ErrorCode::user_not_found);
  CHECK(error_of(h.service.sign_in(Identity::username, "nobody", "password123", kAddress)) ==
        ErrorCode::user_not_found);
  // Identity::email looks up addresses only, Identity::username names only.
  CHECK(error_of(h.service.sign_in(Identity::email, "alice", "password123", kAddress)) ==
        ErrorCode::user_not_found);
  CHECK(error_of(h.service.sign_in(Identity::username, "alice@example.com", "password123",
                                   kAddress)) == ErrorCode::user_not_found);
  CHECK(error_of(h.service.sign_in(Identity::email, "alice@example.com", "password124",
                                   kAddress)) == ErrorCode::wrong_password);
  CHECK(error_of(h.service.sign_in(Identity::username, "alice", "", kAddress)) ==
        ErrorCode::wrong_password);
  CHECK(error_of(h.service.sign_in(Identity::username, "alice",
                                   std::string(h.config.password_max_bytes + 1, 'p'), kAddress)) ==
        ErrorCode::wrong_password);
}

TEST_CASE("an identifier locks at one address after max_failed_logins failures, for 15 minutes") {
  Harness h([](Config &c) { c.max_failed_logins = 3; });
  h.sign_up("alice", "alice@example.com");
  for (int i = 0; i < 3; ++i) {
    h.clock = kStart + i;
    CHECK(error_of(h.service.sign_in(Identity::username, "alice", "wrong", kAddress)) ==
          ErrorCode::wrong_password);
  }
  h.clock = kStart + 10;
  // Locked at that address: even the right password is refused, before any hash.
  auto locked = h.service.sign_in(Identity::username, "ALICE", "password123", kAddress);
  REQUIRE_FALSE(locked.ok());
  CHECK(locked.error().code == ErrorCode::account_locked);
  CHECK(locked.error().retry_after == 15 * 60 - 10);
  // The owner elsewhere is not locked out, and the email is another identifier.
  CHECK(h.service.sign_in(Identity::username, "alice", "password123", "198.51.100.7").ok());
  CHECK(h.service.sign_in(Identity::email, "alice@example.com", "password123", kAddress).ok());

  h.clock = kStart + 15 * 60 - 1;
  CHECK(error_of(h.service.sign_in(Identity::username, "alice", "password123", kAddress)) ==
        ErrorCode::account_locked);
  h.clock = kStart + 15 * 60;
  CHECK(h.service.sign_in(Identity::username, "alice", "password123", kAddress).ok());
}

TEST_CASE(
    "a locked username says nothing about the account's email, and unknown names lock alike") {
  Harness h([](Config &c) { c.max_failed_logins = 2; });
  h.sign_up("alice", "alice@example.com");
  for (const char *name : {"alice", "ghost"})
    for (int i = 0; i < 2; ++i)
      CHECK(error_of(h.service.sign_in(Identity::username, name, "x", kAddress)) ==
            (std::string(name) == "alice" ? ErrorCode::wrong_password : ErrorCode::user_not_found));
  for (const char *name : {"alice", "ghost"}) {
    auto r = h.service.sign_in(Identity::username, name, "x", kAddress);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::account_locked);
    CHECK(r.error().retry_after == 15 * 60);
  }
  // Alice's email and any other email answer alike: a wrong password, not a lock.
  CHECK(error_of(h.service.sign_in(Identity::email, "alice@example.com", "x", kAddress)) ==
        ErrorCode::wrong_password);
  CHECK(error_of(h.service.sign_in(Identity::email, "nobody@example.com", "x", kAddress)) ==
        ErrorCode::user_not_found);
  // And the reverse: locking the email leaves the username's count where it was.
  CHECK(error_of(h.service.sign_in(Identity::email, "alice@example.com", "x", kAddress)) ==
        ErrorCode::wrong_password);
  CHECK(error_of(h.service.sign_in(Identity::email, "alice@example.com", "x", kAddress)) ==
        ErrorCode::account_locked);
  CHECK(error_of(h.service.sign_in(Identity::username, "alice", "x", "198.51.100.7")) ==
        ErrorCode::wrong_password);
}

TEST_CASE("a successful sign-in clears the failure count of its identifier and address") {
  Harness h([](Config &c) { c.max_failed_logins = 3; });
  h.sign_up("alice", "alice@example.com");
  for (int i = 0; i < 2; ++i)
    CHECK(error_of(h.service.sign_in(Identity::username, "alice", "x", kAddress)) ==
          ErrorCode::wrong_password);
  CHECK(h.service.sign_in(Identity::username, "alice", "password123", kAddress).ok());
  for (int i = 0; i < 2; ++i)
    CHECK(error_of(h.service.sign_in(Identity::username, "alice", "x", kAddress)) ==
          ErrorCode::wrong_password);
  CHECK(h.service.sign_in(Identity::username, "alice", "password123", kAddress).ok());
}

TEST_CASE("10 x max_failed_logins failures from many addresses lock an identifier everywhere "
          "except where its owner signed in") {
  Harness h([](Config &c) { c.max_failed_logins = 2; });
  h.sign_up("alice", "alice@example.com");
  const std::string home = "192.0.2.10";
  REQUIRE(h.service.sign_in(Identity::username, "alice", "password123", home).ok());
  for (int i = 0; i < 20; ++i) {
    h.clock = kStart + i;
    const std::string bot = "198.51.100." + std::to_string(i / 2);
    CHECK(error_of(h.service.sign_in(Identity::username, "alice", "x", bot)) ==
          ErrorCode::wrong_password);
  }
  auto fresh = h.service.sign_in(Identity::username, "alice", "password123", "203.0.113.99");
  REQUIRE_FALSE(fresh.ok());
  CHECK(fresh.error().code == ErrorCode::account_locked);
  CHECK(fresh.error().retry_after == 15 * 60 - 19);
  CHECK(h.service.sign_in(Identity::username, "alice", "password123", home).ok());
  // The email is another identifier, and an unknown name locks the same way.
  CHECK(
      h.service.sign_in(Identity::email, "alice@example.com", "password123", "203.0.113.99").ok());
  for (int i = 0; i < 20; ++i)
    CHECK(error_of(h.service.sign_in(Identity::username, "ghost", "x",
                                     "198.51.100." + std::to_string(i / 2))) ==
          ErrorCode::user_not_found);
  CHECK(error_of(h.service.sign_in(Identity::username, "ghost", "x", home)) ==
        ErrorCode::account_locked);
  // Thirty days after its last sign-in the owner's address is a stranger's again.
  h.clock = kStart + 19 + 30 * 86400;
  for (int i = 0; i < 20; ++i)
    CHECK(error_of(h.service.sign_in(Identity::username, "alice", "x",
                                     "198.51.100." + std::to_string(i / 2))) ==
          ErrorCode::wrong_password);
  CHECK(error_of(h.service.sign_in(Identity::username, "alice", "password123", home)) ==
        ErrorCode::account_locked);
}

TEST_CASE("a password reset lifts every lock and count on the account's username and email") {
  Harness h([](Config &c) { c.max_failed_logins = 2; });
  db::User alice = h.sign_up("alice", "alice@example.com");
  for (int i = 0; i < 20; ++i) {
    const std::string bot = "198.51.100." + std::to_string(i / 2);
    h.service.sign_in(Identity::username, "alice", "x", bot);
    h.service.sign_in(Identity::email, "alice@example.com", "x", bot);
  }
  for (Identity kind : {Identity::username, Identity::email})
    CHECK(error_of(h.service.sign_in(kind, kind == Identity::email ? "alice@example.com" : "alice",
                                     "password123", kAddress)) == ErrorCode::account_locked);
  auto token =
      h.service.start_password_reset(alice, h.config.reset_ttl, TokenDelivery::mail_and_answer);
  REQUIRE(token.ok());
  REQUIRE(h.service.finish_password_reset(*token, "brand-new-password").ok());
  CHECK(h.service.sign_in(Identity::username, "Alice", "brand-new-password", kAddress).ok());
  CHECK(
      h.service.sign_in(Identity::email, "alice@example.com", "brand-new-password", "198.51.100.0")
          .ok());
  // Every count went, not only the locks: one more failure at a bot's address locks nothing.
  CHECK(error_of(h.service.sign_in(Identity::username, "alice", "x", "198.51.100.1")) ==
        ErrorCode::wrong_password);
  CHECK(h.service.sign_in(Identity::username, "alice", "brand-new-password", "198.51.100.1").ok());
}

TEST_CASE("a password changed by another process lifts the locks at the next attempt") {
  Harness h([](Config &c) { c.max_failed_logins = 2; });
  db::User alice = h.sign_up("alice", "alice@example.com");
  for (int i = 0; i < 2; ++i)
    h.service.sign_in(Identity::email, "alice@example.com", "x", kAddress);
  for (int i = 0; i < 20; ++i)
    h.service.sign_in(Identity::username, "alice", "x", "198.51.100." + std::to_string(i / 2));
  CHECK(error_of(h.service.sign_in(Identity::email, "alice@example.com", "password123",
                                   kAddress)) == ErrorCode::account_locked);
  // What latch user set-password does, through its own connection.
  {
    db::SqliteStore admin(h.db_path);
    PasswordHasher hasher(h.config.argon2, 1, 1);
    REQUIRE(admin.replace_password(alice.id, hasher.hash("set-by-admin-1").value(), h.clock));
  }
  CHECK(h.service.sign_in(Identity::email, "alice@example.com", "set-by-admin-1", kAddress).ok());
  CHECK(h.service.sign_in(Identity::username, "alice", "set-by-admin-1", "203.0.113.99").ok());
}

TEST_CASE("a hash upgraded at sign-in is not taken for a password change") {
  Harness h([](Config &c) { c.max_failed_logins = 2; });
  h.sign_up("alice", "alice@example.com");
  Config stronger = h.config;
  stronger.argon2 = params(128, 2);
  PasswordHasher stronger_hasher(stronger.argon2, 2, 8);
  AuthService upgraded(stronger, h.store, stronger_hasher, h.codec, h.mailer,
                       [&h] { return h.clock; });
  for (int i = 0; i < 2; ++i)
    upgraded.sign_in(Identity::username, "alice", "x", kAddress);
  CHECK(upgraded.sign_in(Identity::username, "alice", "password123", "192.0.2.10").ok());
  CHECK(error_of(upgraded.sign_in(Identity::username, "alice", "password123", kAddress)) ==
        ErrorCode::account_locked);
}

TEST_CASE("max_failed_logins of zero never locks an account") {
  Harness h([](Config &c) { c.max_failed_logins = 0; });
  h.sign_up("alice", "alice@example.com");
  for (int i = 0; i < 150; ++i)
    CHECK(error_of(h.service.sign_in(Identity::username, "alice", "x", kAddress)) ==
          ErrorCode::wrong_password);
  CHECK(h.service.sign_in(Identity::username, "alice", "password123", kAddress).ok());
}

TEST_CASE("a hash made with older parameters is upgraded at the next successful sign-in") {
  Harness h; // hashes with m=64, t=1
  db::User alice = h.sign_up("alice", "alice@example.com");
  const std::string old_hash = alice.password_hash;
  REQUIRE(old_hash.rfind("$argon2id$v=19$m=64,t=1,p=1$", 0) == 0);

  Config stronger = h.config;
  stronger.argon2 = params(128, 2);
  PasswordHasher stronger_hasher(stronger.argon2, 2, 8);
  AuthService upgraded(stronger, h.store, stronger_hasher, h.codec, h.mailer,
                       [&h] { return h.clock; });

  // A failed sign-in changes nothing.
  CHECK(error_of(upgraded.sign_in(Identity::username, "alice", "wrong", kAddress)) ==
        ErrorCode::wrong_password);
  CHECK(h.store.find_user_by_id(alice.id)->password_hash == old_hash);

  h.clock = kStart + 50;
  auto r = upgraded.sign_in(Identity::username, "alice", "password123", kAddress);
  REQUIRE(r.ok());
  const std::string new_hash = h.store.find_user_by_id(alice.id)->password_hash;
  CHECK(new_hash != old_hash);
  CHECK(new_hash.rfind("$argon2id$v=19$m=128,t=2,p=1$", 0) == 0);
  CHECK(r->password_hash == new_hash);
  CHECK(h.store.find_user_by_id(alice.id)->updated_at == kStart + 50);

  // Already current: signing in again leaves the hash alone; the password still works.
  REQUIRE(upgraded.sign_in(Identity::email, "alice@example.com", "password123", kAddress).ok());
  CHECK(h.store.find_user_by_id(alice.id)->password_hash == new_hash);
}

TEST_CASE("a session's access token passes check_token and carries the user's claims") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto pair = h.service.start_session(alice, Api::picflux);
  REQUIRE(pair.ok());
  CHECK_FALSE(pair->access.empty());
  CHECK_FALSE(pair->refresh.empty());
  CHECK(pair->access_ttl == 900);
  CHECK(pair->refresh_ttl == 1209600);
  CHECK(pair->access_claims.expires_at == kStart + 900);

  auto claims = h.service.check_token(pair->access, TokenType::access);
  REQUIRE(claims.ok());
  CHECK(claims->user_id == alice.id);
  CHECK(claims->email == std::optional<std::string>("alice@example.com"));
  CHECK(claims->username == "alice");
  CHECK(claims->type == TokenType::access);
  CHECK(claims->issued_at == kStart);
  CHECK(claims->expires_at == kStart + 900);
  CHECK(claims->payload_json().at("uid") == alice.id);
  CHECK(claims->payload_json().at("user_id") == alice.id);
  CHECK(h.store.find_session(claims->session_id).has_value());

  auto refresh_claims = h.service.check_token(pair->refresh, TokenType::refresh);
  REQUIRE(refresh_claims.ok());
  CHECK(refresh_claims->expires_at == kStart + 1209600);
  CHECK(refresh_claims->session_id == claims->session_id);
  CHECK(h.service.check_token(pair->access, std::nullopt).ok());
  CHECK(h.service.check_token(pair->refresh, std::nullopt).ok());
}

TEST_CASE("each API's session gets that API's lifetimes; envelope has no refresh token") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto v1 = h.service.start_session(alice, Api::v1);
  REQUIRE(v1.ok());
  CHECK(v1->access_ttl == 3600);
  CHECK(v1->refresh_ttl == 259200);
  auto sj = h.service.start_session(alice, Api::simplejwt);
  REQUIRE(sj.ok());
  CHECK(sj->access_ttl == 300);
  CHECK(sj->refresh_ttl == 86400);
  auto env = h.service.start_session(alice, Api::envelope);
  REQUIRE(env.ok());
  CHECK(env->access_ttl == 3600);
  CHECK(env->refresh.empty());
  CHECK(env->refresh_ttl == 0);
  CHECK(h.service.check_token(env->access, TokenType::access).ok());
}

TEST_CASE("a token of one type is refused where the other is expected") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto pair = h.service.start_session(alice, Api::picflux);
  REQUIRE(pair.ok());
  auto a = h.service.check_token(pair->access, TokenType::refresh);
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().code == ErrorCode::token_wrong_type);
  CHECK(a.error().detail == "refresh");
  auto r = h.service.check_token(pair->refresh, TokenType::access);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::token_wrong_type);
  CHECK(r.error().detail == "access");
  CHECK(error_of(h.service.refresh(pair->access, Api::picflux, true)) ==
        ErrorCode::token_wrong_type);
  // The refused refresh attempt did not harm the session.
  CHECK(h.service.refresh(pair->refresh, Api::picflux, true).ok());
}

TEST_CASE("tokens expire with the clock and garbage is malformed") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto pair = h.service.start_session(alice, Api::picflux);
  REQUIRE(pair.ok());
  h.clock = kStart + 899;
  CHECK(h.service.check_token(pair->access, TokenType::access).ok());
  h.clock = kStart + 900;
  CHECK(error_of(h.service.check_token(pair->access, TokenType::access)) ==
        ErrorCode::token_expired);
  // The refresh token lives 14 days and can still mint a new access token.
  auto renewed = h.service.refresh(pair->refresh, Api::picflux, true);
  REQUIRE(renewed.ok());
  CHECK(h.service.check_token(renewed->access, TokenType::access).ok());
  h.clock = kStart + 900 + 1209600;
  CHECK(error_of(h.service.refresh(renewed->refresh, Api::picflux, true)) ==
        ErrorCode::token_expired);

  CHECK(error_of(h.service.check_token("not.a.jwt", TokenType::access)) ==
        ErrorCode::token_malformed);
  TokenCodec stranger("a-completely-different-secret-0123456789");
  CHECK(error_of(h.service.check_token(stranger.issue(pair->access_claims), std::nullopt)) ==
        ErrorCode::token_bad_signature);
}

TEST_CASE("rotating refresh: the old token comes back as theft and the whole session dies") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto first = h.service.start_session(alice, Api::picflux);
  REQUIRE(first.ok());
  h.clock = kStart + 10;
  auto second = h.service.refresh(first->refresh, Api::picflux, true);
  REQUIRE(second.ok());
  CHECK_FALSE(second->refresh.empty());
  CHECK(second->refresh != first->refresh);
  CHECK(second->access_claims.session_id == first->access_claims.session_id);
  CHECK(error_of(h.service.check_token(first->refresh, TokenType::refresh)) ==
        ErrorCode::token_revoked);
  CHECK(h.service.check_token(second->refresh, TokenType::refresh).ok());

  h.clock = kStart + 21; // past the reuse interval (10 s) of its rotation
  auto replay = h.service.refresh(first->refresh, Api::picflux, true);
  REQUIRE_FALSE(replay.ok());
  CHECK(replay.error().code == ErrorCode::token_revoked);
  CHECK(replay.error().detail == "reused");
  // Now nothing from the session works, the newest tokens included.
  CHECK(error_of(h.service.refresh(second->refresh, Api::picflux, true)) ==
        ErrorCode::token_revoked);
  CHECK(error_of(h.service.check_token(second->access, TokenType::access)) ==
        ErrorCode::token_revoked);
  CHECK(error_of(h.service.check_token(first->access, TokenType::access)) ==
        ErrorCode::token_revoked);
  // Another session of the same user is untouched.
  auto other = h.service.start_session(alice, Api::picflux);
  REQUIRE(other.ok());
  CHECK(h.service.refresh(other->refresh, Api::picflux, true).ok());
}

namespace {

// A session whose first refresh token was rotated at kStart + 100 (the first tab's refresh);
// the second tab presents that first token `delay` seconds later.
struct TwoTabs {
  Result<TokenPair> first = Error{ErrorCode::internal, "not yet"};
  Result<TokenPair> rotated = first, second_tab = first;
};
TwoTabs two_tabs(Harness &h, const db::User &user, std::int64_t delay, Api api = Api::picflux,
                 bool rotate = true) {
  TwoTabs t;
  h.clock = kStart;
  t.first = h.service.start_session(user, api);
  REQUIRE(t.first.ok());
  h.clock = kStart + 100;
  t.rotated = h.service.refresh(t.first->refresh, Api::picflux, true);
  REQUIRE(t.rotated.ok());
  h.clock = kStart + 100 + delay;
  t.second_tab = h.service.refresh(t.first->refresh, api, rotate);
  return t;
}

std::string jti_of(Harness &h, const std::string &token) {
  auto claims = h.codec.decode(token, h.clock);
  REQUIRE(claims.ok());
  return claims->jti;
}

} // namespace

TEST_CASE("a second tab's refresh within the reuse interval gets the rotation's refresh token, "
          "up to the interval's last second") {
  Harness h; // the default interval, 10 s
  db::User alice = h.sign_up("alice", "alice@example.com");
  for (std::int64_t delay : {0, 1, 10}) {
    CAPTURE(delay);
    TwoTabs t = two_tabs(h, alice, delay);
    REQUIRE_MESSAGE(t.second_tab.ok(), t.second_tab.error().detail);
    // The same session and the same refresh token as the first tab's: one chain, no fork.
    CHECK(t.second_tab->access_claims.session_id == t.first->access_claims.session_id);
    CHECK(jti_of(h, t.second_tab->refresh) == jti_of(h, t.rotated->refresh));
    CHECK(t.second_tab->refresh_ttl == 1209600);
    // Nothing was revoked: every token of both tabs works.
    CHECK(h.service.check_token(t.rotated->access, TokenType::access).ok());
    CHECK(h.service.check_token(t.second_tab->access, TokenType::access).ok());
    CHECK(h.service.check_token(t.rotated->refresh, TokenType::refresh).ok());
    CHECK(h.service.check_token(t.second_tab->refresh, TokenType::refresh).ok());
    // Either tab's next refresh rotates the chain as usual, and the other tab's is a replay.
    auto next = h.service.refresh(t.second_tab->refresh, Api::picflux, true);
    REQUIRE(next.ok());
    auto other = h.service.refresh(t.rotated->refresh, Api::picflux, true);
    REQUIRE(other.ok());
    CHECK(jti_of(h, other->refresh) == jti_of(h, next->refresh));
  }
}

TEST_CASE("past the reuse interval the replaced refresh token is theft and the session dies") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  TwoTabs t = two_tabs(h, alice, 11);
  REQUIRE_FALSE(t.second_tab.ok());
  CHECK(t.second_tab.error().code == ErrorCode::token_revoked);
  CHECK(t.second_tab.error().detail == "reused");
  CHECK(error_of(h.service.check_token(t.rotated->access, TokenType::access)) ==
        ErrorCode::token_revoked);
  CHECK(error_of(h.service.refresh(t.rotated->refresh, Api::picflux, true)) ==
        ErrorCode::token_revoked);
}

TEST_CASE("the reuse interval reaches one step back only: a token rotated away before is theft") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto first = h.service.start_session(alice, Api::simplejwt);
  REQUIRE(first.ok());
  h.clock = kStart + 100;
  auto second = h.service.refresh(first->refresh, Api::simplejwt, true);
  REQUIRE(second.ok());
  h.clock = kStart + 101;
  auto third = h.service.refresh(second->refresh, Api::simplejwt, true);
  REQUIRE(third.ok());
  // The token one step back, within the interval: the current one.
  auto replay = h.service.refresh(second->refresh, Api::simplejwt, true);
  REQUIRE(replay.ok());
  CHECK(jti_of(h, replay->refresh) == jti_of(h, third->refresh));
  // Two steps back, though within 10 s of its own rotation: theft.
  auto stolen = h.service.refresh(first->refresh, Api::simplejwt, true);
  REQUIRE_FALSE(stolen.ok());
  CHECK(stolen.error().detail == "reused");
  CHECK(error_of(h.service.check_token(third->access, TokenType::access)) ==
        ErrorCode::token_revoked);
  CHECK(error_of(h.service.refresh(third->refresh, Api::simplejwt, true)) ==
        ErrorCode::token_revoked);
}

TEST_CASE("a reuse interval of 0 is strict: the replaced token is theft at once") {
  Harness h([](Config &c) { c.refresh_reuse_interval = 0; });
  db::User alice = h.sign_up("alice", "alice@example.com");
  TwoTabs t = two_tabs(h, alice, 0);
  REQUIRE_FALSE(t.second_tab.ok());
  CHECK(t.second_tab.error().detail == "reused");
  CHECK(error_of(h.service.check_token(t.rotated->access, TokenType::access)) ==
        ErrorCode::token_revoked);
}

TEST_CASE("a non-rotating API's refresh token, rotated through another API, has the same "
          "interval") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  // A v1 session whose token a picflux client rotated; v1 then renews with the old one.
  TwoTabs inside = two_tabs(h, alice, 10, Api::v1, false);
  REQUIRE(inside.second_tab.ok());
  CHECK(inside.second_tab->refresh.empty()); // v1 answers an access token only
  CHECK(inside.second_tab->access_claims.session_id == inside.first->access_claims.session_id);
  CHECK(h.service.check_token(inside.rotated->refresh, TokenType::refresh).ok());
  TwoTabs after = two_tabs(h, alice, 11, Api::v1, false);
  REQUIRE_FALSE(after.second_tab.ok());
  CHECK(after.second_tab.error().detail == "reused");
  CHECK(error_of(h.service.check_token(after.rotated->refresh, TokenType::refresh)) ==
        ErrorCode::token_revoked);
}

TEST_CASE("refresh without rotation keeps the same refresh token working") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto pair = h.service.start_session(alice, Api::flask);
  REQUIRE(pair.ok());
  for (int i = 1; i <= 3; ++i) {
    h.clock = kStart + 3600 * i;
    auto next = h.service.refresh(pair->refresh, Api::flask, false);
    REQUIRE(next.ok());
    CHECK(next->refresh.empty());
    CHECK(next->access_claims.expires_at == h.clock + 3600);
    CHECK(next->access_claims.session_id == pair->access_claims.session_id);
    CHECK(h.service.check_token(next->access, TokenType::access).ok());
    CHECK(h.service.check_token(pair->refresh, TokenType::refresh).ok());
  }
  // It stays valid until its own expiry, 30 days after sign-in.
  h.clock = kStart + 30 * 86400 - 1;
  CHECK(h.service.refresh(pair->refresh, Api::flask, false).ok());
  h.clock = kStart + 30 * 86400;
  CHECK(error_of(h.service.refresh(pair->refresh, Api::flask, false)) == ErrorCode::token_expired);
}

TEST_CASE("logout revokes the access token presented and the session's refresh token") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto pair = h.service.start_session(alice, Api::v1);
  auto other = h.service.start_session(alice, Api::v1);
  REQUIRE(pair.ok());
  REQUIRE(other.ok());
  auto claims = h.service.check_token(pair->access, TokenType::access);
  REQUIRE(claims.ok());
  CHECK(h.service.logout(*claims).ok());

  auto after = h.service.check_token(pair->access, TokenType::access);
  REQUIRE_FALSE(after.ok());
  CHECK(after.error().code == ErrorCode::token_revoked);
  CHECK(h.store.is_blacklisted(claims->jti));
  CHECK(h.store.find_session(claims->session_id)->revoked);
  CHECK(error_of(h.service.refresh(pair->refresh, Api::v1, false)) == ErrorCode::token_revoked);
  CHECK(error_of(h.service.check_token(pair->refresh, TokenType::refresh)) ==
        ErrorCode::token_revoked);

  CHECK(h.service.check_token(other->access, TokenType::access).ok());
  CHECK(h.service.refresh(other->refresh, Api::v1, false).ok());
}

TEST_CASE("a blacklisted access token is refused even while its session lives") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto pair = h.service.start_session(alice, Api::picflux);
  REQUIRE(pair.ok());
  const Claims &c = pair->access_claims;
  // Blacklist the jti through some other session's logout, leaving this session alive.
  auto other = h.service.start_session(alice, Api::picflux);
  REQUIRE(other.ok());
  h.store.logout(other->access_claims.session_id, c.jti, c.expires_at, h.clock);
  REQUIRE_FALSE(h.store.find_session(c.session_id)->revoked);
  auto r = h.service.check_token(pair->access, TokenType::access);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::token_revoked);
  CHECK(r.error().detail == "blacklisted");
  // The refresh token of the live session still works.
  CHECK(h.service.refresh(pair->refresh, Api::picflux, true).ok());
}

TEST_CASE("deleting a user ends every token issued to them") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto pair = h.service.start_session(alice, Api::picflux);
  REQUIRE(pair.ok());
  REQUIRE(h.store.delete_user(alice.id));
  CHECK(error_of(h.service.check_token(pair->access, TokenType::access)) ==
        ErrorCode::token_revoked);
  CHECK(error_of(h.service.refresh(pair->refresh, Api::picflux, true)) == ErrorCode::token_revoked);
}

TEST_CASE("a password reset mails a token link, works once and ends every session") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto s1 = h.service.start_session(alice, Api::flask);
  auto s2 = h.service.start_session(alice, Api::picflux);
  REQUIRE(s1.ok());
  REQUIRE(s2.ok());

  REQUIRE(h.service.start_password_reset(alice, h.config.reset_ttl).ok());
  // Queued with its token row, and holding no token: the sender makes it when it sends.
  CHECK(h.count("SELECT count(*) FROM outbox o JOIN one_time_tokens t USING (token_hash) "
                "WHERE t.purpose = 'reset' AND o.body LIKE '%/reset-password?token=' || "
                "char(10) || '%'") == 1);
  auto mails = h.mails();
  REQUIRE(mails.size() == 1);
  CHECK(h.count("SELECT count(*) FROM outbox") == 0); // sent: gone
  CHECK(mails[0].to == "alice@example.com");
  const std::string token = token_in(mails[0]);
  CHECK(token.size() >= 22); // at least 128 bits, base64url
  CHECK(mails[0].body.find("http://127.0.0.1:8080/reset-password?token=" + token + "\n") !=
        std::string::npos);
  // Stored only as its hash.
  CHECK(h.count("SELECT count(*) FROM one_time_tokens WHERE token_hash = '" +
                secure::sha256_hex(token) + "'") == 1);
  CHECK(h.count("SELECT count(*) FROM one_time_tokens WHERE token_hash = '" + token + "'") == 0);

  h.clock = kStart + 60;
  CHECK(h.service.finish_password_reset(token, "brand-new-password").ok());
  CHECK(error_of(h.service.sign_in(Identity::username, "alice", "password123", kAddress)) ==
        ErrorCode::wrong_password);
  CHECK(h.service.sign_in(Identity::username, "alice", "brand-new-password", kAddress).ok());
  CHECK(error_of(h.service.check_token(s1->access, TokenType::access)) == ErrorCode::token_revoked);
  CHECK(error_of(h.service.check_token(s2->access, TokenType::access)) == ErrorCode::token_revoked);
  CHECK(error_of(h.service.refresh(s1->refresh, Api::flask, false)) == ErrorCode::token_revoked);
  CHECK(error_of(h.service.refresh(s2->refresh, Api::picflux, true)) == ErrorCode::token_revoked);

  CHECK(error_of(h.service.finish_password_reset(token, "another-password")) ==
        ErrorCode::one_time_token_invalid);
  CHECK(h.service.sign_in(Identity::username, "alice", "brand-new-password", kAddress).ok());
}

TEST_CASE("a reset answered to the caller is mailed too, with a token of its own; either spends "
          "both") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto answered =
      h.service.start_password_reset(alice, h.config.reset_ttl, TokenDelivery::mail_and_answer);
  REQUIRE(answered.ok());
  CHECK(answered->size() >= 43); // 256 bits, base64url
  auto mails = h.mails();
  REQUIRE(mails.size() == 1);
  const std::string mailed = token_in(mails[0]);
  REQUIRE(!mailed.empty());
  CHECK(mailed != *answered);
  CHECK(h.service.finish_password_reset(mailed, "brand-new-password").ok());
  CHECK(error_of(h.service.finish_password_reset(*answered, "another-password")) ==
        ErrorCode::one_time_token_invalid);
}

TEST_CASE("a reset token expires after its TTL") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto token =
      h.service.start_password_reset(alice, h.config.reset_ttl, TokenDelivery::mail_and_answer);
  REQUIRE(token.ok());
  h.clock = kStart + h.config.reset_ttl;
  CHECK(error_of(h.service.finish_password_reset(*token, "brand-new-password")) ==
        ErrorCode::one_time_token_expired);
  CHECK(h.service.sign_in(Identity::username, "alice", "password123", kAddress).ok());

  auto fresh =
      h.service.start_password_reset(alice, h.config.reset_ttl, TokenDelivery::mail_and_answer);
  REQUIRE(fresh.ok());
  h.clock += h.config.reset_ttl - 1;
  CHECK(h.service.finish_password_reset(*fresh, "brand-new-password").ok());
}

TEST_CASE("a weak new password is refused without spending the reset token") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto token =
      h.service.start_password_reset(alice, h.config.reset_ttl, TokenDelivery::mail_and_answer);
  REQUIRE(token.ok());
  CHECK(error_of(h.service.finish_password_reset(*token, "short")) == ErrorCode::weak_password);
  CHECK(error_of(h.service.finish_password_reset("made-up-token", "long-enough-pw")) ==
        ErrorCode::one_time_token_invalid);
  CHECK(h.service.finish_password_reset(*token, "long-enough-pw").ok());
}

TEST_CASE("a reset link keeps a query string already in RESET_PASSWORD_URL") {
  Harness h([](Config &c) { c.reset_password_url = "https://app.example/reset?lang=en"; });
  db::User alice = h.sign_up("alice", "alice@example.com");
  REQUIRE(h.service.start_password_reset(alice, 900).ok());
  auto mails = h.mails();
  REQUIRE(mails.size() == 1);
  const std::string token = token_in(mails[0]);
  REQUIRE(!token.empty());
  CHECK(mails[0].body.find("https://app.example/reset?lang=en&token=" + token) !=
        std::string::npos);
}

TEST_CASE("a user without an email cannot start a password reset") {
  Harness h;
  db::User u = h.sign_up("noemail", std::nullopt);
  CHECK(error_of(h.service.start_password_reset(u, 900)) == ErrorCode::user_not_found);
  CHECK(h.mails().empty());
}

TEST_CASE(
    "one reset mail a minute and five an hour per account; past that nothing is made or sent") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  db::User bob = h.sign_up("bob", "bob@example.com");
  auto first = h.service.start_password_reset(alice, 900);
  REQUIRE(first.ok());
  h.clock = kStart + 59;
  auto again = h.service.start_password_reset(alice, 900);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::rate_limited);
  CHECK(again.error().retry_after == 1);
  CHECK(h.service.start_password_reset(bob, 900).ok());  // another account, its own limit
  CHECK(h.service.start_email_verification(alice).ok()); // confirmation mails counted apart
  CHECK(error_of(h.service.start_email_verification(alice)) == ErrorCode::rate_limited);
  for (int i = 1; i < 5; ++i) {
    h.clock = kStart + 60 * i;
    REQUIRE(h.service.start_password_reset(alice, 900).ok());
  }
  h.clock = kStart + 600;
  auto sixth = h.service.start_password_reset(alice, 900);
  REQUIRE_FALSE(sixth.ok());
  CHECK(sixth.error().code == ErrorCode::rate_limited);
  CHECK(sixth.error().retry_after == 3600 - 600);

  std::set<std::string> to_alice; // each mail a fresh token
  for (const Mail &m : h.mails())
    if (m.to == "alice@example.com" && m.subject == "Reset your password")
      to_alice.insert(token_in(m));
  CHECK(to_alice.size() == 5);
  CHECK(h.count("SELECT count(*) FROM one_time_tokens WHERE user_id = '" + alice.id +
                "' AND purpose = 'reset'") == 5);

  h.clock = kStart + 3600;
  CHECK(h.service.start_password_reset(alice, 900).ok());

  Harness off([](Config &c) { c.mail_limit = 0; });
  db::User carol = off.sign_up("carol", "carol@example.com");
  for (int i = 0; i < 10; ++i)
    REQUIRE(off.service.start_password_reset(carol, 900).ok());
  CHECK(off.mails().size() == 10);
}

TEST_CASE("mails name the account by its address only, never by text its creator chose") {
  Harness h;
  // Spaces of any kind are refused in a username (auth/identity.h)...
  NewUser spaced;
  spaced.username = "\u2003\u2003Your\u2002account\u2002is\u2002suspended.\u2002Call"
                    "\u2002+1-555-0100\u2002now\u3000";
  spaced.email = "spaced@example.com";
  spaced.password = "password123";
  CHECK_FALSE(h.service.sign_up(spaced).ok());
  // ...but a sentence fits in one without, and a display name holds anything.
  NewUser u;
  u.username = "Your-account-is-suspended.Call-+1-555-0100-now";
  u.email = "mark@example.com";
  u.password = "password123";
  u.display_name = "Your account is suspended. Call +1-555-0100 now";
  auto signed_up = h.service.sign_up(u);
  REQUIRE(signed_up.ok());
  db::User mark = signed_up.value().user;
  REQUIRE(h.service.start_email_verification(mark).ok());
  REQUIRE(h.service.start_password_reset(mark, 900).ok());
  auto mails = h.mails();
  REQUIRE(mails.size() == 2);
  for (const Mail &m : mails) {
    CAPTURE(m.body);
    CHECK(m.body.find("suspended") == std::string::npos);
    CHECK(m.body.find("\u2003") == std::string::npos);
    CHECK(m.subject.find("suspended") == std::string::npos);
    CHECK(m.body.find("mark@example.com") != std::string::npos);
    CHECK(m.body.find("Latch at 127.0.0.1:8080") != std::string::npos);
  }
}

TEST_CASE("email verification mails a link and confirms the address once") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  CHECK_FALSE(h.store.find_user_by_id(alice.id)->email_verified);
  REQUIRE(h.service.start_email_verification(alice).ok());
  auto mails = h.mails();
  REQUIRE(mails.size() == 1);
  CHECK(mails[0].to == "alice@example.com");
  const std::string token = token_in(mails[0]);
  REQUIRE(!token.empty());
  CHECK(mails[0].body.find("http://127.0.0.1:8080/api/v1/verify?token=" + token) !=
        std::string::npos);

  CHECK(error_of(h.service.finish_password_reset(token, "brand-new-password")) ==
        ErrorCode::one_time_token_invalid); // not a reset token
  h.clock = kStart + 100;
  CHECK(h.service.confirm_email(token).ok());
  auto after = h.store.find_user_by_id(alice.id);
  CHECK(after->email_verified);
  CHECK(after->updated_at == kStart + 100);
  CHECK(error_of(h.service.confirm_email(token)) == ErrorCode::one_time_token_invalid);
}

TEST_CASE("a sign-up that answers its confirmation token: beside the mailed one, or alone") {
  Harness h;
  NewUser u{"alice", "alice@example.com", "password123", "", "", ""};
  auto both = h.service.sign_up(
      u, {}, {.session = std::nullopt, .confirm_email = true, .answer_confirmation = true});
  REQUIRE(both.ok());
  REQUIRE(both->confirmation_token);
  auto mails = h.mails();
  REQUIRE(mails.size() == 1);
  const std::string mailed = token_in(mails[0]);
  CHECK(mailed != *both->confirmation_token);
  CHECK(h.service.confirm_email(*both->confirmation_token).ok());
  CHECK(h.store.find_user_by_id(both->user.id)->email_verified);
  CHECK(error_of(h.service.confirm_email(*both->confirmation_token)) ==
        ErrorCode::one_time_token_invalid);
  CHECK(h.service.confirm_email(mailed).ok()); // a link already confirmed changes nothing

  NewUser b{"bob", "bob@example.com", "password123", "", "", ""};
  auto alone = h.service.sign_up(b, {}, {.session = std::nullopt, .answer_confirmation = true});
  REQUIRE(alone.ok());
  REQUIRE(alone->confirmation_token);
  CHECK(h.mails().size() == 1); // no new mail
  h.clock = kStart + h.config.verify_email_ttl;
  CHECK(error_of(h.service.confirm_email(*alone->confirmation_token)) ==
        ErrorCode::one_time_token_expired);

  // Without it, nothing is answered; without an email, nothing can be.
  NewUser c{"carol", "carol@example.com", "password123", "", "", ""};
  CHECK_FALSE(h.service.sign_up(c, {}, {.session = std::nullopt, .confirm_email = true})
                  ->confirmation_token);
  NewUser d{"dave", std::nullopt, "password123", "", "", ""};
  CHECK(
      error_of(h.service.sign_up(d, {}, {.session = std::nullopt, .answer_confirmation = true})) ==
      ErrorCode::invalid_email);
}

TEST_CASE("an email verification token expires after verify_email_ttl") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto token = h.service.start_email_verification(alice, TokenDelivery::mail_and_answer);
  REQUIRE(token.ok());
  h.clock = kStart + h.config.verify_email_ttl;
  CHECK(error_of(h.service.confirm_email(*token)) == ErrorCode::one_time_token_expired);
  CHECK_FALSE(h.store.find_user_by_id(alice.id)->email_verified);
  db::User noemail = h.sign_up("noemail", std::nullopt);
  CHECK(error_of(h.service.start_email_verification(noemail)) == ErrorCode::invalid_email);
}

TEST_CASE("throttle_address allows rate_limit requests a minute per address") {
  Harness h([](Config &c) { c.rate_limit = 3; });
  for (int i = 0; i < 3; ++i)
    CHECK(h.service.throttle_address("10.0.0.1") == 0);
  CHECK(h.service.throttle_address("10.0.0.1") == 60);
  CHECK(h.service.throttle_address("10.0.0.2") == 0);
  h.clock = kStart + 45;
  CHECK(h.service.throttle_address("10.0.0.1") == 15);
  h.clock = kStart + 60;
  CHECK(h.service.throttle_address("10.0.0.1") == 0);

  Harness off([](Config &c) { c.rate_limit = 0; });
  for (int i = 0; i < 100; ++i)
    REQUIRE(off.service.throttle_address("10.0.0.1") == 0);
}

TEST_CASE("purge_expired removes expired sessions, blacklist entries and one-time tokens") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto env = h.service.start_session(alice, Api::envelope);    // ends at +3600
  auto picflux = h.service.start_session(alice, Api::picflux); // ends at +14 days
  REQUIRE(env.ok());
  REQUIRE(picflux.ok());
  auto claims = h.service.check_token(env->access, TokenType::access);
  REQUIRE(claims.ok());
  REQUIRE(h.service.logout(*claims).ok()); // blacklisted until +3600
  REQUIRE(h.service.start_password_reset(alice, 900).ok());

  auto nothing = h.service.purge_expired(0);
  CHECK(nothing.sessions == 0);
  CHECK(nothing.blacklist == 0);
  CHECK(nothing.one_time_tokens == 0);

  h.clock = kStart + 3600;
  auto purged = h.service.purge_expired(0);
  CHECK(purged.sessions == 1);
  CHECK(purged.blacklist == 1);
  CHECK(purged.one_time_tokens == 1);
  CHECK_FALSE(h.store.find_session(claims->session_id).has_value());
  CHECK(error_of(h.service.check_token(picflux->access, TokenType::access)) ==
        ErrorCode::token_expired);
  CHECK(h.service.refresh(picflux->refresh, Api::picflux, true).ok());
}

TEST_CASE("a wall clock stepped back an hour keeps tokens valid and lockout windows moving") {
  Harness h([](Config &c) { c.max_failed_logins = 2; });
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto pair = h.service.start_session(alice, Api::v1);
  REQUIRE(pair.ok());
  h.elapsed = 0;
  // The wall clock goes back an hour; the monotonic clock goes on.
  h.clock = kStart - 3600;
  *h.elapsed += 1;
  CHECK(h.service.check_token(pair->access, TokenType::access).ok());
  CHECK(h.service.refresh(pair->refresh, Api::v1, false).ok());
  // A lock is counted and lifted by elapsed time, whatever the wall clock does meanwhile.
  for (int i = 0; i < 2; ++i)
    CHECK(error_of(h.service.sign_in(Identity::email, "alice@example.com", "wrong-pass",
                                     kAddress)) == ErrorCode::wrong_password);
  auto locked = h.service.sign_in(Identity::email, "alice@example.com", "password123", kAddress);
  REQUIRE(error_of(locked) == ErrorCode::account_locked);
  CHECK(locked.error().retry_after <= 15 * 60);
  h.clock = kStart - 7200; // stepped back again: the lock does not last an hour more
  *h.elapsed += 15 * 60;
  CHECK(h.service.sign_in(Identity::email, "alice@example.com", "password123", kAddress).ok());
}

TEST_CASE("the purge leaves what expired within its margin: a forward step destroys nothing") {
  Harness h;
  db::User alice = h.sign_up("alice", "alice@example.com");
  auto env = h.service.start_session(alice, Api::envelope); // its session ends at +3600
  REQUIRE(env.ok());
  // The wall clock jumps a day ahead (then back): the session looks expired meanwhile, but the
  // purge keeps it, and it serves again once the clock is right.
  h.clock = kStart + 3600 + 60;
  CHECK(h.service.purge_expired().sessions == 0);
  h.clock = kStart + 10;
  CHECK(h.service.check_token(env->access, TokenType::access).ok());
  // Past the margin it goes.
  h.clock = kStart + 3600 + h.config.purge_margin + 1;
  CHECK(h.service.purge_expired().sessions == 1);
}
